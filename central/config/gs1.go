package config

import (
	"regexp"
	"strings"

	"github.com/serialine/serialine/sync/gs1"
)

// GS1 is the master data central needs to write EPC URIs, EPCIS documents
// and shipments. EPC URIs split a GTIN, SSCC or GLN at the end of the GS1
// company prefix, whose length cannot be derived from the number itself:
// exports use the longest prefix listed here that the number starts with,
// and fail (naming the number) when none does, never guessing.
type GS1 struct {
	// CompanyPrefixes are the GS1 company prefixes (4 to 12 digits) of the
	// GTINs, SSCCs and GLNs central exports, e.g. ["9506000"].
	CompanyPrefixes []string `yaml:"company_prefixes"`
	// GLN is this site's GLN: EPCIS sender, ship-from, read point and
	// business location (13 digits).
	GLN string `yaml:"gln"`
	// Name is the company or site name (master data, HTML summaries).
	Name string `yaml:"name"`
	// ReceiverGLN is the SBDH receiver of EPCIS documents whose scope has no
	// single shipment destination (e.g. an archive copy): usually the own GLN.
	ReceiverGLN string `yaml:"receiver_gln"`
	// Lines map line edges to their own SGLN extension (read point);
	// without one the read point is the site GLN.
	Lines []LineLocation `yaml:"lines"`
	// Products are the EPCIS master data (EPCClass vocabulary) per GTIN.
	Products []Product `yaml:"products"`
}

// LineLocation is the read point of one line edge.
type LineLocation struct {
	Edge      string `yaml:"edge"`
	Extension string `yaml:"extension"` // SGLN extension, e.g. "line1"
}

// Product is EPCIS master data of one GTIN, as the GS1 US DSCSA guideline
// lists it (cbvmda attributes).
type Product struct {
	GTIN         string `yaml:"gtin"`
	NDC          string `yaml:"ndc"` // US NDC with hyphens (4-4-2, 5-3-2 or 5-4-1)
	Name         string `yaml:"name"`
	DosageForm   string `yaml:"dosage_form"` // e.g. TABLET
	Strength     string `yaml:"strength"`    // e.g. 500 mg
	NetContent   string `yaml:"net_content"` // e.g. 20 TABLET
	Manufacturer string `yaml:"manufacturer"`
}

var ndcRe = regexp.MustCompile(`^(\d{4}-\d{4}-\d{2}|\d{5}-\d{3}-\d{2}|\d{5}-\d{4}-\d{1})$`)

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validate reports every problem of the gs1 section.
func (g *GS1) validate(add func(format string, a ...any)) {
	for i, p := range g.CompanyPrefixes {
		if len(p) < 4 || len(p) > 12 || !digits(p) {
			add("gs1.company_prefixes[%d]: %q is not 4 to 12 digits", i, p)
		}
	}
	gln := func(field, v string) {
		if v == "" {
			return
		}
		if len(v) != 13 || !digits(v) {
			add("%s: %q is not a 13-digit GLN", field, v)
		} else if err := gs1.VerifyCheckDigit(v); err != nil {
			add("%s: GLN %s: %v", field, v, err)
		}
	}
	gln("gs1.gln", g.GLN)
	gln("gs1.receiver_gln", g.ReceiverGLN)
	for i, l := range g.Lines {
		if l.Edge == "" || l.Extension == "" || strings.ContainsAny(l.Extension, ".:/ ") {
			add("gs1.lines[%d]: edge and an SGLN extension without '.', ':', '/' or spaces are required", i)
		}
	}
	for i, p := range g.Products {
		if len(p.GTIN) != 14 || !digits(p.GTIN) {
			add("gs1.products[%d].gtin: %q is not a GTIN-14", i, p.GTIN)
		} else if err := gs1.VerifyCheckDigit(p.GTIN); err != nil {
			add("gs1.products[%d].gtin: %s: %v", i, p.GTIN, err)
		}
		if p.NDC != "" && !ndcRe.MatchString(p.NDC) {
			add("gs1.products[%d].ndc: %q is not an NDC with hyphens (4-4-2, 5-3-2 or 5-4-1)", i, p.NDC)
		}
	}
}

// CompanyPrefix returns the longest configured company prefix that the
// digits (a GTIN-14 without its indicator digit, an SSCC without its
// extension digit, or a GLN) start with.
func (g *GS1) CompanyPrefix(digits string) (string, bool) {
	best := ""
	for _, p := range g.CompanyPrefixes {
		if strings.HasPrefix(digits, p) && len(p) > len(best) {
			best = p
		}
	}
	return best, best != ""
}

// Product returns the master data of a GTIN.
func (g *GS1) Product(gtin string) (Product, bool) {
	for _, p := range g.Products {
		if p.GTIN == gtin {
			return p, true
		}
	}
	return Product{}, false
}

// LineExtension returns the SGLN extension of an edge's read point.
func (g *GS1) LineExtension(edge string) (string, bool) {
	for _, l := range g.Lines {
		if l.Edge == edge {
			return l.Extension, true
		}
	}
	return "", false
}
