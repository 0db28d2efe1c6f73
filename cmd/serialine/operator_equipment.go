package main

import (
	"flag"
	"fmt"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Equipment commands: the edge's equipment registry, downtime, calibration
// and maintenance (edge/api/equipment.go), for the people at the line.

const equipmentUsage = `equipment commands (edge API):
  equipment list                           registry, status, calibration/PM state, open downtime, work orders
  downtime start EQUIPMENT --fault F [--detail TEXT] [--start RFC3339]   manual downtime
  downtime end ID [--end RFC3339]          end a manual downtime
  downtime remediate ID --root-cause TEXT --remediation TEXT   e-signed by a supervisor
  calibration record EQUIPMENT --result pass|fail [--activity calibration|maintenance]
        [--work-order WO] [--performed RFC3339] [--certificate FILE] [--notes TEXT]
        [--measure NAME=VALUE[:pass|:fail]]...   e-signed by the technician
  calibration override --batch B --reason R    interlock override for one batch, e-signed by QA
`

// scheduleState is record.ScheduleState as the API returns it.
type scheduleState struct {
	State string `json:"state"`
	Due   string `json:"due"`
}

type equipmentView struct {
	Line  string `json:"line"`
	Items []struct {
		Equipment   string         `json:"equipment"`
		Class       string         `json:"class"`
		Kind        string         `json:"kind"`
		Critical    bool           `json:"critical"`
		Status      string         `json:"status"`
		Downtime    string         `json:"downtime"`
		Calibration *scheduleState `json:"calibration_state"`
		Maintenance *scheduleState `json:"maintenance_state"`
	} `json:"items"`
	Open []struct {
		ID         string  `json:"id"`
		Equipment  string  `json:"equipment"`
		Fault      string  `json:"fault"`
		Start      string  `json:"start"`
		DurationS  float64 `json:"duration_s"`
		Batch      string  `json:"batch"`
		Reportable bool    `json:"reportable"`
	} `json:"open_downtime"`
	WorkOrders []struct {
		ID        string `json:"id"`
		Equipment string `json:"equipment"`
		Activity  string `json:"activity"`
		Due       string `json:"due"`
		State     string `json:"state"`
	} `json:"work_orders"`
	Alarms          []string `json:"alarms"`
	ReportableAfter string   `json:"reportable_after"`
}

func schedule(s *scheduleState) string {
	if s == nil {
		return "-"
	}
	if s.Due == "" {
		return s.State
	}
	return s.State + " (due " + s.Due + ")"
}

func (o *opCtx) printEquipment(v *equipmentView) {
	w := o.env.stdout
	fmt.Fprintf(w, "line %s: %d equipment; downtime of critical equipment is reportable after %s\n", v.Line, len(v.Items), v.ReportableAfter)
	for _, it := range v.Items {
		crit := ""
		if it.Critical {
			crit = " critical"
		}
		down := ""
		if it.Downtime != "" {
			down = " downtime " + it.Downtime
		}
		fmt.Fprintf(w, "  %-16s %-12s %-10s %-8s calibration %s, maintenance %s%s%s\n", it.Equipment, it.Class, it.Kind, it.Status,
			schedule(it.Calibration), schedule(it.Maintenance), crit, down)
	}
	for _, d := range v.Open {
		rep := ""
		if d.Reportable {
			rep = " FDA-REPORTABLE"
		}
		fmt.Fprintf(w, "open downtime %s: %s %s since %s (%.0f s, batch %s)%s\n", d.ID, d.Equipment, d.Fault, d.Start, d.DurationS, d.Batch, rep)
	}
	for _, wo := range v.WorkOrders {
		fmt.Fprintf(w, "work order %s: %s of %s due %s, %s\n", wo.ID, wo.Activity, wo.Equipment, wo.Due, wo.State)
	}
	if len(v.Alarms) > 0 {
		fmt.Fprintf(w, "alarms: %s\n", strings.Join(v.Alarms, "; "))
	}
}

// parseMeasure reads --measure NAME=VALUE[:pass|:fail] (pass by default).
func parseMeasure(s string) (map[string]any, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" || value == "" {
		return nil, usagef("--measure %q: want NAME=VALUE[:pass|:fail]", s)
	}
	pass := true
	if v, verdict, ok := strings.Cut(value, ":"); ok {
		switch verdict {
		case "pass":
		case "fail":
			pass = false
		default:
			return nil, usagef("--measure %q: the verdict after ':' is pass or fail, not %q", s, verdict)
		}
		value = v
	}
	return map[string]any{"name": name, "value": value, "pass": pass}, nil
}

