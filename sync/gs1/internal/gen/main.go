// Command gen regenerates sync/gs1/table_gen.go from GS1's Barcode Syntax
// Dictionary. Run from sync/gs1 (go generate does):
//
//	go run ./internal/gen [-in ../../../shared/gs1/gs1-syntax-dictionary.txt] [-out table_gen.go]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/serialine/serialine/sync/gs1/internal/dict"
)

func main() {
	in := flag.String("in", "../../../shared/gs1/gs1-syntax-dictionary.txt", "GS1 Barcode Syntax Dictionary")
	out := flag.String("out", "table_gen.go", "Go file to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := dict.Parse(f)
	if err != nil {
		return err
	}
	src, err := dict.Render(d)
	if err != nil {
		return err
	}
	return os.WriteFile(out, src, 0o644)
}
