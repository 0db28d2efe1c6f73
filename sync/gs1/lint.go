package gs1

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Linter names a content check of the GS1 Barcode Syntax Dictionary, applied
// to one component of an AI's value (e.g. csum: the GS1 mod-10 check digit).
type Linter uint8

// The linters the dictionary uses. Their semantics follow GS1's reference
// "Syntax Tests" (ref.gs1.org/tools/gs1-barcode-syntax-resource/syntax-tests).
const (
	LintCsum Linter = iota + 1
	LintCsumAlpha
	LintGCPPos1
	LintGCPPos2
	LintPercentEncoding
	LintISO3166
	LintISO3166or999
	LintISO3166Alpha2
	LintISO4217
	LintISO5218
	LintYYMMDD
	LintYYMMD0
	LintYYYYMMDD
	LintHHMI
	LintHH
	LintMI
	LintSS
	LintHyphen
	LintYesNo
	LintZero
	LintNonZero
	LintNoZeroPrefix
	LintHasNonDigit
	LintPieceOfTotal
	LintPosInSeqSlash
	LintWinding
	LintMediaType
	LintPackageType
	LintImporterIndex
	LintLatitude
	LintLongitude
	LintIBAN
	// LintCouponCode and LintCouponPosOffer (North American coupon AIs 8110
	// and 8112) are recognised but their internal structure is NOT checked:
	// such values are validated for length and CSET 82 only. Coupons are no
	// part of pharmaceutical serialization.
	LintCouponCode
	LintCouponPosOffer
)

var linterNames = map[Linter]string{
	LintCsum: "csum", LintCsumAlpha: "csumalpha", LintGCPPos1: "gcppos1", LintGCPPos2: "gcppos2",
	LintPercentEncoding: "pcenc", LintISO3166: "iso3166", LintISO3166or999: "iso3166999",
	LintISO3166Alpha2: "iso3166alpha2", LintISO4217: "iso4217", LintISO5218: "iso5218",
	LintYYMMDD: "yymmdd", LintYYMMD0: "yymmd0", LintYYYYMMDD: "yyyymmdd", LintHHMI: "hhmi",
	LintHH: "hh", LintMI: "mi", LintSS: "ss", LintHyphen: "hyphen", LintYesNo: "yesno",
	LintZero: "zero", LintNonZero: "nonzero", LintNoZeroPrefix: "nozeroprefix",
	LintHasNonDigit: "hasnondigit", LintPieceOfTotal: "pieceoftotal", LintPosInSeqSlash: "posinseqslash",
	LintWinding: "winding", LintMediaType: "mediatype", LintPackageType: "packagetype",
	LintImporterIndex: "importeridx", LintLatitude: "latitude", LintLongitude: "longitude",
	LintIBAN: "iban", LintCouponCode: "couponcode", LintCouponPosOffer: "couponposoffer",
}

// String is the linter's name in the dictionary.
func (l Linter) String() string {
	if n, ok := linterNames[l]; ok {
		return n
	}
	return fmt.Sprintf("Linter(%d)", uint8(l))
}

// lintErr is a linter's verdict: the rule and what is wrong.
type lintErr struct{ rule, msg string }

func fail(rule, format string, a ...any) *lintErr {
	return &lintErr{rule: rule, msg: fmt.Sprintf(format, a...)}
}

// currentYear is the reference year for the GS1 century of YY dates.
var currentYear = func() int { return time.Now().UTC().Year() }

