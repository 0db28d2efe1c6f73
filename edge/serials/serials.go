// Package serials manages serial number pools per GTIN: randomised
// generation, import from a Level 4 system, reservation for a batch, and the
// return of unused serials. A serial is used at most once per GTIN, forever:
// the store's Units bucket holds every serial ever commissioned, and the
// pool refuses anything already used or already pooled.
//
// The pool is drawn in random order (each serial has a random sort key), so
// the next serial cannot be guessed from the previous ones; generation keeps
// the guess probability under 1/10,000: serials issued or pooled never exceed
// 1/10,000 of the number space.
package serials

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
)

// Spec describes a GTIN's serial format.
type Spec struct {
	Length   int    // characters, 1..20
	Alphabet string // "numeric" or "alphanumeric"
}

const (
	numeric      = "0123456789"
	alphanumeric = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ" // no I and O: they read as 1 and 0
)

// MaxGuessProbability is the DSCSA / EU FMD randomisation bound.
const MaxGuessProbability = 1.0 / 10000

func (s Spec) alphabet() string {
	if s.Alphabet == "alphanumeric" {
		return alphanumeric
	}
	return numeric
}

// Space is the size of the number space.
func (s Spec) Space() float64 { return math.Pow(float64(len(s.alphabet())), float64(s.Length)) }

// Capacity is how many serials may exist (issued + pooled) under the guess bound.
func (s Spec) Capacity() float64 { return s.Space() * MaxGuessProbability }

func key(gtin, serial string) []byte { return []byte(gtin + "\x00" + serial) }

func seqKey(gtin string, n uint64) []byte {
	k := make([]byte, 0, len(gtin)+9)
	k = append(k, gtin...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, n)
}

func counterKey(kind, gtin string) []byte { return []byte(kind + ":" + gtin) }

func getCount(tx *store.Tx, kind, gtin string) int {
	v := tx.Get(store.State, counterKey(kind, gtin))
	n, _ := strconv.Atoi(string(v))
	return n
}

func setCount(tx *store.Tx, kind, gtin string, n int) error {
	return tx.Put(store.State, counterKey(kind, gtin), []byte(strconv.Itoa(n)))
}

func addCount(tx *store.Tx, kind, gtin string, d int) error {
	return setCount(tx, kind, gtin, getCount(tx, kind, gtin)+d)
}

// The pool of a GTIN is an append-only sequence (Pool: gtin, counter ->
// serial). Serials are random, so the order they were generated in is
// random: drawing them in sequence is drawing at random. "pool_head" is
// the next counter not yet reserved, "pool_next" the next to append.
// Reserving is taking a range of counters, O(1) whatever the batch size;
// bbolt transactions with many random inserts are quadratic (nodes split
// only at commit), so generation and import write in chunks.

// ChunkSize is the number of serials written per transaction by
// generation and import.
const ChunkSize = 2000

// Available returns the number of serials of a GTIN not reserved yet.
func Available(tx *store.Tx, gtin string) int {
	return getCount(tx, "pool_next", gtin) - getCount(tx, "pool_head", gtin)
}

// Known returns the number of distinct serials ever added to the GTIN's
// pool (the randomisation bound counts them all).
func Known(tx *store.Tx, gtin string) int { return getCount(tx, "pool_known", gtin) }

// Used reports whether a serial was ever commissioned for the GTIN.
func Used(tx *store.Tx, gtin, serial string) bool { return tx.Has(store.Units, key(gtin, serial)) }

// InPool reports whether a serial was ever added to the GTIN's pool
// (available, reserved or used since).
func InPool(tx *store.Tx, gtin, serial string) bool {
	return tx.Has(store.PoolIndex, key(gtin, serial))
}

// add puts a new serial in the pool and the index of known serials.
func add(tx *store.Tx, gtin, serial string) error {
	if err := tx.Put(store.PoolIndex, key(gtin, serial), []byte{}); err != nil {
		return err
	}
	if err := addCount(tx, "pool_known", gtin, 1); err != nil {
		return err
	}
	return appendPool(tx, gtin, []byte(serial))
}

// appendPool appends a serial at the end of the pool sequence.
func appendPool(tx *store.Tx, gtin string, serial []byte) error {
	n := getCount(tx, "pool_next", gtin)
	if err := tx.Put(store.Pool, seqKey(gtin, uint64(n)), serial); err != nil {
		return err
	}
	return setCount(tx, "pool_next", gtin, n+1)
}

