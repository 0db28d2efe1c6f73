package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/equipment"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Equipment pages and API:
//
//	GET /equipment                                  registry of every line with status
//	GET /equipment/{edge}/{name}                    one equipment: downtime, calibration, maintenance, work orders
//	GET /equipment/certificates/{edge}/{epoch}/{seq} calibration certificate (as recorded, SHA-256 checked)
//	GET /equipment/batches/{edge}/{batch}           state of every device that touched the batch
//	GET /downtime                                   downtime history (?reportable=1, ?edge=)
//	GET /downtime/{edge}/{epoch}/{id}               one event
//	GET /downtime/{edge}/{epoch}/{id}/export.json   FDA notification export (JSON)
//	GET /downtime/{edge}/{epoch}/{id}/export.html   the same, human-readable
//
// and the JSON API under /api/v1/equipment and /api/v1/downtime.
func (s *Server) equipmentRoutes(mux *http.ServeMux) {
	mux.Handle("GET /equipment", s.page(auth.RoleOperator, s.equipmentPage))
	mux.Handle("GET /equipment/{edge}/{name}", s.page(auth.RoleOperator, s.equipmentItemPage))
	mux.Handle("GET /equipment/certificates/{edge}/{epoch}/{seq}", s.page(auth.RoleOperator, s.certificate))
	mux.Handle("GET /equipment/batches/{edge}/{batch}", s.page(auth.RoleOperator, s.batchEquipmentPage))
	mux.Handle("GET /downtime", s.page(auth.RoleOperator, s.downtimePage))
	mux.Handle("GET /downtime/{edge}/{epoch}/{id}", s.page(auth.RoleOperator, s.downtimeEventPage))
	mux.Handle("GET /downtime/{edge}/{epoch}/{id}/export.json", s.page(auth.RoleOperator, s.downtimeExportJSON))
	mux.Handle("GET /downtime/{edge}/{epoch}/{id}/export.html", s.page(auth.RoleOperator, s.downtimeExportHTML))
	mux.Handle("GET /api/v1/equipment", s.api(auth.RoleOperator, s.apiEquipment))
	mux.Handle("GET /api/v1/equipment/{edge}/{name}", s.api(auth.RoleOperator, s.apiEquipmentItem))
	mux.Handle("GET /api/v1/equipment/batches/{edge}/{batch}", s.api(auth.RoleOperator, s.apiBatchEquipment))
	mux.Handle("GET /api/v1/downtime", s.api(auth.RoleOperator, s.apiDowntime))
	mux.Handle("GET /api/v1/downtime/{edge}/{epoch}/{id}", s.api(auth.RoleOperator, s.apiDowntimeEvent))
}

const tfmt = "2006-01-02 15:04:05 UTC"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(tfmt)
}

func fmtDur(secs float64) string {
	return time.Duration(secs * float64(time.Second)).Round(time.Second).String()
}

// EquipmentView is one equipment as the pages and the API show it.
type EquipmentView struct {
	Edge        string   `json:"edge"`
	Line        string   `json:"line,omitempty"`
	Name        string   `json:"name"`
	Class       string   `json:"class"`
	Kind        string   `json:"kind,omitempty"`
	Driver      string   `json:"driver,omitempty"`
	Critical    bool     `json:"critical"`
	DependsOn   []string `json:"depends_on,omitempty"`
	Model       string   `json:"model,omitempty"`
	SerialNo    string   `json:"serial_no,omitempty"`
	Asset       string   `json:"asset,omitempty"`
	Location    string   `json:"location,omitempty"`
	Registered  bool     `json:"registered"`
	Status      string   `json:"status"`
	StatusSince string   `json:"status_since,omitempty"`
	Downtime    string   `json:"downtime,omitempty"`
	DowntimeURL string   `json:"downtime_url,omitempty"`
	CalState    string   `json:"calibration_state,omitempty"`
	CalDue      string   `json:"calibration_due,omitempty"`
	CalWindowTo string   `json:"calibration_window_to,omitempty"`
	CalLast     string   `json:"calibration_last,omitempty"`
	CalInterval string   `json:"calibration_interval,omitempty"`
	PMState     string   `json:"maintenance_state,omitempty"`
	PMDue       string   `json:"maintenance_due,omitempty"`
	PMLast      string   `json:"maintenance_last,omitempty"`
	PMInterval  string   `json:"maintenance_interval,omitempty"`
	URL         string   `json:"url"`
}