// check runs the linter on one component value.
func (l Linter) check(s string) *lintErr {
	switch l {
	case LintCsum:
		if len(s) < 2 {
			return fail("check digit", "%q is too short to carry one", s)
		}
		want, err := CheckDigit(s[:len(s)-1])
		if err != nil {
			return fail("check digit", "%v", err)
		}
		if got := s[len(s)-1]; got != want {
			return fail("check digit", "want %c, got %c", want, got)
		}
	case LintCsumAlpha:
		return checkPair(s)
	case LintGCPPos1:
		return gcp(s, 1)
	case LintGCPPos2:
		return gcp(s, 2)
	case LintPercentEncoding:
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
				return fail("percent-encoding", "%q at position %d is not %%XX", s[i:min(i+3, len(s))], i+1)
			}
		}
	case LintISO3166:
		if !iso3166Numeric[s] {
			return fail("country code", "%q is not an ISO 3166-1 numeric country code", s)
		}
	case LintISO3166or999:
		if s != "999" && !iso3166Numeric[s] {
			return fail("country code", "%q is neither an ISO 3166-1 numeric country code nor 999", s)
		}
	case LintISO3166Alpha2:
		if !iso3166Alpha2[s] {
			return fail("country code", "%q is not an ISO 3166-1 alpha-2 country code", s)
		}
	case LintISO4217:
		if !iso4217Numeric[s] {
			return fail("currency code", "%q is not an ISO 4217 numeric currency code", s)
		}
	case LintISO5218:
		if s != "0" && s != "1" && s != "2" && s != "9" {
			return fail("sex code", "%q: want 0, 1, 2 or 9 (ISO/IEC 5218)", s)
		}
	case LintYYMMDD:
		return checkDate(s, false, true)
	case LintYYMMD0:
		return checkDate(s, true, true)
	case LintYYYYMMDD:
		return checkDate(s, false, false)
	case LintHHMI:
		if len(s) != 4 {
			return fail("time", "%q: want HHMI", s)
		}
		if e := checkRange("time", "hour", s[:2], 23); e != nil {
			return e
		}
		return checkRange("time", "minute", s[2:], 59)
	case LintHH:
		return checkRange("time", "hour", s, 23)
	case LintMI:
		return checkRange("time", "minute", s, 59)
	case LintSS:
		return checkRange("time", "second", s, 59)
	case LintHyphen:
		if strings.Trim(s, "-") != "" {
			return fail("hyphen", "%q: want only -", s)
		}
	case LintYesNo:
		if s != "0" && s != "1" {
			return fail("flag", "%q: want 0 or 1", s)
		}
	case LintZero:
		if s != "0" {
			return fail("zero", "%q: want 0", s)
		}
	case LintNonZero:
		if strings.Trim(s, "0") == "" {
			return fail("non-zero", "%q must not be zero", s)
		}
	case LintNoZeroPrefix:
		if strings.HasPrefix(s, "0") {
			return fail("zero prefix", "%q must not start with 0", s)
		}
	case LintHasNonDigit:
		if isDigits(s) {
			return fail("non-digit", "%q needs at least one character that is not a digit", s)
		}
	case LintPieceOfTotal:
		return pieceOfTotal(s)
	case LintPosInSeqSlash:
		return posInSeq(s)
	case LintWinding:
		if s != "0" && s != "1" && s != "9" {
			return fail("winding direction", "%q: want 0 (face out), 1 (face in) or 9 (undefined)", s)
		}
	case LintMediaType:
		n, err := strconv.Atoi(s)
		if len(s) != 2 || err != nil || !(n >= 1 && n <= 10 || n >= 80 && n <= 99) {
			return fail("media type", "%q is not an AIDC media type (01-10, 80-99)", s)
		}
	case LintPackageType:
		if !packageTypes[s] {
			return fail("package type", "%q is not in GS1's PackageTypeCode list", s)
		}
	case LintImporterIndex:
		if len(s) != 1 || !(s[0] == '-' || s[0] == '_' || isAlnum(s[0])) {
			return fail("importer index", "%q: want one character of - 0-9 A-Z _ a-z", s)
		}
	case LintLatitude:
		return coordinate("latitude", s, 1800000000)
	case LintLongitude:
		return coordinate("longitude", s, 3600000000)
	case LintIBAN:
		return iban(s)
	case LintCouponCode, LintCouponPosOffer:
		// Structure not checked (see the constant's comment).
	default:
		return fail("linter", "%v is not implemented", l)
	}
	return nil
}

// cset32 holds the check characters of the alphanumeric check pair.
const cset32 = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// cset82Order is CSET 82 in the order that gives each character its value.
const cset82Order = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

// CheckPair computes the GS1 check character pair of alphanumeric keys (GMN,
// MUDI): data characters weighted by increasing primes from the right, sum
// mod 1021, split into two CSET 32 characters.
func CheckPair(data string) (string, error) {
	if len(data) > len(primes) {
		return "", fmt.Errorf("%d characters: longer than this implementation supports (%d)", len(data), len(primes))
	}
	sum := 0
	for i := 0; i < len(data); i++ {
		v := strings.IndexByte(cset82Order, data[i])
		if v < 0 {
			return "", fmt.Errorf("%q at position %d is not in CSET 82", data[i], i+1)
		}
		sum += v * primes[len(data)-1-i]
	}
	sum %= 1021
	return string([]byte{cset32[sum>>5], cset32[sum&31]}), nil
}

var primes = func() []int {
	var p []int
	for n := 2; len(p) < 97; n++ {
		prime := true
		for _, q := range p {
			if q*q > n {
				break
			}
			if n%q == 0 {
				prime = false
				break
			}
		}
		if prime {
			p = append(p, n)
		}
	}
	return p
}()

func checkPair(s string) *lintErr {
	if len(s) < 2 {
		return fail("check character pair", "%q is too short to carry one", s)
	}
	got := s[len(s)-2:]
	for i := 0; i < 2; i++ {
		if strings.IndexByte(cset32, got[i]) < 0 {
			return fail("check character pair", "%q at position %d is not in CSET 32", got[i], len(s)-1+i)
		}
	}
	want, err := CheckPair(s[:len(s)-2])
	if err != nil {
		return fail("check character pair", "%v", err)
	}
	if want != got {
		return fail("check character pair", "want %s, got %s", want, got)
	}
	return nil
}

