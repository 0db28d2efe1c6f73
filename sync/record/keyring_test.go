package record

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func seededKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = b
	return ed25519.NewKeyFromSeed(seed)
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// rotatingChain: records 1..3 signed by old (3 is key.rotated announcing
// new), 4..6 signed by new (checkpoints at 2, 3 and 6).
func rotatingChain(old, new ed25519.PrivateKey, announce ed25519.PublicKey) []Record {
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var prev Hash
	var out []Record
	for i := 1; i <= 6; i++ {
		r := Record{Edge: "edge-1", Epoch: 7, Seq: uint64(i), Kind: KindUnitVerified, Time: base.Add(time.Duration(i) * time.Second), Body: []byte(`{"pass":true}`), Prev: prev}
		if i == 3 {
			r.Kind = KindKeyRotated
			r.Body, _ = json.Marshal(KeyRotated{Old: EncodePublicKey(pubOf(old)), New: EncodePublicKey(announce)})
		}
		h := r.Hash()
		switch i {
		case 2, 3:
			r.Sig = SignHash(old, h)
		case 6:
			r.Sig = SignHash(new, h)
		}
		out = append(out, r)
		prev = h
	}
	return out
}

func TestRotationFollowedOffline(t *testing.T) {
	old, new := seededKey(1), seededKey(2)
	recs := rotatingChain(old, new, pubOf(new))
	// Holding only the old key, the chain verifies: the announcement is
	// signed by the old key and names the new one.
	if n, err := VerifyRun(pubOf(old), Head{}, recs); err != nil || n != 6 {
		t.Fatalf("offline: %d %v", n, err)
	}
	// Central requires the announced key to be enrolled.
	_, err := VerifyRunRing(Ring(pubOf(old)), Head{}, recs, true)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Seq != 3 || !strings.Contains(err.Error(), "not enrolled") {
		t.Fatalf("central without the new key: %v", err)
	}
	ring := KeyRing{{Pub: pubOf(old)}, {Pub: pubOf(new)}}
	if _, err := VerifyRunRing(ring, Head{}, recs, true); err != nil {
		t.Fatalf("central with both keys: %v", err)
	}
}

func TestRotationRetiresOldKey(t *testing.T) {
	old, new := seededKey(1), seededKey(2)
	// After announcing the new key, a record signed by the old key fails,
	// even though the old key is still enrolled (overlap).
	recs := rotatingChain(old, new, pubOf(new))
	recs[5].Sig = SignHash(old, recs[5].Hash())
	ring := KeyRing{{Pub: pubOf(old)}, {Pub: pubOf(new)}}
	_, err := VerifyRunRing(ring, Head{}, recs, true)
	if !errors.Is(err, ErrSignature) || err.(*ChainError).Seq != 6 {
		t.Fatalf("old key after rotation: %v", err)
	}
}

func TestKeyWindows(t *testing.T) {
	old, new := seededKey(1), seededKey(2)
	recs := chain(t, old, 4, 2) // times 10:00:00.000 .. .003
	cut := recs[2].Time         // old key valid until seq 3's time (exclusive)
	ring := KeyRing{{Pub: pubOf(old), Until: cut}, {Pub: pubOf(new), From: cut}}
	// seq 2 (signed, before the cut) verifies, seq 4 (after) does not.
	_, err := VerifyRunRing(ring, Head{}, recs, true)
	if !errors.Is(err, ErrSignature) || err.(*ChainError).Seq != 4 {
		t.Fatalf("old key past its window: %v", err)
	}
	// The same chain with the overlap extended verifies.
	ring[0].Until = cut.Add(time.Hour)
	if _, err := VerifyRunRing(ring, Head{}, recs, true); err != nil {
		t.Fatal(err)
	}
}

func TestKeyRotatedMustBeSigned(t *testing.T) {
	old, new := seededKey(1), seededKey(2)
	recs := rotatingChain(old, new, pubOf(new))
	recs[2].Sig = nil
	_, err := VerifyRun(pubOf(old), Head{}, recs)
	if !errors.Is(err, ErrSignature) || err.(*ChainError).Seq != 3 {
		t.Fatalf("unsigned key.rotated: %v", err)
	}
}

// A key.rotated body is data from an edge: any bytes, correctly chained
// and signed, either announce a key or fail as malformed, never panic.
func FuzzKeyRotated(f *testing.F) {
	old, new := seededKey(1), seededKey(2)
	good, _ := json.Marshal(KeyRotated{Old: EncodePublicKey(pubOf(old)), New: EncodePublicKey(pubOf(new))})
	f.Add(good)
	f.Add([]byte(`{"old_public_key":"","new_public_key":"AAAA"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := Record{Edge: "e", Epoch: 1, Seq: 1, Kind: KindKeyRotated, Time: time.Unix(1, 0).UTC(), Body: body}
		r.Sig = SignHash(old, r.Hash())
		_, err := VerifyRun(pubOf(old), Head{}, []Record{r})
		if _, _, perr := ParseKeyRotated(&r); (perr == nil) != (err == nil) && !errors.Is(err, ErrSignature) {
			t.Fatalf("parse %v, verify %v", perr, err)
		}
	})
}