func equipmentOperations() map[string]operation {
	return map[string]operation{
		"equipment list": {run: func(o *opCtx) error {
			if err := o.nargs(0, "no arguments"); err != nil {
				return err
			}
			var v equipmentView
			if err := o.call("GET", "/api/v1/equipment", "/api/v1/equipment", nil, nil, nil, &v); err != nil {
				return err
			}
			if !o.json {
				o.printEquipment(&v)
			}
			return nil
		}},
		"downtime start": {
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "fault", "what is wrong (e.g. head_open, no_answer, jam)")
				o.str(fs, "detail", "free text")
				o.str(fs, "start", "when it started (RFC 3339; default now)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "EQUIPMENT"); err != nil {
					return err
				}
				if err := o.need("fault"); err != nil {
					return err
				}
				var out struct {
					Downtime string `json:"downtime"`
				}
				body := map[string]string{"fault": o.get("fault"), "detail": o.get("detail"), "start": o.get("start")}
				if err := o.call("POST", "/api/v1/equipment/{name}/downtime", "/api/v1/equipment/"+url.PathEscape(o.args[0])+"/downtime", nil, body, nil, &out); err != nil {
					return err
				}
				o.say("downtime %s of %s started", out.Downtime, o.args[0])
				return nil
			},
		},
		"downtime end": {
			flags: func(fs *flag.FlagSet, o *opCtx) { o.str(fs, "end", "when it ended (RFC 3339; default now)") },
			run: func(o *opCtx) error {
				if err := o.nargs(1, "the downtime ID"); err != nil {
					return err
				}
				if err := o.call("POST", "/api/v1/downtime/{id}/end", "/api/v1/downtime/"+url.PathEscape(o.args[0])+"/end", nil, map[string]string{"end": o.get("end")}, nil, nil); err != nil {
					return err
				}
				o.say("downtime %s ended", o.args[0])
				return nil
			},
		},
		"downtime remediate": {
			signed: "approval of the root cause and remediation",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "root-cause", "root cause (required)")
				o.str(fs, "remediation", "what was done (required)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "the downtime ID"); err != nil {
					return err
				}
				if err := o.need("root-cause", "remediation"); err != nil {
					return err
				}
				sig, err := o.signature("")
				if err != nil {
					return err
				}
				body := map[string]any{"root_cause": o.get("root-cause"), "remediation": o.get("remediation"), "signature": sig}
				if err := o.call("POST", "/api/v1/downtime/{id}/remediation", "/api/v1/downtime/"+url.PathEscape(o.args[0])+"/remediation", nil, body, nil, nil); err != nil {
					return err
				}
				o.say("downtime %s remediated, signed by %s", o.args[0], sig["user"])
				return nil
			},
		},
		"calibration record": {
			signed: "performed by me; results as recorded",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "activity", "calibration (default) or maintenance")
				o.str(fs, "result", "pass or fail (required)")
				o.str(fs, "work-order", "work order it completes")
				o.str(fs, "performed", "when it was performed (RFC 3339; default now)")
				o.str(fs, "certificate", "calibration certificate file (PDF, image or text; at most 512 KiB)")
				o.str(fs, "notes", "notes")
				o.list(fs, "measure", "a measured value NAME=VALUE[:pass|:fail] (repeatable)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "EQUIPMENT"); err != nil {
					return err
				}
				if err := o.need("result"); err != nil {
					return err
				}
				body := map[string]any{"activity": o.get("activity"), "result": o.get("result"), "work_order": o.get("work-order"),
					"performed": o.get("performed"), "notes": o.get("notes")}
				var results []map[string]any
				for _, m := range *o.lists["measure"] {
					r, err := parseMeasure(m)
					if err != nil {
						return err
					}
					results = append(results, r)
				}
				if results != nil {
					body["results"] = results
				}
				if f := o.get("certificate"); f != "" {
					data, err := os.ReadFile(f)
					if err != nil {
						return fmt.Errorf("--certificate: %w", err)
					}
					// The edge takes application/pdf, image/png,
					// image/jpeg or text/plain, without parameters.
					ct, _, _ := strings.Cut(mime.TypeByExtension(strings.ToLower(filepath.Ext(f))), ";")
					if ct == "" {
						ct = "application/octet-stream"
					}
					body["certificate"] = map[string]any{"name": filepath.Base(f), "content_type": ct, "data": data}
				}
				sig, err := o.signature("")
				if err != nil {
					return err
				}
				body["signature"] = sig
				var out struct {
					Activity string `json:"activity"`
					Result   string `json:"result"`
					NextDue  string `json:"next_due"`
					SHA256   string `json:"certificate_sha256"`
				}
				if err := o.call("POST", "/api/v1/equipment/{name}/calibration", "/api/v1/equipment/"+url.PathEscape(o.args[0])+"/calibration", nil, body, nil, &out); err != nil {
					return err
				}
				o.say("%s of %s recorded: %s; next due %s", out.Activity, o.args[0], out.Result, out.NextDue)
				if out.SHA256 != "" {
					o.say("certificate SHA-256 %s", out.SHA256)
				}
				return nil
			},
		},
		"calibration override": {
			signed: "QA approval: production may run on this equipment despite its lapsed calibration",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "batch", "the batch the override is for (required)")
				fs.StringVar(&o.reason, "reason", "", "why (required)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(0, "no arguments"); err != nil {
					return err
				}
				if err := o.need("batch"); err != nil {
					return err
				}
				if strings.TrimSpace(o.reason) == "" {
					return usagef("--reason is required: an override is recorded with its reason")
				}
				sig, err := o.signature(o.reason)
				if err != nil {
					return err
				}
				var out struct {
					Equipment []string `json:"equipment"`
				}
				body := map[string]any{"batch": o.get("batch"), "reason": o.reason, "signature": sig}
				if err := o.call("POST", "/api/v1/equipment/override", "/api/v1/equipment/override", nil, body, nil, &out); err != nil {
					return err
				}
				o.say("calibration interlock overridden for batch %s (%s), signed by %s", o.get("batch"), strings.Join(out.Equipment, ", "), sig["user"])
				return nil
			},
		},
	}
}