func equipmentView(e store.Equipment) EquipmentView {
	v := EquipmentView{Edge: e.Edge, Line: e.Line, Name: e.Name, Class: e.Class, Kind: e.Kind, Driver: e.Driver, Critical: e.Critical, DependsOn: e.DependsOn,
		Model: e.Model, SerialNo: e.SerialNo, Asset: e.Asset, Location: e.Location, Registered: e.Registered, Status: e.Status, StatusSince: fmtTime(e.StatusSince),
		Downtime: e.Downtime, CalState: e.CalState, CalDue: fmtTime(e.CalDue), CalWindowTo: fmtTime(e.CalWindowTo), CalLast: fmtTime(e.CalLast),
		PMState: e.PMState, PMDue: fmtTime(e.PMDue), PMLast: fmtTime(e.PMLast),
		URL: "/equipment/" + url.PathEscape(e.Edge) + "/" + url.PathEscape(e.Name)}
	if e.Downtime != "" {
		v.DowntimeURL = downtimeURL(e.Edge, e.DowntimeEp, e.Downtime)
	}
	if e.CalIntervalS > 0 {
		v.CalInterval = fmt.Sprintf("%s ± %s", fmtDur(float64(e.CalIntervalS)), fmtDur(float64(e.CalToleranceS)))
		if v.CalState == "" {
			v.CalState = "unknown"
		}
	}
	if e.PMIntervalS > 0 {
		v.PMInterval = fmt.Sprintf("%s ± %s", fmtDur(float64(e.PMIntervalS)), fmtDur(float64(e.PMToleranceS)))
		if v.PMState == "" {
			v.PMState = "unknown"
		}
	}
	return v
}

func downtimeURL(edge string, epoch uint32, id string) string {
	return fmt.Sprintf("/downtime/%s/%d/%s", url.PathEscape(edge), epoch, url.PathEscape(id))
}

// DowntimeView is one downtime event.
type DowntimeView struct {
	Edge         string            `json:"edge"`
	Epoch        uint32            `json:"epoch"`
	ID           string            `json:"id"`
	Equipment    string            `json:"equipment"`
	Class        string            `json:"class"`
	Critical     bool              `json:"critical"`
	Source       string            `json:"source"`
	Fault        string            `json:"fault"`
	Detail       string            `json:"detail,omitempty"`
	Cause        string            `json:"cause,omitempty"`
	Start        string            `json:"start"`
	End          string            `json:"end,omitempty"`
	Duration     string            `json:"duration"`
	DurationS    float64           `json:"duration_s"`
	Ongoing      bool              `json:"ongoing"`
	Batch        string            `json:"batch,omitempty"`
	Batches      []string          `json:"batches,omitempty"`
	SerialFrom   string            `json:"serial_from,omitempty"`
	SerialTo     string            `json:"serial_to,omitempty"`
	Position     string            `json:"position,omitempty"`
	InFlight     []string          `json:"in_flight,omitempty"`
	Commissioned int               `json:"commissioned"`
	Reportable   bool              `json:"reportable"`
	ReportableAt string            `json:"reportable_at,omitempty"`
	RootCause    string            `json:"root_cause,omitempty"`
	Remediation  string            `json:"remediation,omitempty"`
	Signature    *record.Signature `json:"signature,omitempty"`
	RemediatedAt string            `json:"remediated_at,omitempty"`
	URL          string            `json:"url"`
}