// Generate adds n random serials (n <= ChunkSize per transaction) to the
// GTIN's pool. It refuses to exceed the randomisation bound of the number
// space.
func Generate(tx *store.Tx, gtin string, spec Spec, n int) error {
	if spec.Length < 1 || spec.Length > 20 {
		return fmt.Errorf("serial length %d: want 1..20", spec.Length)
	}
	if n > ChunkSize {
		return fmt.Errorf("generate %d serials: at most %d per transaction", n, ChunkSize)
	}
	total := float64(Known(tx, gtin) + n)
	if total > spec.Capacity() {
		return fmt.Errorf("GTIN %s: %.0f serials would exceed 1/10,000 of the %d-character %s number space (at most %.0f): use longer serials",
			gtin, total, spec.Length, spec.Alphabet, math.Floor(spec.Capacity()))
	}
	alpha := spec.alphabet()
	// Rejection sampling on random bytes: unbiased characters.
	limit := byte(256 - 256%len(alpha))
	buf := make([]byte, spec.Length)
	random := make([]byte, 0)
	next := func() (byte, error) {
		for {
			if len(random) == 0 {
				random = make([]byte, 4096)
				if _, err := rand.Read(random); err != nil {
					return 0, err
				}
			}
			b := random[0]
			random = random[1:]
			if b < limit {
				return alpha[int(b)%len(alpha)], nil
			}
		}
	}
	for made, tries := 0, 0; made < n; tries++ {
		if tries > 64*n+64 {
			return fmt.Errorf("GTIN %s: could not draw %d unused serials", gtin, n)
		}
		for i := range buf {
			c, err := next()
			if err != nil {
				return err
			}
			buf[i] = c
		}
		s := string(buf)
		if Used(tx, gtin, s) || InPool(tx, gtin, s) {
			continue
		}
		if err := add(tx, gtin, s); err != nil {
			return err
		}
		made++
	}
	return nil
}

// ImportError lists every problem of an import, by line.
type ImportError struct{ Problems []string }

func (e *ImportError) Error() string {
	const show = 20
	p := e.Problems
	more := ""
	if len(p) > show {
		more = fmt.Sprintf("\n... and %d more", len(p)-show)
		p = p[:show]
	}
	return fmt.Sprintf("serial import refused (%d problems, nothing imported):\n%s%s", len(e.Problems), strings.Join(p, "\n"), more)
}

// Entry is one imported serial with the line it came from.
type Entry struct {
	Serial string
	Line   int
}

// Validate checks a list of serials from a Level 4 system: CSET 82
// characters, the GTIN's length, no duplicates in the list, none already
// used or pooled. It reports every problem, by line.
func Validate(tx *store.Tx, gtin string, spec Spec, list []Entry) error {
	var problems []string
	seen := make(map[string]int, len(list))
	for _, e := range list {
		s := e.Serial
		switch {
		case s == "":
			problems = append(problems, fmt.Sprintf("line %d: empty serial", e.Line))
			continue
		case len(s) > 20:
			problems = append(problems, fmt.Sprintf("line %d: serial %q has %d characters, (21) allows 20", e.Line, s, len(s)))
			continue
		case spec.Length > 0 && len(s) != spec.Length:
			problems = append(problems, fmt.Sprintf("line %d: serial %q has %d characters, GTIN %s uses %d", e.Line, s, len(s), gtin, spec.Length))
			continue
		}
		bad := -1
		for i := 0; i < len(s); i++ {
			if !gs1.IsCSET82(s[i]) {
				bad = i
				break
			}
		}
		if bad >= 0 {
			problems = append(problems, fmt.Sprintf("line %d: serial %q: character %q at position %d is not in CSET 82", e.Line, s, s[bad], bad+1))
			continue
		}
		if first, dup := seen[s]; dup {
			problems = append(problems, fmt.Sprintf("line %d: serial %q repeats line %d", e.Line, s, first))
			continue
		}
		seen[s] = e.Line
		if Used(tx, gtin, s) {
			problems = append(problems, fmt.Sprintf("line %d: serial %q was already used for GTIN %s", e.Line, s, gtin))
		} else if InPool(tx, gtin, s) {
			problems = append(problems, fmt.Sprintf("line %d: serial %q is already in the pool of GTIN %s", e.Line, s, gtin))
		}
	}
	if len(problems) > 0 {
		return &ImportError{Problems: problems}
	}
	return nil
}

// Add appends validated serials (at most ChunkSize per transaction).
func Add(tx *store.Tx, gtin string, list []Entry) error {
	if len(list) > ChunkSize {
		return fmt.Errorf("add %d serials: at most %d per transaction", len(list), ChunkSize)
	}
	for _, e := range list {
		if err := add(tx, gtin, e.Serial); err != nil {
			return err
		}
	}
	return nil
}

// Import validates and adds a list that fits one transaction.
func Import(tx *store.Tx, gtin string, spec Spec, list []Entry) error {
	if err := Validate(tx, gtin, spec, list); err != nil {
		return err
	}
	return Add(tx, gtin, list)
}

