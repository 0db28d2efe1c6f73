package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/trace"
)

func traceCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	lot := fs.String("lot", "", "trace a whole lot")
	asJSON := fs.Bool("json", false, "print JSON")
	asCSV := fs.Bool("csv", false, "with --lot: one CSV row per unit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: serialine trace (--db STORE | --config central.yaml) [--json] SERIAL|SSCC|SCAN|DIGITAL-LINK|lot:LOT\n       serialine trace (--db STORE | --config central.yaml) --lot LOT [--json|--csv]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (*lot == "") == (fs.NArg() != 1) {
		fs.Usage()
		return 2
	}
	var q trace.Query
	var err error
	if *lot != "" {
		q = trace.Query{Kind: trace.QueryLot, Lot: *lot, Input: *lot}
	} else if q, err = trace.ParseQuery(fs.Arg(0)); err != nil {
		fmt.Fprintln(stderr, "serialine trace:", err)
		return 2
	}
	ctx := context.Background()
	st, _, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "serialine trace:", err)
		return 1
	}
	defer st.Close()
	t := &trace.Tracer{St: st}
	if q.Kind == trace.QueryLot {
		err = traceLot(ctx, t, q.Lot, *asJSON, *asCSV, stdout)
	} else {
		err = traceOne(ctx, t, q, *asJSON, stdout)
	}
	if errors.Is(err, trace.ErrNotFound) {
		fmt.Fprintln(stderr, "serialine trace:", err)
		return 3
	}
	if err != nil {
		fmt.Fprintln(stderr, "serialine trace:", err)
		return 1
	}
	return 0
}

func shipped(sh *store.Shipment, in string) string {
	if sh == nil {
		return "not shipped"
	}
	return fmt.Sprintf("shipment %s (%s) at %s to %s, GLN %s", sh.ID, in, sh.ShippedAt.UTC().Format("2006-01-02 15:04 UTC"), sh.Destination.Name, sh.Destination.GLN)
}

func traceOne(ctx context.Context, t *trace.Tracer, q trace.Query, asJSON bool, w io.Writer) error {
	res, err := t.Find(ctx, q)
	if err != nil {
		return err
	}
	var units []store.Unit
	if res.Container != nil {
		if err := t.Contents(ctx, res.Container.Container.SSCC, func(u store.Unit) error { units = append(units, u); return nil }); err != nil {
			return err
		}
	}
	if asJSON {
		out := map[string]any{"result": res}
		if res.Container != nil {
			out["units"] = units
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, u := range res.Units {
		fmt.Fprintf(w, "unit (01)%s(21)%s: %s", u.Unit.GTIN, u.Unit.Serial, u.Unit.Status)
		if u.Unit.Reason != "" {
			fmt.Fprintf(w, " (%s)", u.Unit.Reason)
		}
		fmt.Fprintf(w, ", batch %s lot %s expiry %s, edge %s\n", u.Unit.Batch, u.Unit.Lot, u.Unit.Expiry, u.Unit.Edge)
		for _, c := range u.Containers {
			fmt.Fprintf(w, "  in %s %s\n", c.Level, c.SSCC)
		}
		fmt.Fprintf(w, "  %s\n", shipped(u.Shipment, u.ShippedIn))
	}
	if c := res.Container; c != nil {
		fmt.Fprintf(w, "%s %s: batch %s, edge %s, closed %v, %d children\n", c.Container.Level, c.Container.SSCC, c.Container.Batch, c.Container.Edge, c.Container.Closed, c.Container.Count)
		for _, a := range c.Ancestors {
			fmt.Fprintf(w, "  on %s %s\n", a.Level, a.SSCC)
		}
		fmt.Fprintf(w, "  %s\n  %d units inside:\n", shipped(c.Shipment, c.ShippedIn), len(units))
		for _, u := range units {
			fmt.Fprintf(w, "    (01)%s(21)%s %s in %s\n", u.GTIN, u.Serial, u.Status, u.Parent)
		}
	}
	return nil
}

func traceLot(ctx context.Context, t *trace.Tracer, lot string, asJSON, asCSV bool, w io.Writer) error {
	if asCSV {
		cw := csv.NewWriter(w)
		cw.Write([]string{"gtin", "serial", "batch", "status", "case", "pallet", "shipment", "shipped_to"})
		_, err := t.Lot(ctx, lot, func(lu trace.LotUnit) error {
			return cw.Write([]string{lu.Unit.GTIN, lu.Unit.Serial, lu.Unit.Batch, lu.Unit.Status, lu.Case, lu.Pallet, lu.Shipment, lu.ShippedTo})
		})
		cw.Flush()
		if err == nil {
			err = cw.Error()
		}
		return err
	}
	if asJSON {
		var units []trace.LotUnit
		lt, err := t.Lot(ctx, lot, func(lu trace.LotUnit) error { units = append(units, lu); return nil })
		if err != nil {
			return err
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"lot": lt, "units": units})
	}
	status := map[string]int{}
	shippedUnits := 0
	lt, err := t.Lot(ctx, lot, func(lu trace.LotUnit) error {
		status[lu.Unit.Status]++
		if lu.Shipment != "" {
			shippedUnits++
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "lot %s: %d units (%s), %d shipped\n", lot, lt.Units, counts(status), shippedUnits)
	for _, b := range lt.Batches {
		fmt.Fprintf(w, "  batch %s on %s (%s), GTIN %s, %s, started %s\n", b.Batch, b.Edge, b.Line, b.GTIN, b.State, b.StartedAt.UTC().Format("2006-01-02 15:04"))
	}
	cases, pallets := 0, 0
	for _, c := range lt.Containers {
		if c.Level == "pallet" {
			pallets++
		} else {
			cases++
		}
	}
	fmt.Fprintf(w, "  %d cases, %d pallets\n", cases, pallets)
	for _, sh := range lt.Shipments {
		fmt.Fprintf(w, "  shipment %s at %s to %s (GLN %s): %s\n", sh.ID, sh.ShippedAt.UTC().Format("2006-01-02 15:04"), sh.Destination.Name, sh.Destination.GLN, strings.Join(sh.Containers, " "))
	}
	fmt.Fprintf(w, "  line history during the batch: %d records\n", len(lt.Equipment))
	for _, e := range lt.Equipment {
		fmt.Fprintf(w, "    %s %s %s %s\n", e.Time.Format("2006-01-02 15:04:05"), e.Kind, e.Equipment, e.Class)
	}
	return nil
}

func counts(m map[string]int) string {
	var p []string
	for _, k := range []string{"verified", "rejected", "decommissioned", "commissioned", "sample", "destroyed"} {
		if m[k] > 0 {
			p = append(p, fmt.Sprintf("%d %s", m[k], k))
			delete(m, k)
		}
	}
	for k, v := range m {
		p = append(p, fmt.Sprintf("%d %s", v, k))
	}
	return strings.Join(p, ", ")
}
