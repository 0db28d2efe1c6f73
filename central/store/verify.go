package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/serialine/serialine/sync/record"
)

// ChainReport is the outcome of verifying one chain (edge and epoch).
type ChainReport struct {
	Edge    string
	Epoch   uint32
	Records int64
	// Err is nil when the chain verifies, else the first bad record
	// (*record.ChainError names edge, epoch and seq exactly).
	Err error
}

// Verify re-verifies what the store holds, as an auditor would: for every
// enrolled edge (and central's journals) and every stored epoch, the chain
// from seq 1 (prev hash zero), each record's stored hash against its
// canonical bytes, every signature with the key enrolled for the record's
// time (following key.rotated records), that the last record is covered by
// a signature, and that the edge's head is the last stored record. edge
// limits it to one edge. report is called once per chain; Verify returns
// the reports and an error only when the store cannot be read.
func Verify(ctx context.Context, st Store, edge string, report func(ChainReport)) ([]ChainReport, error) {
	var ids []string
	if edge != "" {
		if _, err := st.Edge(ctx, edge); err != nil {
			return nil, err
		}
		ids = []string{edge}
	} else {
		edges, err := st.Edges(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range edges {
			ids = append(ids, e.ID)
		}
	}
	var out []ChainReport
	for _, id := range ids {
		keys, err := st.EdgeKeys(ctx, id)
		if err != nil {
			return out, err
		}
		epochs, err := st.Epochs(ctx, id)
		if err != nil {
			return out, err
		}
		head, hasHead, err := st.Head(ctx, id)
		if err != nil {
			return out, err
		}
		for i, ep := range epochs {
			// The newest epoch is verified up to the head read above:
			// records a running central stores meanwhile are not part of
			// this snapshot.
			upTo := uint64(0)
			if i == len(epochs)-1 && hasHead && head.Epoch == ep {
				upTo = head.Seq
			}
			rep, last, err := verifyChain(ctx, st, id, ep, Ring(keys), upTo)
			if err != nil {
				return out, err
			}
			if rep.Err == nil && i == len(epochs)-1 && (!hasHead || head != last) {
				rep.Err = &record.ChainError{Edge: id, Epoch: ep, Seq: last.Seq, Err: record.ErrChain,
					Why: fmt.Sprintf("the stored head (epoch %d seq %d %s) is not the last stored record (seq %d %s)", head.Epoch, head.Seq, head.Hash, last.Seq, last.Hash)}
			}
			out = append(out, rep)
			if report != nil {
				report(rep)
			}
		}
	}
	return out, nil
}

const verifyPage = 5000

func verifyChain(ctx context.Context, st Store, edge string, epoch uint32, ring record.KeyRing, upTo uint64) (ChainReport, record.Head, error) {
	rep := ChainReport{Edge: edge, Epoch: epoch}
	v := record.NewRingVerifier(ring, record.Head{Epoch: epoch}, true)
	// The records since the last good checkpoint, and the verifier's state
	// before them, to locate a bad record exactly (record.VerifyRunRing).
	var seg []record.Record
	segHead, segRing := v.Head(), v.Ring()
	from := uint64(1)
	fail := func(err error) (ChainReport, record.Head, error) {
		rep.Err = err
		return rep, v.Head(), nil
	}
	for {
		page, err := st.Records(ctx, edge, epoch, from, verifyPage)
		if err != nil {
			return rep, v.Head(), err
		}
		if len(page) == 0 {
			break
		}
		if upTo > 0 {
			for len(page) > 0 && page[len(page)-1].Record.Seq > upTo {
				page = page[:len(page)-1]
			}
			if len(page) == 0 {
				break
			}
		}
		for i := range page {
			s := &page[i]
			r := &s.Record
			if rep.Records == 0 && (r.Seq != 1 || !r.Prev.IsZero()) {
				return fail(&record.ChainError{Edge: edge, Epoch: epoch, Seq: 1, Err: record.ErrSequence,
					Why: fmt.Sprintf("the stored chain starts at seq %d (prev %s), not at seq 1", r.Seq, r.Prev)})
			}
			if h := r.Hash(); h != s.Hash {
				return fail(&record.ChainError{Edge: edge, Epoch: epoch, Seq: r.Seq, Err: record.ErrChain,
					Why: fmt.Sprintf("stored hash %s is not the hash of the stored canonical bytes (%s)", s.Hash, h)})
			}
			if _, err := v.Add(r); err != nil {
				// Read on to the next checkpoint and let VerifyRunRing name
				// the altered record.
				run := appendUntilSigned(append([]record.Record(nil), seg...), page[i:])
				for !hasSig(run) {
					more, merr := st.Records(ctx, edge, epoch, run[len(run)-1].Seq+1, verifyPage)
					if merr != nil {
						return rep, v.Head(), merr
					}
					if len(more) == 0 {
						break
					}
					run = appendUntilSigned(run, more)
				}
				if _, exact := record.VerifyRunRing(segRing, segHead, trimToSigned(run), true); exact != nil {
					var ce *record.ChainError
					if errors.As(exact, &ce) {
						return fail(exact)
					}
				}
				return fail(err)
			}
			rep.Records++
			if len(r.Sig) > 0 {
				seg, segHead, segRing = seg[:0], v.Head(), v.Ring()
			} else {
				seg = append(seg, *r)
			}
		}
		from = page[len(page)-1].Record.Seq + 1
		if upTo > 0 && from > upTo {
			break
		}
	}
	if n, first := v.Unsigned(); n > 0 {
		return fail(&record.ChainError{Edge: edge, Epoch: epoch, Seq: first, Err: record.ErrSignature,
			Why: fmt.Sprintf("%d stored records from seq %d on are not covered by a signature", n, first)})
	}
	return rep, v.Head(), nil
}

func hasSig(rs []record.Record) bool { return len(rs) > 0 && len(rs[len(rs)-1].Sig) > 0 }

func appendUntilSigned(run []record.Record, more []Stored) []record.Record {
	for i := range more {
		run = append(run, more[i].Record)
		if len(more[i].Record.Sig) > 0 {
			break
		}
	}
	return run
}

func trimToSigned(run []record.Record) []record.Record {
	for i := len(run) - 1; i >= 0; i-- {
		if len(run[i].Sig) > 0 {
			return run[:i+1]
		}
	}
	return run
}