func downtimeView(d store.Downtime, now time.Time) DowntimeView {
	v := DowntimeView{Edge: d.Edge, Epoch: d.Epoch, ID: d.ID, Equipment: d.Equipment, Class: d.Class, Critical: d.Critical, Source: d.Source, Fault: d.Fault,
		Detail: d.Detail, Cause: d.Cause, Start: fmtTime(d.Start), End: fmtTime(d.End), DurationS: d.DurationS, Ongoing: d.Open(), Batch: d.Batch, Batches: d.Batches,
		SerialFrom: d.SerialFrom, SerialTo: d.SerialTo, Position: d.Position, InFlight: d.InFlight, Commissioned: d.Commissioned, Reportable: d.Reportable,
		ReportableAt: fmtTime(d.ReportableAt), RootCause: d.RootCause, Remediation: d.Remediation, Signature: d.Signature, RemediatedAt: fmtTime(d.RemediatedAt),
		URL: downtimeURL(d.Edge, d.Epoch, d.ID)}
	if d.Open() {
		v.DurationS = now.Sub(d.Start).Seconds()
	}
	v.Duration = fmtDur(v.DurationS)
	return v
}

// ServiceView is one calibration or maintenance.
type ServiceView struct {
	Ref            string                     `json:"ref"`
	Equipment      string                     `json:"equipment"`
	Activity       string                     `json:"activity"`
	WorkOrder      string                     `json:"work_order,omitempty"`
	Performed      string                     `json:"performed"`
	Result         string                     `json:"result"`
	Results        []record.CalibrationResult `json:"results,omitempty"`
	Notes          string                     `json:"notes,omitempty"`
	NextDue        string                     `json:"next_due,omitempty"`
	Source         string                     `json:"source,omitempty"`
	Reference      string                     `json:"reference,omitempty"`
	Certificate    string                     `json:"certificate,omitempty"`
	CertificateSHA string                     `json:"certificate_sha256,omitempty"`
	CertificateURL string                     `json:"certificate_url,omitempty"`
	CertSize       int                        `json:"certificate_size,omitempty"`
	Signature      *record.Signature          `json:"signature,omitempty"`
}

func serviceView(sv store.Service) ServiceView {
	v := ServiceView{Ref: sv.Ref(), Equipment: sv.Equipment, Activity: sv.Activity, WorkOrder: sv.WorkOrder, Performed: fmtTime(sv.Performed), Result: sv.Result,
		Results: sv.Results, Notes: sv.Notes, NextDue: fmtTime(sv.NextDue), Source: sv.Source, Reference: sv.Reference, Certificate: sv.CertName,
		CertificateSHA: sv.CertSHA, CertSize: sv.CertSize, Signature: sv.Signature}
	if sv.CertName != "" {
		v.CertificateURL = fmt.Sprintf("/equipment/certificates/%s/%d/%d", url.PathEscape(sv.Edge), sv.Epoch, sv.Seq)
	}
	return v
}

// WorkOrderView is one work order.
type WorkOrderView struct {
	ID        string `json:"id"`
	Equipment string `json:"equipment"`
	Activity  string `json:"activity"`
	Due       string `json:"due,omitempty"`
	WindowTo  string `json:"window_to,omitempty"`
	State     string `json:"state"`
	Opened    string `json:"opened"`
	Closed    string `json:"closed,omitempty"`
}

func workOrderView(w store.WorkOrder) WorkOrderView {
	return WorkOrderView{ID: w.ID, Equipment: w.Equipment, Activity: w.Activity, Due: fmtTime(w.Due), WindowTo: fmtTime(w.WindowTo), State: w.State,
		Opened: fmtTime(w.OpenedAt), Closed: fmtTime(w.ClosedAt)}
}

