package epcis

import (
	"fmt"
	"strings"
	"time"

	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/sync/gs1"
)

// URIs builds EPC URIs (GS1 Tag Data Standard) from GS1 keys. A GTIN, SSCC
// or GLN is split at the end of its GS1 company prefix, taken from the
// configured prefixes (config.GS1.CompanyPrefixes); a key no configured
// prefix matches is an error that names it.
type URIs struct{ GS1 *config.GS1 }

func (u URIs) prefix(what, key, digits string) (string, error) {
	p, ok := u.GS1.CompanyPrefix(digits)
	if !ok {
		return "", fmt.Errorf("%s %s: no GS1 company prefix configured for it (gs1.company_prefixes): the EPC URI needs the prefix length", what, key)
	}
	return p, nil
}

func checkKey(what, key string, n int) error {
	if len(key) != n || !isDigits(key) {
		return fmt.Errorf("%s %q: want %d digits", what, key, n)
	}
	if err := gs1.VerifyCheckDigit(key); err != nil {
		return fmt.Errorf("%s %s: %w", what, key, err)
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// itemRef returns "companyPrefix.indicatorItemRef" of a GTIN-14.
func (u URIs) itemRef(gtin string) (string, error) {
	if err := checkKey("GTIN", gtin, 14); err != nil {
		return "", err
	}
	p, err := u.prefix("GTIN", gtin, gtin[1:13])
	if err != nil {
		return "", err
	}
	return p + "." + gtin[:1] + gtin[1+len(p):13], nil
}

// SGTIN returns urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial.
func (u URIs) SGTIN(gtin, serial string) (string, error) {
	ir, err := u.itemRef(gtin)
	if err != nil {
		return "", err
	}
	if serial == "" || len(serial) > 20 {
		return "", fmt.Errorf("serial %q of GTIN %s: want 1 to 20 characters", serial, gtin)
	}
	s, err := escape(serial)
	if err != nil {
		return "", fmt.Errorf("serial %q of GTIN %s: %w", serial, gtin, err)
	}
	return "urn:epc:id:sgtin:" + ir + "." + s, nil
}

// SGTINPattern returns urn:epc:idpat:sgtin:CompanyPrefix.IndicatorItemRef.*
// (the EPCClass vocabulary element of a GTIN's master data).
func (u URIs) SGTINPattern(gtin string) (string, error) {
	ir, err := u.itemRef(gtin)
	if err != nil {
		return "", err
	}
	return "urn:epc:idpat:sgtin:" + ir + ".*", nil
}

// LGTIN returns urn:epc:class:lgtin:CompanyPrefix.IndicatorItemRef.Lot.
func (u URIs) LGTIN(gtin, lot string) (string, error) {
	ir, err := u.itemRef(gtin)
	if err != nil {
		return "", err
	}
	l, err := escape(lot)
	if err != nil {
		return "", fmt.Errorf("lot %q: %w", lot, err)
	}
	return "urn:epc:class:lgtin:" + ir + "." + l, nil
}

// SSCC returns urn:epc:id:sscc:CompanyPrefix.ExtensionSerialRef.
func (u URIs) SSCC(sscc string) (string, error) {
	if err := checkKey("SSCC", sscc, 18); err != nil {
		return "", err
	}
	p, err := u.prefix("SSCC", sscc, sscc[1:17])
	if err != nil {
		return "", err
	}
	return "urn:epc:id:sscc:" + p + "." + sscc[:1] + sscc[1+len(p):17], nil
}

// SGLN returns urn:epc:id:sgln:CompanyPrefix.LocationRef.Extension
// (extension "0" when empty).
func (u URIs) SGLN(gln, ext string) (string, error) {
	if err := checkKey("GLN", gln, 13); err != nil {
		return "", err
	}
	p, err := u.prefix("GLN", gln, gln[:12])
	if err != nil {
		return "", err
	}
	if ext == "" {
		ext = "0"
	}
	e, err := escape(ext)
	if err != nil {
		return "", fmt.Errorf("SGLN extension %q: %w", ext, err)
	}
	return "urn:epc:id:sgln:" + p + "." + gln[len(p):12] + "." + e, nil
}

// escape percent-encodes the characters of GS1 AI encodable character set
// 82 that an EPC URI component must not carry literally (TDS: " % & / < > ?).
func escape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !gs1.IsCSET82(c) {
			return "", fmt.Errorf("character %q is not in GS1 character set 82", c)
		}
		switch c {
		case '"', '%', '&', '/', '<', '>', '?':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// ExpiryDate converts a GS1 YYMMDD date to YYYY-MM-DD. Day 00 means the
// last day of the month; years follow the GS1 sliding century (GS1 General
// Specifications 7.12), relative to now.
func ExpiryDate(yymmdd string, now time.Time) (string, error) {
	if len(yymmdd) != 6 || !isDigits(yymmdd) {
		return "", fmt.Errorf("expiry %q: want YYMMDD", yymmdd)
	}
	yy := int(yymmdd[0]-'0')*10 + int(yymmdd[1]-'0')
	mm := int(yymmdd[2]-'0')*10 + int(yymmdd[3]-'0')
	dd := int(yymmdd[4]-'0')*10 + int(yymmdd[5]-'0')
	if mm < 1 || mm > 12 {
		return "", fmt.Errorf("expiry %q: month %02d", yymmdd, mm)
	}
	cur := now.Year()
	century := cur / 100 * 100
	diff := yy - cur%100
	switch {
	case diff >= 51 && diff <= 99:
		century -= 100
	case diff >= -99 && diff <= -50:
		century += 100
	}
	year := century + yy
	last := time.Date(year, time.Month(mm)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	if dd == 0 {
		dd = last
	}
	if dd > last {
		return "", fmt.Errorf("expiry %q: day %02d does not exist", yymmdd, dd)
	}
	return fmt.Sprintf("%04d-%02d-%02d", year, mm, dd), nil
}

// NDC11 converts a hyphenated NDC (4-4-2, 5-3-2, 5-4-1) to the 11-digit
// 5-4-2 form (FDA_NDC_11) by zero-padding the short segment.
func NDC11(ndc string) (string, error) {
	p := strings.Split(ndc, "-")
	if len(p) != 3 {
		return "", fmt.Errorf("NDC %q: want three hyphenated segments", ndc)
	}
	for _, s := range p {
		if !isDigits(s) {
			return "", fmt.Errorf("NDC %q: segments must be digits", ndc)
		}
	}
	switch fmt.Sprint(len(p[0]), len(p[1]), len(p[2])) {
	case "4 4 2":
		return "0" + p[0] + p[1] + p[2], nil
	case "5 3 2":
		return p[0] + "0" + p[1] + p[2], nil
	case "5 4 1":
		return p[0] + p[1] + "0" + p[2], nil
	}
	return "", fmt.Errorf("NDC %q: segment lengths must be 4-4-2, 5-3-2 or 5-4-1", ndc)
}
