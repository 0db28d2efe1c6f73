package epcis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

type ecmaRegexp struct{ re *regexp2.Regexp }

func (r ecmaRegexp) MatchString(s string) bool {
	ok, err := r.re.MatchString(s)
	return err == nil && ok
}

func (r ecmaRegexp) String() string { return r.re.String() }

// CompileSchema compiles GS1's EPCIS 2.0 JSON schema (EPCIS-JSON-Schema.json).
// Its patterns use ECMAScript look-aheads that Go's regexp rejects, so they
// run on regexp2 in ECMAScript mode; formats (date-time, uri) are asserted.
func CompileSchema(path string) (*jsonschema.Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
		re, err := regexp2.Compile(s, regexp2.ECMAScript)
		if err != nil {
			return nil, err
		}
		return ecmaRegexp{re}, nil
	})
	c.AssertFormat()
	abs, _ := filepath.Abs(path)
	url := "file://" + filepath.ToSlash(abs)
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// ValidateJSON validates an EPCIS 2.0 JSON document against the schema.
func ValidateJSON(s *jsonschema.Schema, r io.Reader) error {
	doc, err := jsonschema.UnmarshalJSON(r)
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(doc)
}

// ValidateXML validates an EPCIS 1.2 XML file against GS1's XSD
// (EPCglobal-epcis-1_2.xsd) with xmllint (Debian libxml2-utils).
func ValidateXML(ctx context.Context, xsd, file string) error {
	cmd := exec.CommandContext(ctx, "xmllint", "--noout", "--schema", xsd, file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xmllint %s: %v\n%s", file, err, out.String())
	}
	return nil
}
