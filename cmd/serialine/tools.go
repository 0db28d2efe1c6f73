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

func gs1Cmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "parse" {
		fmt.Fprintln(stderr, "usage: serialine gs1 parse DATA   (use \\x1d or <GS> for the GS separator)")
		return 2
	}
	data := strings.NewReplacer(`\x1d`, gs1.GS, "<GS>", gs1.GS, "{GS}", gs1.GS).Replace(args[1])
	els, err := gs1.Parse(data)
	if err != nil {
		fmt.Fprintln(stderr, "serialine gs1:", err)
		return 1
	}
	b, err := json.Marshal(els)
	if err != nil {
		fmt.Fprintln(stderr, "serialine gs1:", err)
		return 1
	}
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
