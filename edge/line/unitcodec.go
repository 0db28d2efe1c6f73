package line

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/serialine/serialine/edge/store"
)

// Unit states are the most numerous values in the store (one per serial
// ever used) and the aggregation interlock reads thousands of them per
// pallet close, so they have a compact binary encoding instead of JSON:
//
//	0x01 | uvarint seq | status byte | float64 grade (BE) | batch | reason | parent
//
// with each string as uvarint length + bytes. Values starting with '{' are
// read as JSON (stores written before this encoding).

const unitCodecV1 = 0x01

var unitStatuses = []string{UnitCommissioned, UnitGood, UnitRejected, UnitDecommissioned, UnitSample, UnitDestroyed}

func unitStatusCode(s string) (byte, bool) {
	for i, x := range unitStatuses {
		if x == s {
			return byte(i), true
		}
	}
	return 0, false
}

func (u *unit) encode() ([]byte, error) {
	code, ok := unitStatusCode(u.Status)
	if !ok {
		return nil, fmt.Errorf("line engine: unit status %q has no code", u.Status)
	}
	b := make([]byte, 0, 1+10+1+8+3+len(u.Batch)+len(u.Reason)+len(u.Parent))
	b = append(b, unitCodecV1)
	b = binary.AppendUvarint(b, u.Seq)
	b = append(b, code)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(u.Grade))
	for _, s := range []string{u.Batch, u.Reason, u.Parent} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

var errUnitValue = errors.New("unit value is corrupt")

func (u *unit) decode(v []byte) error {
	if len(v) > 0 && v[0] == '{' {
		return json.Unmarshal(v, u)
	}
	if len(v) < 1 || v[0] != unitCodecV1 {
		return errUnitValue
	}
	p := 1
	seq, n := binary.Uvarint(v[p:])
	if n <= 0 {
		return errUnitValue
	}
	p += n
	if len(v) < p+9 {
		return errUnitValue
	}
	code := int(v[p])
	if code >= len(unitStatuses) {
		return errUnitValue
	}
	p++
	grade := math.Float64frombits(binary.BigEndian.Uint64(v[p:]))
	if math.IsNaN(grade) || math.IsInf(grade, 0) {
		return errUnitValue
	}
	p += 8
	var strs [3]string
	for i := range strs {
		l, n := binary.Uvarint(v[p:])
		if n <= 0 || l > uint64(len(v)-p-n) {
			return errUnitValue
		}
		p += n
		strs[i] = string(v[p : p+int(l)])
		p += int(l)
	}
	if p != len(v) {
		return errUnitValue
	}
	*u = unit{Seq: seq, Status: unitStatuses[code], Grade: grade, Batch: strs[0], Reason: strs[1], Parent: strs[2]}
	return nil
}

// getUnit reads a unit's state; ok=false when the serial was never used.
func getUnit(tx *store.Tx, key []byte, u *unit) (bool, error) {
	v := tx.Peek(store.Units, key) // decode copies what it keeps
	if v == nil {
		return false, nil
	}
	if err := u.decode(v); err != nil {
		return true, fmt.Errorf("store: units/%q: %w", key, err)
	}
	return true, nil
}

func putUnit(tx *store.Tx, key []byte, u *unit) error {
	v, err := u.encode()
	if err != nil {
		return err
	}
	return tx.Put(store.Units, key, v)
}