// ParseList reads a serial list from a Level 4 system: CSV (one serial per
// line, or a header row with a "serial" column) or JSON (an array of
// strings, or {"serials": [...]}).
func ParseList(r io.Reader, format string) ([]Entry, error) {
	br := bufio.NewReader(r)
	switch format {
	case "json":
		var raw json.RawMessage
		if err := json.NewDecoder(br).Decode(&raw); err != nil {
			return nil, fmt.Errorf("serial list (JSON): %w", err)
		}
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			var obj struct {
				Serials []string `json:"serials"`
			}
			if err2 := json.Unmarshal(raw, &obj); err2 != nil || obj.Serials == nil {
				return nil, errors.New(`serial list (JSON): want an array of strings or {"serials": [...]}`)
			}
			list = obj.Serials
		}
		out := make([]Entry, len(list))
		for i, s := range list {
			out[i] = Entry{Serial: s, Line: i + 1}
		}
		return out, nil
	case "csv", "":
		cr := csv.NewReader(br)
		cr.FieldsPerRecord = -1
		col := 0
		var out []Entry
		for n := 1; ; n++ {
			rec, err := cr.Read()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("serial list (CSV): %w", err)
			}
			if n == 1 {
				header := false
				for i, f := range rec {
					if strings.EqualFold(strings.TrimSpace(f), "serial") {
						col, header = i, true
					}
				}
				if header {
					continue
				}
			}
			if len(rec) <= col {
				out = append(out, Entry{Line: n})
				continue
			}
			out = append(out, Entry{Serial: strings.TrimSpace(rec[col]), Line: n})
		}
	}
	return nil, fmt.Errorf("serial list format %q: want csv or json", format)
}

type span struct {
	Next uint64 `json:"next"` // next counter to take
	End  uint64 `json:"end"`  // exclusive
}

type reservation struct {
	GTIN  string `json:"gtin"`
	Spans []span `json:"spans"`
}

func resKey(batch string) []byte { return []byte("reserved:" + batch) }

func loadRes(tx *store.Tx, batch string) (reservation, error) {
	var r reservation
	_, err := tx.GetJSON(store.State, resKey(batch), &r)
	return r, err
}

// Reserve allocates the next n serials of the GTIN's pool to the batch and
// returns them (for the record that documents the allocation).
func Reserve(tx *store.Tx, gtin, batch string, n int) ([]string, error) {
	if have := Available(tx, gtin); have < n {
		return nil, fmt.Errorf("GTIN %s has %d serials in the pool, %d needed", gtin, have, n)
	}
	r, err := loadRes(tx, batch)
	if err != nil {
		return nil, err
	}
	if r.GTIN != "" && r.GTIN != gtin {
		return nil, fmt.Errorf("batch %s already holds serials of GTIN %s", batch, r.GTIN)
	}
	r.GTIN = gtin
	head := uint64(getCount(tx, "pool_head", gtin))
	out := make([]string, 0, n)
	for c := head; c < head+uint64(n); c++ {
		v := tx.Get(store.Pool, seqKey(gtin, c))
		if v == nil {
			return nil, fmt.Errorf("GTIN %s: pool entry %d is missing", gtin, c)
		}
		out = append(out, string(v))
	}
	r.Spans = append(r.Spans, span{Next: head, End: head + uint64(n)})
	if err := setCount(tx, "pool_head", gtin, int(head)+n); err != nil {
		return nil, err
	}
	return out, tx.PutJSON(store.State, resKey(batch), &r)
}

// Reserved returns how many serials the batch still holds unused.
func Reserved(tx *store.Tx, batch string) int {
	r, _ := loadRes(tx, batch)
	n := 0
	for _, s := range r.Spans {
		n += int(s.End - s.Next)
	}
	return n
}

// ErrExhausted: the batch used all its reserved serials.
var ErrExhausted = errors.New("no reserved serial left for the batch")

// Take hands out the batch's next reserved serial. The caller records it as
// used (the Units bucket) in the same transaction.
func Take(tx *store.Tx, batch string) (gtin, serial string, err error) {
	r, err := loadRes(tx, batch)
	if err != nil {
		return "", "", err
	}
	for i := range r.Spans {
		sp := &r.Spans[i]
		if sp.Next >= sp.End {
			continue
		}
		v := tx.Get(store.Pool, seqKey(r.GTIN, sp.Next))
		if v == nil {
			return "", "", fmt.Errorf("GTIN %s: pool entry %d is missing", r.GTIN, sp.Next)
		}
		sp.Next++
		return r.GTIN, string(v), tx.PutJSON(store.State, resKey(batch), &r)
	}
	return "", "", ErrExhausted
}