func (s *Server) equipmentList(r *http.Request) ([]EquipmentView, error) {
	list, err := s.opt.Store.EquipmentList(r.Context(), r.URL.Query().Get("edge"))
	if err != nil {
		return nil, err
	}
	out := make([]EquipmentView, 0, len(list))
	for _, e := range list {
		out = append(out, equipmentView(e))
	}
	return out, nil
}

func writeAPI(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func pageError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (s *Server) apiEquipment(w http.ResponseWriter, r *http.Request, _ auth.User) {
	list, err := s.equipmentList(r)
	if err != nil {
		storeError(w, err)
		return
	}
	wos, err := s.opt.Store.WorkOrders(r.Context(), r.URL.Query().Get("edge"), true)
	if err != nil {
		storeError(w, err)
		return
	}
	views := make([]WorkOrderView, 0, len(wos))
	for _, wo := range wos {
		views = append(views, workOrderView(wo))
	}
	writeAPI(w, map[string]any{"equipment": list, "open_work_orders": views})
}

func (s *Server) equipmentPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	list, err := s.equipmentList(r)
	if err != nil {
		pageError(w, err)
		return
	}
	wos, err := s.opt.Store.WorkOrders(r.Context(), r.URL.Query().Get("edge"), true)
	if err != nil {
		pageError(w, err)
		return
	}
	var views []WorkOrderView
	for _, wo := range wos {
		views = append(views, workOrderView(wo))
	}
	s.render(w, "equipment.html", map[string]any{"User": u, "Equipment": list, "WorkOrders": views, "Now": fmtTime(time.Now())})
}

// EquipmentDetail is one equipment with its history.
type EquipmentDetail struct {
	Equipment  EquipmentView   `json:"equipment"`
	Downtime   []DowntimeView  `json:"downtime"`
	Services   []ServiceView   `json:"calibration_and_maintenance"`
	WorkOrders []WorkOrderView `json:"work_orders"`
}

func (s *Server) equipmentDetail(r *http.Request) (EquipmentDetail, error) {
	ctx, edge, name := r.Context(), r.PathValue("edge"), r.PathValue("name")
	e, err := s.opt.Store.EquipmentItem(ctx, edge, name)
	if err != nil {
		return EquipmentDetail{}, err
	}
	d := EquipmentDetail{Equipment: equipmentView(e), Downtime: []DowntimeView{}, Services: []ServiceView{}, WorkOrders: []WorkOrderView{}}
	dts, err := s.opt.Store.Downtimes(ctx, store.DowntimeFilter{Edge: edge, Equipment: name, Limit: 500})
	if err != nil {
		return d, err
	}
	now := time.Now()
	for _, x := range dts {
		d.Downtime = append(d.Downtime, downtimeView(x, now))
	}
	svc, err := s.opt.Store.Services(ctx, store.ServiceFilter{Edge: edge, Equipment: name, Limit: 500})
	if err != nil {
		return d, err
	}
	for _, x := range svc {
		d.Services = append(d.Services, serviceView(x))
	}
	wos, err := s.opt.Store.WorkOrders(ctx, edge, false)
	if err != nil {
		return d, err
	}
	for _, x := range wos {
		if x.Equipment == name {
			d.WorkOrders = append(d.WorkOrders, workOrderView(x))
		}
	}
	return d, nil
}

func (s *Server) apiEquipmentItem(w http.ResponseWriter, r *http.Request, _ auth.User) {
	d, err := s.equipmentDetail(r)
	if err != nil {
		storeError(w, err)
		return
	}
	writeAPI(w, d)
}

func (s *Server) equipmentItemPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	d, err := s.equipmentDetail(r)
	if err != nil {
		pageError(w, err)
		return
	}
	s.render(w, "equipment_item.html", map[string]any{"User": u, "D": d})
}

// viewable certificate types are shown inline; anything else downloads.
var inlineTypes = map[string]bool{"application/pdf": true, "image/png": true, "image/jpeg": true, "text/plain": true}

