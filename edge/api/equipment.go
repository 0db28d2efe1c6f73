package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/equipment"
	"github.com/serialine/serialine/sync/record"
)

// SetEquipment attaches the equipment registry (call before Run). Without
// it the equipment endpoints answer 503.
func (s *Server) SetEquipment(t *equipment.Tracker) { s.equip = t }

// Equipment endpoints:
//
//	GET  /api/v1/equipment                      registry, status, downtime, work orders, alarms
//	POST /api/v1/equipment/{name}/downtime      manual downtime (operator)
//	POST /api/v1/downtime/{id}/end              end a manual downtime (operator)
//	POST /api/v1/downtime/{id}/remediation      root cause + remediation, supervisor's e-signature
//	POST /api/v1/equipment/{name}/calibration   calibration or maintenance done, technician's e-signature, certificate
//	POST /api/v1/equipment/override             calibration interlock override for one batch, QA's e-signature
func (s *Server) equipmentRoutes() []route {
	return []route{
		{pattern: "GET /api/v1/equipment", read: func(w http.ResponseWriter, r *http.Request) {
			if s.noEquipment(w) {
				return
			}
			writeJSON(w, 200, s.equip.Snapshot())
		}},
		{pattern: "POST /api/v1/equipment/{name}/downtime", role: "operator", write: s.withEquipment(s.downtimeStart)},
		{pattern: "POST /api/v1/downtime/{id}/end", role: "operator", write: s.withEquipment(s.downtimeEnd)},
		{pattern: "POST /api/v1/downtime/{id}/remediation", role: "operator", write: s.withEquipment(s.remediate)},
		{pattern: "POST /api/v1/equipment/{name}/calibration", role: "operator", write: s.withEquipment(s.calibration)},
		{pattern: "POST /api/v1/equipment/override", role: "operator", write: s.withEquipment(s.override)},
	}
}

// noEquipment answers 503 when no registry is attached.
func (s *Server) noEquipment(w http.ResponseWriter) bool {
	if s.equip == nil {
		writeErr(w, http.StatusServiceUnavailable, "the equipment registry is not running on this edge")
		return true
	}
	return false
}

func (s *Server) withEquipment(h func(http.ResponseWriter, *http.Request, config.User)) func(http.ResponseWriter, *http.Request, config.User) {
	return func(w http.ResponseWriter, r *http.Request, u config.User) {
		if !s.noEquipment(w) {
			h(w, r, u)
		}
	}
}

// signedAt checks an e-signature and stamps it with the engine's clock (the
// clock of the records it is part of).
func (s *Server) signedAt(sig *Signature, min string) (*record.Signature, error) {
	rs, err := s.sign(sig, min)
	if err != nil {
		return nil, err
	}
	rs.Time = s.eng.Now().UTC().Format(time.RFC3339)
	return rs, nil
}

func parseTime(w http.ResponseWriter, field, v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		writeErr(w, http.StatusBadRequest, field+": want an RFC 3339 time, e.g. 2026-12-01T08:00:00Z")
		return time.Time{}, false
	}
	return t, true
}

func (s *Server) downtimeStart(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Fault  string `json:"fault"`
		Detail string `json:"detail"`
		Start  string `json:"start"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	start, ok := parseTime(w, "start", req.Start)
	if !ok {
		return
	}
	id, err := s.equip.StartDowntime(r.Context(), equipment.ManualDowntime{Equipment: r.PathValue("name"), Fault: req.Fault, Detail: req.Detail, Start: start, By: u.ID})
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"downtime": id, "equipment": r.PathValue("name")})
}

func (s *Server) downtimeEnd(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		End string `json:"end"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	end, ok := parseTime(w, "end", req.End)
	if !ok {
		return
	}
	if err := s.equip.EndDowntime(r.Context(), r.PathValue("id"), end, u.ID); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"downtime": r.PathValue("id"), "state": "ended"})
}

func (s *Server) remediate(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		RootCause   string     `json:"root_cause"`
		Remediation string     `json:"remediation"`
		Signature   *Signature `json:"signature"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	sig, err := s.signedAt(req.Signature, "supervisor")
	if err != nil {
		writeErr(w, http.StatusForbidden, err.Error())
		return
	}
	if err := s.equip.Remediate(r.Context(), r.PathValue("id"), req.RootCause, req.Remediation, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"downtime": r.PathValue("id"), "remediated_by": sig.User})
}

// maxCalibrationRequest bounds a calibration request: the certificate
// (base64) and the results.
const maxCalibrationRequest = 4 << 20

func (s *Server) calibration(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Activity    string                     `json:"activity"`
		WorkOrder   string                     `json:"work_order"`
		Performed   string                     `json:"performed"`
		Result      string                     `json:"result"`
		Results     []record.CalibrationResult `json:"results"`
		Notes       string                     `json:"notes"`
		Certificate *struct {
			Name        string `json:"name"`
			ContentType string `json:"content_type"`
			Data        []byte `json:"data"` // base64
		} `json:"certificate"`
		Signature *Signature `json:"signature"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCalibrationRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, "request body over 4 MiB: a certificate may have at most 512 KiB")
			return
		}
		writeErr(w, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	performed, ok := parseTime(w, "performed", req.Performed)
	if !ok {
		return
	}
	if req.Activity == "" {
		req.Activity = record.ActivityCalibration
	}
	sig, err := s.signedAt(req.Signature, "operator")
	if err != nil {
		writeErr(w, http.StatusForbidden, err.Error())
		return
	}
	a := equipment.Activity{Equipment: r.PathValue("name"), Activity: req.Activity, WorkOrder: req.WorkOrder, Performed: performed,
		Result: req.Result, Results: req.Results, Notes: req.Notes, Signature: sig, By: u.ID}
	if c := req.Certificate; c != nil {
		a.Certificate = &equipment.CertificateFile{Name: c.Name, ContentType: c.ContentType, Data: c.Data}
		if err := equipment.CheckCertificate(a.Certificate); err != nil {
			code := http.StatusUnprocessableEntity
			if len(c.Data) > equipment.MaxCertificate {
				code = http.StatusRequestEntityTooLarge
			}
			writeErr(w, code, err.Error())
			return
		}
	}
	rec, err := s.equip.Record(r.Context(), a)
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	out := map[string]any{"equipment": rec.Equipment, "activity": rec.Activity, "result": rec.Result, "work_order": rec.WorkOrder,
		"performed": rec.Performed, "next_due": rec.NextDue, "signed_by": sig.User}
	if rec.Certificate != nil {
		out["certificate_sha256"], out["certificate_size"] = rec.Certificate.SHA256, rec.Certificate.Size
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) override(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Batch     string     `json:"batch"`
		Reason    string     `json:"reason"`
		Signature *Signature `json:"signature"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Signature != nil && req.Signature.Reason == "" {
		req.Signature.Reason = req.Reason
	}
	sig, err := s.signedAt(req.Signature, "qa")
	if err != nil {
		writeErr(w, http.StatusForbidden, err.Error())
		return
	}
	o, err := s.equip.Override(r.Context(), req.Batch, req.Reason, sig)
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}
