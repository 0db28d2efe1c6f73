// Command serialine is the command line for people:
//
//	serialine demo [--pallets N --dir DIR --summary-json FILE --db URL --broker URL]
//	serialine config check FILE...
//	serialine config schema
//	serialine gs1 parse [--out json|bracketed|element|dl] DATA
//	serialine gs1 ndc [--format F] NDC
//	serialine verify --key BASE64|--key-file FILE EXPORT.jsonl
//	serialine status | batch ... | container ... | unit ... | serials import | challenge | config reload
//	                 (operator commands against the edge API, see operator.go)
//	serialine export (--db STORE|--config FILE) --batch LOT|--gtin GTIN|--from D --to D --format csv|json|html|epcis-2.0|epcis-1.2 -o FILE
//	serialine trace (--db STORE|--config FILE) SERIAL|SSCC|SCAN|DIGITAL-LINK|lot:LOT
//	serialine ship import --url URL --user ID FILE.csv
//	serialine ship add --url URL --user ID --sscc SSCC --gln GLN --name NAME
package main

import (
	"fmt"
	"io"
	"os"
)

var version = "dev"

const usage = `usage: serialine COMMAND [args]

commands:
  demo            run central + edge + simulated devices (see serialine demo -h)
  config check    validate line config files; errors as file:line: message
  config schema   print the JSON Schema of the line config
  gs1 parse DATA  parse GS1 data (]d2 scan, GS-separated, bracketed or Digital Link) to JSON
  gs1 ndc NDC     NDC-10 to NDC-11 and GTIN-14
  verify          verify an exported record file offline with the edge's public key
  export          audit export of a batch, product or date range (CSV zip, JSON, HTML, EPCIS 2.0/1.2)
  trace           recall trace of a serial, scan, Digital Link, SSCC or lot
  ship import     import a WMS shipment CSV through central's API (e-signed)
  ship add        record one shipment (SSCCs to a destination GLN) through central's API
  version         print the version

` + operatorHelp

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] != "config" && isOperatorCommand(args[0]) {
		return operatorCmd(args, defaultOperatorEnv(stdout, stderr))
	}
	switch args[0] {
	case "demo":
		return demoCmd(args[1:], stdout, stderr)
	case "config":
		if len(args) > 1 && args[1] == "reload" {
			return operatorCmd(args, defaultOperatorEnv(stdout, stderr))
		}
		return configCmd(args[1:], stdout, stderr)
	case "gs1":
		return gs1Cmd(args[1:], stdout, stderr)
	case "verify":
		return verifyCmd(args[1:], stdout, stderr)
	case "export":
		return exportCmd(args[1:], stdout, stderr)
	case "trace":
		return traceCmd(args[1:], stdout, stderr)
	case "ship":
		return shipCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "serialine: unknown command %q\n%s", args[0], usage)
	return 2
}