func (s *Server) certificate(w http.ResponseWriter, r *http.Request, _ auth.User) {
	epoch, err1 := strconv.ParseUint(r.PathValue("epoch"), 10, 32)
	seq, err2 := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err1 != nil || err2 != nil {
		http.Error(w, "certificate: epoch and seq are numbers", http.StatusBadRequest)
		return
	}
	c, err := s.opt.Store.Certificate(r.Context(), r.PathValue("edge"), uint32(epoch), seq)
	if err != nil {
		pageError(w, err)
		return
	}
	if got := sha256hex(c.Data); got != c.SHA256 {
		s.log.Error().Str("certificate", c.Name).Str("recorded", c.SHA256).Str("stored", got).Msg("stored certificate does not match its recorded SHA-256")
		http.Error(w, "the stored certificate does not match its recorded SHA-256", http.StatusInternalServerError)
		return
	}
	ct, disp := c.ContentType, "inline"
	if !inlineTypes[ct] {
		ct, disp = "application/octet-stream", "attachment"
	}
	if ct == "text/plain" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf("%s; filename=%q", disp, c.Name))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox")
	w.Header().Set("X-Serialine-SHA256", c.SHA256)
	w.Header().Set("Content-Length", strconv.Itoa(len(c.Data)))
	w.Write(c.Data)
}

func (s *Server) downtimeList(r *http.Request) ([]DowntimeView, error) {
	q := r.URL.Query()
	list, err := s.opt.Store.Downtimes(r.Context(), store.DowntimeFilter{Edge: q.Get("edge"), Equipment: q.Get("equipment"), Batch: q.Get("batch"),
		ReportableOnly: q.Get("reportable") == "1", Limit: 500})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]DowntimeView, 0, len(list))
	for _, d := range list {
		out = append(out, downtimeView(d, now))
	}
	return out, nil
}

func (s *Server) apiDowntime(w http.ResponseWriter, r *http.Request, _ auth.User) {
	list, err := s.downtimeList(r)
	if err != nil {
		storeError(w, err)
		return
	}
	writeAPI(w, map[string]any{"downtime": list})
}

func (s *Server) downtimePage(w http.ResponseWriter, r *http.Request, u auth.User) {
	list, err := s.downtimeList(r)
	if err != nil {
		pageError(w, err)
		return
	}
	s.render(w, "downtime.html", map[string]any{"User": u, "Downtime": list, "ReportableOnly": r.URL.Query().Get("reportable") == "1", "Now": fmtTime(time.Now())})
}

func (s *Server) downtimeEvent(r *http.Request) (store.Downtime, error) {
	epoch, err := strconv.ParseUint(r.PathValue("epoch"), 10, 32)
	if err != nil {
		return store.Downtime{}, fmt.Errorf("epoch %q: %w", r.PathValue("epoch"), store.ErrNotFound)
	}
	return s.opt.Store.Downtime(r.Context(), r.PathValue("edge"), uint32(epoch), r.PathValue("id"))
}

func (s *Server) apiDowntimeEvent(w http.ResponseWriter, r *http.Request, _ auth.User) {
	d, err := s.downtimeEvent(r)
	if err != nil {
		storeError(w, err)
		return
	}
	writeAPI(w, downtimeView(d, time.Now()))
}

func (s *Server) downtimeEventPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	d, err := s.downtimeEvent(r)
	if err != nil {
		pageError(w, err)
		return
	}
	s.render(w, "downtime_event.html", map[string]any{"User": u, "D": downtimeView(d, time.Now())})
}

func (s *Server) export(r *http.Request) (equipment.DowntimeExport, error) {
	d, err := s.downtimeEvent(r)
	if err != nil {
		return equipment.DowntimeExport{}, err
	}
	return equipment.Export(r.Context(), s.opt.Store, d.Edge, d.Epoch, d.ID, "", time.Now())
}

