package config

import (
	"encoding/json"
	"reflect"
	"strings"
)

// docs describe keys in the JSON Schema (editors show them as hints).
var docs = map[string]string{
	"line":                     "The packaging line.",
	"edge":                     "The edge daemon's own settings.",
	"edge.verdict_timeout":     "Camera verdict deadline per unit; no verdict in time is a reject.",
	"edge.print_ahead":         "Labels in flight between printer and camera.",
	"edge.group_commit":        "Maximum records per store transaction.",
	"edge.reject_deadline":     "How long after its verdict a reject pulse may still reach the PLC; later it is never sent and the batch is held.",
	"devices.printers.levels":  "Packaging levels the printer labels: unit (DataMatrix per unit), case, pallet (SSCC label). Default [unit] for the first printer.",
	"central":                  "How the edge reaches central (MQTT).",
	"company":                  "GS1 identity used for SSCCs.",
	"products":                 "Product master data, one entry per GTIN.",
	"batch":                    "A batch started when the edge starts (unattended and demo lines).",
	"devices":                  "The line's equipment.",
	"opcua":                    "The edge's OPC UA tag endpoint for PLCs and HMIs.",
	"users":                    "Line users; passwords as bcrypt hashes.",
	"products.gtin":            "GTIN-14 with check digit; quote it to keep leading zeros.",
	"products.min_grade":       "Minimum ISO/IEC 15415 grade: A-D or 0.0-4.0.",
	"products.aggregation":     "sequential, automatic or manual.",
	"products.ndc":             "US NDC-10 (4-4-2, 5-3-2, 5-4-1 or 10 digits); must be the NDC carried by the GTIN.",
	"products.samples":         "QA samples to pull per batch; a batch closing with fewer needs a signed reason.",
	"products.labels":          "Label template per packaging level (unit, case, pallet), used instead of the printer's own.",
	"products.serials.source":  "generate (randomised locally) or import (Level 4 lists only).",
	"devices.printers.driver":  "Printer driver.",
	"devices.cameras.driver":   "Camera driver.",
	"devices.plcs.driver":      "PLC driver.",
	"devices.printers.options": "Driver-specific options.",
}

// Schema returns a JSON Schema (draft 2020-12) of the line configuration,
// generated from the types; driver options come from the registered
// drivers. Unknown keys are not allowed anywhere, as in Load.
func Schema() ([]byte, error) {
	root := schemaFor(reflect.TypeOf(Line{}), "")
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://serialine.dev/schema/line.json"
	root["title"] = "Serialine line configuration"
	devs := root["properties"].(map[string]any)["devices"].(map[string]any)["properties"].(map[string]any)
	for key, kind := range map[string]string{"printers": "printer", "cameras": "camera", "plcs": "plc"} {
		item := devs[key].(map[string]any)["items"].(map[string]any)
		names := DriverNames(kind)
		props := item["properties"].(map[string]any)
		drv := props["driver"].(map[string]any)
		if len(names) > 0 {
			drv["enum"] = names
		}
		var allOf []any
		for _, n := range names {
			newOpts, _ := driverOptions(kind, n)
			allOf = append(allOf, map[string]any{
				"if":   map[string]any{"properties": map[string]any{"driver": map[string]any{"const": n}}, "required": []string{"driver"}},
				"then": map[string]any{"properties": map[string]any{"options": schemaFor(reflect.TypeOf(newOpts()).Elem(), "")}},
			})
		}
		if len(allOf) > 0 {
			item["allOf"] = allOf
		}
	}
	return json.MarshalIndent(root, "", "  ")
}

func schemaFor(t reflect.Type, path string) map[string]any {
	s := map[string]any{}
	if d, ok := docs[path]; ok {
		s["description"] = d
	}
	switch {
	case isDuration(t):
		s["type"] = "string"
		s["pattern"] = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
		return s
	case t == nodeType:
		s["type"] = "object"
		return s
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaFor(t.Elem(), path)
	case reflect.Struct:
		s["type"] = "object"
		s["additionalProperties"] = false
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			props[name] = schemaFor(f.Type, join(path, name))
		}
		s["properties"] = props
	case reflect.Slice:
		s["type"] = "array"
		s["items"] = schemaFor(t.Elem(), path)
	case reflect.Map:
		s["type"] = "object"
		s["additionalProperties"] = schemaFor(t.Elem(), path)
	case reflect.String:
		s["type"] = "string"
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s["type"] = "integer"
	case reflect.Float32, reflect.Float64:
		s["type"] = "number"
	}
	return s
}
