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
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
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
func prefix(gtin string) []byte     { return []byte(gtin + "\x00") }

func counterKey(kind, gtin string) []byte { return []byte(kind + ":" + gtin) }

func getCount(tx *store.Tx, kind, gtin string) int {
	v := tx.Get(store.State, counterKey(kind, gtin))
	n, _ := strconv.Atoi(string(v))
	return n
}

func addCount(tx *store.Tx, kind, gtin string, d int) error {
	return tx.Put(store.State, counterKey(kind, gtin), []byte(strconv.Itoa(getCount(tx, kind, gtin)+d)))
}

// Available returns the number of pooled serials of a GTIN.
func Available(tx *store.Tx, gtin string) int { return getCount(tx, "pool", gtin) }

// Issued returns the number of serials of a GTIN ever reserved for a batch.
func Issued(tx *store.Tx, gtin string) int { return getCount(tx, "issued", gtin) }

// Used reports whether a serial was ever commissioned for the GTIN.
func Used(tx *store.Tx, gtin, serial string) bool { return tx.Has(store.Units, key(gtin, serial)) }

// InPool reports whether a serial is waiting in the pool.
func InPool(tx *store.Tx, gtin, serial string) bool { return tx.Has(store.PoolIndex, key(gtin, serial)) }

func sortKey() ([]byte, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return b[:], nil
}

func add(tx *store.Tx, gtin, serial string) error {
	sk, err := sortKey()
	if err != nil {
		return err
	}
	if err := tx.Put(store.Pool, append(prefix(gtin), sk...), []byte(serial)); err != nil {
		return err
	}
	if err := tx.Put(store.PoolIndex, key(gtin, serial), sk); err != nil {
		return err
	}
	return addCount(tx, "pool", gtin, 1)
}

// Generate adds n random serials to the GTIN's pool. It refuses to exceed
// the randomisation bound of the number space.
func Generate(tx *store.Tx, gtin string, spec Spec, n int) error {
	if spec.Length < 1 || spec.Length > 20 {
		return fmt.Errorf("serial length %d: want 1..20", spec.Length)
	}
	total := float64(Issued(tx, gtin) + Available(tx, gtin) + n)
	if total > spec.Capacity() {
		return fmt.Errorf("GTIN %s: %.0f serials would exceed 1/10,000 of the %d-character %s number space (at most %.0f): use longer serials",
			gtin, total, spec.Length, spec.Alphabet, math.Floor(spec.Capacity()))
	}
	alpha := spec.alphabet()
	max := big.NewInt(int64(len(alpha)))
	buf := make([]byte, spec.Length)
	for made, tries := 0, 0; made < n; tries++ {
		if tries > 64*n+64 {
			return fmt.Errorf("GTIN %s: could not draw %d unused serials", gtin, n)
		}
		for i := range buf {
			r, err := rand.Int(rand.Reader, max)
			if err != nil {
				return err
			}
			buf[i] = alpha[r.Int64()]
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

// Import validates a list of serials from a Level 4 system and adds them
// to the pool, all or nothing: CSET 82 characters, the GTIN's length, no
// duplicates in the list, none already used or pooled.
func Import(tx *store.Tx, gtin string, spec Spec, list []Entry) error {
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
	for _, e := range list {
		if err := add(tx, gtin, e.Serial); err != nil {
			return err
		}
	}
	return nil
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

// Reserve moves n serials from the GTIN's pool to the batch, in the pool's
// random order, and returns them.
func Reserve(tx *store.Tx, gtin, batch string, n int) ([]string, error) {
	if have := Available(tx, gtin); have < n {
		return nil, fmt.Errorf("GTIN %s has %d serials in the pool, %d needed", gtin, have, n)
	}
	out := make([]string, 0, n)
	for len(out) < n {
		k, v := tx.First(store.Pool, prefix(gtin))
		if k == nil {
			return nil, fmt.Errorf("GTIN %s: pool counter says %d but the pool is empty", gtin, Available(tx, gtin))
		}
		serial := string(v)
		if err := tx.Delete(store.Pool, k); err != nil {
			return nil, err
		}
		if err := tx.Delete(store.PoolIndex, key(gtin, serial)); err != nil {
			return nil, err
		}
		rk := append([]byte(batch+"\x00"), k[len(gtin)+1:]...)
		if err := tx.Put(store.Reserved, rk, []byte(gtin+"\x00"+serial)); err != nil {
			return nil, err
		}
		out = append(out, serial)
	}
	if err := addCount(tx, "pool", gtin, -n); err != nil {
		return nil, err
	}
	if err := addCount(tx, "issued", gtin, n); err != nil {
		return nil, err
	}
	return out, addCount(tx, "reserved", batch, n)
}

// Reserved returns how many serials the batch still holds unused.
func Reserved(tx *store.Tx, batch string) int { return getCount(tx, "reserved", batch) }

// ErrExhausted: the batch used all its reserved serials.
var ErrExhausted = errors.New("no reserved serial left for the batch")

// Take hands out the batch's next reserved serial. The caller records it as
// used (the Units bucket) in the same transaction.
func Take(tx *store.Tx, batch string) (gtin, serial string, err error) {
	k, v := tx.First(store.Reserved, []byte(batch+"\x00"))
	if k == nil {
		return "", "", ErrExhausted
	}
	if err := tx.Delete(store.Reserved, k); err != nil {
		return "", "", err
	}
	g, s, ok := strings.Cut(string(v), "\x00")
	if !ok {
		return "", "", fmt.Errorf("reserved serial entry %q is corrupt", v)
	}
	return g, s, addCount(tx, "reserved", batch, -1)
}

// Release returns the batch's unused serials to the pool and lists them
// (for the record that documents the return).
func Release(tx *store.Tx, batch string) ([]string, error) {
	var out []string
	for {
		gtin, serial, err := Take(tx, batch)
		if errors.Is(err, ErrExhausted) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if err := add(tx, gtin, serial); err != nil {
			return nil, err
		}
		if err := addCount(tx, "issued", gtin, -1); err != nil {
			return nil, err
		}
		out = append(out, serial)
	}
}
