package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

func configCmd(args []string, stdout, stderr io.Writer) int {
	devices.Register() // the real drivers' options are part of the config
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: serialine config check FILE... | serialine config schema")
		return 2
	}
	switch args[0] {
	case "schema":
		b, err := config.Schema()
		if err != nil {
			fmt.Fprintln(stderr, "serialine:", err)
			return 1
		}
		stdout.Write(b)
		fmt.Fprintln(stdout)
		return 0
	case "check":
		if len(args) < 2 {
			fmt.Fprintln(stderr, "usage: serialine config check FILE...")
			return 2
		}
		code := 0
		for _, f := range args[1:] {
			if _, err := config.Load(f); err != nil {
				fmt.Fprintln(stderr, err)
				code = 1
				continue
			}
			fmt.Fprintf(stdout, "%s: ok\n", f)
		}
		return code
	}
	fmt.Fprintf(stderr, "serialine config: unknown subcommand %q\n", args[0])
	return 2
}

const gs1Usage = `usage: serialine gs1 parse [--out json|bracketed|element|dl] [--stem URL] DATA
       serialine gs1 ndc [--format 4-4-2|5-3-2|5-4-1] [--indicator 0-8] NDC

parse accepts scanner output (]d2...), element strings, the bracketed form
and GS1 Digital Link URIs; write the GS separator as \x1d or <GS>, or give
DATA as - to read it from stdin. It prints the AIs as JSON (AI -> value) and
exits 0, or names the AI and rule that failed and exits 1.
ndc prints the NDC-10, NDC-11 and GTIN-14 of an NDC.
`

func gs1Cmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, gs1Usage)
		return 2
	}
	switch args[0] {
	case "parse":
		return gs1Parse(args[1:], stdin, stdout, stderr)
	case "ndc":
		return gs1NDC(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "serialine gs1: unknown subcommand %q\n%s", args[0], gs1Usage)
	return 2
}

// stdin is where `serialine gs1 parse -` reads (a variable for tests).
var stdin io.Reader = os.Stdin

func gs1Parse(args []string, in io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gs1 parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "json", "output: json (AI -> value), bracketed, element (GS as \\x1d) or dl (GS1 Digital Link)")
	stem := fs.String("stem", gs1.CanonicalDLStem, "Digital Link stem for --out dl")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, gs1Usage)
		return 2
	}
	data := fs.Arg(0)
	if data == "-" {
		b, err := io.ReadAll(io.LimitReader(in, 1<<20))
		if err != nil {
			fmt.Fprintln(stderr, "serialine gs1:", err)
			return 1
		}
		data = strings.TrimRight(string(b), "\r\n")
	}
	data = strings.NewReplacer(`\x1d`, gs1.GS, `\x1D`, gs1.GS, "<GS>", gs1.GS, "{GS}", gs1.GS).Replace(data)
	els, err := gs1.Parse(data)
	if err != nil {
		fmt.Fprintln(stderr, "serialine gs1:", err)
		return 1
	}
	switch *out {
	case "json":
		stdout.Write(els.JSONObject())
		fmt.Fprintln(stdout)
	case "bracketed":
		fmt.Fprintln(stdout, els.Bracketed())
	case "element":
		fmt.Fprintln(stdout, strings.ReplaceAll(els.ElementString(), gs1.GS, `\x1d`))
	case "dl":
		dl, err := els.DigitalLink(*stem)
		if err != nil {
			fmt.Fprintln(stderr, "serialine gs1:", err)
			return 1
		}
		fmt.Fprintln(stdout, dl)
	default:
		fmt.Fprintf(stderr, "serialine gs1: --out %q: want json, bracketed, element or dl\n", *out)
		return 2
	}
	return 0
}

func gs1NDC(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gs1 ndc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "", "segmentation of a 10-digit NDC without hyphens: 4-4-2, 5-3-2 or 5-4-1")
	indicator := fs.String("indicator", "0", "GTIN-14 indicator digit (0 unit of sale, 1-8 higher packaging levels)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || len(*indicator) != 1 {
		fmt.Fprint(stderr, gs1Usage)
		return 2
	}
	n, err := gs1.ParseNDC(fs.Arg(0), *format)
	if err != nil {
		fmt.Fprintln(stderr, "serialine gs1:", err)
		return 1
	}
	gtin, err := n.GTIN((*indicator)[0])
	if err != nil {
		fmt.Fprintln(stderr, "serialine gs1:", err)
		return 1
	}
	b, _ := json.Marshal(map[string]string{"ndc10": n.String(), "format": n.Format(), "ndc11": n.NDC11(), "gtin": gtin})
	stdout.Write(b)
	fmt.Fprintln(stdout)
	return 0
}

func verifyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "the edge's public key (base64)")
	keyFile := fs.String("key-file", "", "file holding the edge's public key (base64)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || (*key == "") == (*keyFile == "") {
		fmt.Fprintln(stderr, "usage: serialine verify --key BASE64 | --key-file FILE EXPORT.jsonl")
		return 2
	}
	k := *key
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "serialine verify:", err)
			return 2
		}
		k = string(b)
	}
	pub, err := record.ParsePublicKey(k)
	if err != nil {
		fmt.Fprintln(stderr, "serialine verify:", err)
		return 2
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "serialine verify:", err)
		return 2
	}
	defer f.Close()
	n, err := record.VerifyExport(f, pub)
	if err != nil {
		fmt.Fprintf(stderr, "serialine verify: %s: FAILED after %d good records: %v\n", fs.Arg(0), n, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d records, chain and signatures verify\n", fs.Arg(0), n)
	return 0
}