func (s *Server) downtimeExportJSON(w http.ResponseWriter, r *http.Request, u auth.User) {
	x, err := s.export(r)
	if err != nil {
		storeError(w, err)
		return
	}
	s.log.Info().Str("user", u.ID).Str("downtime", x.ID).Str("edge_id", x.Edge).Msg("downtime exported")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fmt.Sprintf("downtime-%s-%d-%s.json", x.Edge, x.Epoch, x.ID)))
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(x)
}

// exportPage adds readable fields to the export for the HTML template.
type exportPage struct {
	equipment.DowntimeExport
	Duration    string
	Threshold   string
	Start, End  string
	ReportedAt  string
	GeneratedAt string
	JSONURL     string
	Remedied    string
}

func (s *Server) downtimeExportHTML(w http.ResponseWriter, r *http.Request, u auth.User) {
	x, err := s.export(r)
	if err != nil {
		pageError(w, err)
		return
	}
	p := exportPage{DowntimeExport: x, Duration: fmtDur(x.DurationS), Threshold: fmtDur(float64(x.ThresholdS)), GeneratedAt: fmtTime(x.Generated),
		JSONURL: downtimeURL(x.Edge, x.Epoch, x.ID) + "/export.json"}
	p.Start, p.End, p.ReportedAt = rfcToText(x.Start), rfcToText(x.End), rfcToText(x.ReportableAt)
	if x.Remediation != nil {
		p.Remedied = rfcToText(x.Remediation.RecordedAt)
	}
	s.log.Info().Str("user", u.ID).Str("downtime", x.ID).Str("edge_id", x.Edge).Msg("downtime exported")
	s.render(w, "downtime_export.html", p)
}

func rfcToText(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return fmtTime(t)
}

// BatchEquipmentView is the batch audit for the page.
type BatchEquipmentView struct {
	Audit   equipment.BatchAudit
	Devices []BatchDeviceView
	Started string
	Closed  string
}

// BatchDeviceView is one device of a batch audit, readable.
type BatchDeviceView struct {
	Equipment   EquipmentView
	AtStart     string
	Lapsed      bool
	InForce     []ServiceView
	During      []ServiceView
	Downtime    []DowntimeView
	CalAtStart  string
	PMAtStart   string
	StatusStart string
}

func (s *Server) apiBatchEquipment(w http.ResponseWriter, r *http.Request, _ auth.User) {
	a, err := equipment.Audit(r.Context(), s.opt.Store, r.PathValue("edge"), r.PathValue("batch"), time.Now())
	if err != nil {
		storeError(w, err)
		return
	}
	writeAPI(w, a)
}

func (s *Server) batchEquipmentPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	a, err := equipment.Audit(r.Context(), s.opt.Store, r.PathValue("edge"), r.PathValue("batch"), time.Now())
	if err != nil {
		pageError(w, err)
		return
	}
	v := BatchEquipmentView{Audit: a, Started: fmtTime(a.Batch.Started), Closed: fmtTime(a.Batch.Closed)}
	now := time.Now()
	for _, d := range a.Devices {
		dv := BatchDeviceView{Equipment: equipmentView(d.Equipment), Lapsed: d.Lapsed}
		if st := d.AtStart; st != nil {
			dv.StatusStart = st.Status
			if c := st.Calibration; c != nil {
				dv.CalAtStart = c.State + " (due " + rfcToText(c.Due) + ")"
			}
			if m := st.Maintenance; m != nil {
				dv.PMAtStart = m.State + " (due " + rfcToText(m.Due) + ")"
			}
		}
		for _, x := range d.InForce {
			dv.InForce = append(dv.InForce, serviceView(x))
		}
		for _, x := range d.During {
			dv.During = append(dv.During, serviceView(x))
		}
		for _, x := range d.Downtimes {
			dv.Downtime = append(dv.Downtime, downtimeView(x, now))
		}
		v.Devices = append(v.Devices, dv)
	}
	s.render(w, "batch_equipment.html", map[string]any{"User": u, "V": v})
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