// gcp checks that a GS1 Company Prefix can start at position pos: at least
// its minimum length of 4 digits. No prefix register is consulted.
func gcp(s string, pos int) *lintErr {
	p := s[min(pos-1, len(s)):]
	if len(p) < 4 || !isDigits(p[:4]) {
		return fail("company prefix", "%q: a GS1 Company Prefix (at least 4 digits) must start at position %d", s, pos)
	}
	return nil
}

func checkRange(rule, what, s string, max int) *lintErr {
	n, err := strconv.Atoi(s)
	if len(s) != 2 || err != nil || n < 0 || n > max {
		return fail(rule, "%s %s not valid", what, s)
	}
	return nil
}

// checkDate validates YYMMDD (two-digit years: GS1 General Specifications
// §7.12 century rule relative to the current year) or YYYYMMDD: month
// 01-12, a day that exists in that month (leap years included), or 00 when
// dayZero.
func checkDate(s string, dayZero, twoDigitYear bool) *lintErr {
	want := 8
	if twoDigitYear {
		want = 6
	}
	if len(s) != want || !isDigits(s) {
		return fail("date", "%q: want %d digits", s, want)
	}
	var year int
	if twoDigitYear {
		year = FullYear(int(s[0]-'0')*10 + int(s[1]-'0'))
		s = s[2:]
	} else {
		year, _ = strconv.Atoi(s[:4])
		s = s[4:]
	}
	mm := int(s[0]-'0')*10 + int(s[1]-'0')
	dd := int(s[2]-'0')*10 + int(s[3]-'0')
	if mm < 1 || mm > 12 {
		return fail("date", "month %02d not valid", mm)
	}
	if dd == 0 {
		if dayZero {
			return nil
		}
		return fail("date", "day 00 not allowed")
	}
	if days := daysIn(year, mm); dd > days {
		return fail("date", "day %02d not valid for month %02d of %d", dd, mm, year)
	}
	return nil
}

// FullYear resolves a GS1 two-digit year: a year 51 to 99 years ahead of the
// current one is in the previous century, 50 or more years back is in the
// next century, anything else in the current century.
func FullYear(yy int) int {
	cy := currentYear()
	century := cy / 100 * 100
	switch d := yy - cy%100; {
	case d >= 51:
		return century - 100 + yy
	case d > -50:
		return century + yy
	default:
		return century + 100 + yy
	}
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func pieceOfTotal(s string) *lintErr {
	if !isDigits(s) || len(s)%2 != 0 {
		return fail("piece of total", "%q: want piece and total of equal width", s)
	}
	p, t := s[:len(s)/2], s[len(s)/2:]
	switch {
	case strings.Trim(p, "0") == "":
		return fail("piece of total", "piece number %s is zero", p)
	case strings.Trim(t, "0") == "":
		return fail("piece of total", "total %s is zero", t)
	case p > t:
		return fail("piece of total", "piece %s exceeds the total %s", p, t)
	}
	return nil
}

func posInSeq(s string) *lintErr {
	p, e, ok := strings.Cut(s, "/")
	if !ok || !isDigits(p) || !isDigits(e) {
		return fail("position in sequence", "%q: want POSITION/END", s)
	}
	if p[0] == '0' || e[0] == '0' {
		return fail("position in sequence", "%q: numbers must not be zero or start with 0", s)
	}
	if len(p) > len(e) || (len(p) == len(e) && p > e) {
		return fail("position in sequence", "%q: the position exceeds the end", s)
	}
	return nil
}

func coordinate(what, s string, max uint64) *lintErr {
	v, err := strconv.ParseUint(s, 10, 64)
	if len(s) != 10 || err != nil {
		return fail(what, "%q: want 10 digits", s)
	}
	if v > max {
		return fail(what, "%s exceeds %d", s, max)
	}
	return nil
}

func iban(s string) *lintErr {
	if len(s) < 4 {
		return fail("IBAN", "%q is too short", s)
	}
	if !iso3166Alpha2[s[:2]] {
		return fail("IBAN", "%q does not start with an ISO 3166-1 alpha-2 country code", s)
	}
	if len(s) > 34 {
		return fail("IBAN", "%q is longer than 34 characters", s)
	}
	if len(s) <= 10 {
		return fail("IBAN", "%q is too short", s)
	}
	r := s[4:] + s[:4]
	sum := 0
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c >= '0' && c <= '9':
			sum = (sum*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			sum = (sum*100 + int(c-'A') + 10) % 97
		default:
			return fail("IBAN", "%q at position %d: want 0-9 or A-Z", c, (i+4)%len(s)+1)
		}
	}
	if sum != 1 {
		return fail("IBAN", "check digits %s do not verify", s[2:4])
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