// Release returns the batch's unused serials to the end of the pool (they
// are drawn again later, each use recorded) and lists them for the record
// that documents the return.
func Release(tx *store.Tx, batch string) ([]string, error) {
	r, err := loadRes(tx, batch)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range r.Spans {
		sp := &r.Spans[i]
		for ; sp.Next < sp.End; sp.Next++ {
			v := tx.Get(store.Pool, seqKey(r.GTIN, sp.Next))
			if v == nil {
				return nil, fmt.Errorf("GTIN %s: pool entry %d is missing", r.GTIN, sp.Next)
			}
			if err := appendPool(tx, r.GTIN, v); err != nil {
				return nil, err
			}
			out = append(out, string(v))
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, tx.PutJSON(store.State, resKey(batch), &r)
}

// Load appends serials the caller knows to be new for the GTIN to its pool,
// without the duplicate checks of Generate and Import (at most ChunkSize
// per transaction is not enforced): it builds large stores fast for the
// memory and start-up benchmarks. In key order the writes are appends.
func Load(tx *store.Tx, gtin string, list []string) error {
	next := getCount(tx, "pool_next", gtin)
	for _, s := range list {
		if err := tx.Put(store.PoolIndex, key(gtin, s), []byte{}); err != nil {
			return err
		}
		if err := tx.Put(store.Pool, seqKey(gtin, uint64(next)), []byte(s)); err != nil {
			return err
		}
		next++
	}
	if err := setCount(tx, "pool_next", gtin, next); err != nil {
		return err
	}
	return addCount(tx, "pool_known", gtin, len(list))
}

// Consume marks the next n pool serials of the GTIN as drawn (used by past
// batches) and returns them: the fixture side of Load.
func Consume(tx *store.Tx, gtin string, n int) ([]string, error) {
	head := getCount(tx, "pool_head", gtin)
	if Available(tx, gtin) < n {
		return nil, fmt.Errorf("GTIN %s has %d serials in the pool, %d needed", gtin, Available(tx, gtin), n)
	}
	out := make([]string, 0, n)
	for c := head; c < head+n; c++ {
		v := tx.Get(store.Pool, seqKey(gtin, uint64(c)))
		if v == nil {
			return nil, fmt.Errorf("GTIN %s: pool entry %d is missing", gtin, c)
		}
		out = append(out, string(v))
	}
	return out, setCount(tx, "pool_head", gtin, head+n)
}

// Account checks the serial accounting of a GTIN: every serial ever added
// to its pool is exactly one of available (in the pool), reserved by a
// batch and unused, or used (commissioned: used reports it, usedCount is
// how many the GTIN has). It returns the problems found (none: balanced).
func Account(tx *store.Tx, gtin string, used func(serial string) bool, usedCount int) []string {
	var problems []string
	avail, reserved := 0, 0
	seen := map[string]string{}
	mark := func(s, where string) {
		if w, dup := seen[s]; dup {
			problems = append(problems, fmt.Sprintf("GTIN %s serial %s is both %s and %s", gtin, s, w, where))
		}
		seen[s] = where
		if used(s) {
			problems = append(problems, fmt.Sprintf("GTIN %s serial %s is %s and also used", gtin, s, where))
		}
		if !InPool(tx, gtin, s) {
			problems = append(problems, fmt.Sprintf("GTIN %s serial %s is %s but not in the pool index", gtin, s, where))
		}
	}
	head, next := getCount(tx, "pool_head", gtin), getCount(tx, "pool_next", gtin)
	for c := head; c < next; c++ {
		v := tx.Get(store.Pool, seqKey(gtin, uint64(c)))
		if v == nil {
			problems = append(problems, fmt.Sprintf("GTIN %s: pool entry %d is missing", gtin, c))
			continue
		}
		mark(string(v), "available")
		avail++
	}
	err := tx.ForEachPrefix(store.State, []byte("reserved:"), func(k, v []byte) error {
		var r reservation
		if err := json.Unmarshal(v, &r); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", k, err))
			return nil
		}
		if r.GTIN != gtin {
			return nil
		}
		for _, sp := range r.Spans {
			for c := sp.Next; c < sp.End; c++ {
				s := tx.Get(store.Pool, seqKey(gtin, c))
				if s == nil {
					problems = append(problems, fmt.Sprintf("GTIN %s: pool entry %d reserved by %s is missing", gtin, c, k[len("reserved:"):]))
					continue
				}
				mark(string(s), "reserved by batch "+string(k[len("reserved:"):]))
				reserved++
			}
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err.Error())
	}
	if known := Known(tx, gtin); known != avail+reserved+usedCount {
		problems = append(problems, fmt.Sprintf("GTIN %s: %d serials known, %d available + %d reserved unused + %d used = %d (serials lost or counted twice)",
			gtin, known, avail, reserved, usedCount, avail+reserved+usedCount))
	}
	return problems
}
