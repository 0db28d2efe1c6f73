package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// shipCmd imports a WMS shipment file through central's API (shipments are
// signed records in central's journal, which only the running central
// writes).
const shipUsage = `usage: serialine ship import --url http://central:8080 --user ID [--password-file FILE] [--meaning shipped] FILE.csv
       serialine ship add --url URL --user ID [--password-file FILE] --sscc SSCC [--sscc ...] --gln GLN --name NAME [--at RFC3339] [--id ID]
  (password from --password-file or SERIALINE_PASSWORD; you sign the shipments)`

func shipCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "import" && args[0] != "add") {
		fmt.Fprintln(stderr, shipUsage)
		return 2
	}
	if args[0] == "add" {
		return shipAddCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ship import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "central's dashboard URL")
	user := fs.String("user", "", "your user id (you sign the shipments)")
	pwFile := fs.String("password-file", "", "file holding your password (else SERIALINE_PASSWORD)")
	meaning := fs.String("meaning", "shipped", "meaning of your e-signature")
	reason := fs.String("reason", "", "reason, if any")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *url == "" || *user == "" {
		fmt.Fprintln(stderr, "usage: serialine ship import --url URL --user ID [--password-file FILE] FILE.csv")
		return 2
	}
	pw, err := password(*pwFile)
	if err != nil {
		fmt.Fprintln(stderr, "serialine ship:", err)
		return 2
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "serialine ship:", err)
		return 2
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", filepath.Base(fs.Arg(0)))
	fw.Write(data)
	for k, v := range map[string]string{"user": *user, "password": pw, "meaning": *meaning, "reason": *reason} {
		mw.WriteField(k, v)
	}
	mw.Close()
	req, err := http.NewRequest("POST", strings.TrimRight(*url, "/")+"/api/v1/shipments/import", &body)
	if err != nil {
		fmt.Fprintln(stderr, "serialine ship:", err)
		return 2
	}
	req.SetBasicAuth(*user, pw)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return postShipments(req, stdout, stderr)
}

func password(file string) (string, error) {
	pw := os.Getenv("SERIALINE_PASSWORD")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw == "" {
		return "", fmt.Errorf("no password (--password-file or SERIALINE_PASSWORD)")
	}
	return pw, nil
}

func shipAddCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ship add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "central's dashboard URL")
	user := fs.String("user", "", "your user id (you sign the shipment)")
	pwFile := fs.String("password-file", "", "file holding your password (else SERIALINE_PASSWORD)")
	meaning := fs.String("meaning", "shipped", "meaning of your e-signature")
	var ssccs multiFlag
	fs.Var(&ssccs, "sscc", "SSCC of a pallet or case (repeatable)")
	gln := fs.String("gln", "", "destination GLN")
	name := fs.String("name", "", "destination name")
	at := fs.String("at", "", "ship time, RFC 3339 (default now)")
	id := fs.String("id", "", "shipment id (default: generated)")
	ref := fs.String("reference", "", "business document reference")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *url == "" || *user == "" || len(ssccs) == 0 {
		fmt.Fprintln(stderr, shipUsage)
		return 2
	}
	pw, err := password(*pwFile)
	if err != nil {
		fmt.Fprintln(stderr, "serialine ship:", err)
		return 2
	}
	when := time.Now().UTC()
	if *at != "" {
		if when, err = time.Parse(time.RFC3339, *at); err != nil {
			fmt.Fprintf(stderr, "serialine ship: --at %q: want RFC 3339\n", *at)
			return 2
		}
	}
	body, _ := json.Marshal(map[string]any{"id": *id, "containers": []string(ssccs), "destination": map[string]string{"gln": *gln, "name": *name},
		"shipped_at": when, "reference": *ref, "signer": map[string]string{"user": *user, "password": pw, "meaning": *meaning}})
	req, err := http.NewRequest("POST", strings.TrimRight(*url, "/")+"/api/v1/shipments", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "serialine ship:", err)
		return 2
	}
	req.SetBasicAuth(*user, pw)
	req.Header.Set("Content-Type", "application/json")
	return postShipments(req, stdout, stderr)
}

func postShipments(req *http.Request, stdout, stderr io.Writer) int {
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "serialine ship:", err)
		return 1
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var res struct {
		Error     string `json:"error"`
		Problems  []struct{ Where, Problem string }
		Shipments []struct {
			ID          string
			Containers  []string
			Destination struct{ GLN, Name string }
		}
	}
	_ = json.Unmarshal(raw, &res)
	if resp.StatusCode != http.StatusCreated {
		fmt.Fprintf(stderr, "serialine ship: %s: %s\n", resp.Status, res.Error)
		for _, p := range res.Problems {
			fmt.Fprintf(stderr, "  %s: %s\n", p.Where, p.Problem)
		}
		return 1
	}
	for _, s := range res.Shipments {
		fmt.Fprintf(stdout, "shipment %s: %s to %s (GLN %s)\n", s.ID, strings.Join(s.Containers, " "), s.Destination.Name, s.Destination.GLN)
	}
	return 0
}
