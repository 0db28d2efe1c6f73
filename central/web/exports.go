package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/export"
	"github.com/serialine/serialine/sync/record"
)

// jobs runs dashboard exports in the background; the page polls their
// progress and downloads the file when done. Finished files are removed
// after jobTTL.
type jobs struct {
	log zerolog.Logger
	ctx context.Context
	dir string
	mu  sync.Mutex
	m   map[string]*job
	run chan struct{} // bounds concurrent exports
}

const jobTTL = 24 * time.Hour

type job struct {
	ID       string           `json:"id"`
	Scope    export.Scope     `json:"scope"`
	Format   string           `json:"format"`
	By       string           `json:"by"`
	Created  time.Time        `json:"created"`
	State    string           `json:"state"` // queued, running, done, failed
	Progress export.Progress  `json:"progress"`
	Error    string           `json:"error,omitempty"`
	Size     int64            `json:"size,omitempty"`
	Verified *bool            `json:"verified,omitempty"`
	Tables   map[string]int64 `json:"tables,omitempty"`
	path     string
}

func newJobs(ctx context.Context, dir string, log zerolog.Logger) *jobs {
	if dir == "" {
		dir = os.TempDir()
	}
	return &jobs{log: log, ctx: ctx, dir: dir, m: map[string]*job{}, run: make(chan struct{}, 2)}
}

func (js *jobs) get(id string) (job, bool) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j, ok := js.m[id]
	if !ok {
		return job{}, false
	}
	return *j, true
}

func (js *jobs) list() []job {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]job, 0, len(js.m))
	for _, j := range js.m {
		out = append(out, *j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	return out
}

func (js *jobs) update(id string, f func(j *job)) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if j, ok := js.m[id]; ok {
		f(j)
	}
}

// expire removes finished jobs older than jobTTL and their files.
func (js *jobs) expire(now time.Time) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for id, j := range js.m {
		if (j.State == "done" || j.State == "failed") && now.Sub(j.Created) > jobTTL {
			os.Remove(j.path)
			delete(js.m, id)
		}
	}
}

func (js *jobs) start(opt export.Options, scope export.Scope, format, by string) (job, error) {
	if err := os.MkdirAll(js.dir, 0o700); err != nil {
		return job{}, err
	}
	js.expire(time.Now())
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	j := &job{ID: hex.EncodeToString(b), Scope: scope, Format: format, By: by, Created: time.Now().UTC(), State: "queued"}
	j.path = filepath.Join(js.dir, "export-"+j.ID+export.Ext(format))
	js.mu.Lock()
	js.m[j.ID] = j
	js.mu.Unlock()
	started := *j
	opt.TempDir = js.dir
	opt.Progress = func(p export.Progress) { js.update(j.ID, func(j *job) { j.Progress = p }) }
	go func() {
		select {
		case js.run <- struct{}{}:
		case <-js.ctx.Done():
			js.update(j.ID, func(j *job) { j.State, j.Error = "failed", "central is stopping" })
			return
		}
		defer func() { <-js.run }()
		js.update(j.ID, func(j *job) { j.State = "running" })
		err := js.write(opt, scope, format, j.ID, j.path)
		if err != nil {
			os.Remove(j.path)
			js.log.Error().Err(err).Str("export", j.ID).Str("scope", scope.String()).Str("format", format).Msg("export failed")
			js.update(j.ID, func(j *job) { j.State, j.Error = "failed", err.Error() })
			return
		}
		js.log.Info().Str("export", j.ID).Str("scope", scope.String()).Str("format", format).Str("by", by).Msg("export written")
	}()
	return started, nil
}

func (js *jobs) write(opt export.Options, scope export.Scope, format, id, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	sum, err := export.Run(js.ctx, opt, scope, format, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	js.update(id, func(j *job) {
		j.State = "done"
		if fi != nil {
			j.Size = fi.Size()
		}
		if len(sum.Verification) > 0 {
			v := sum.Verified()
			j.Verified = &v
		}
		j.Tables = sum.Tables
	})
	return nil
}

func parseScope(get func(string) string) (export.Scope, error) {
	s := export.Scope{Batch: strings.TrimSpace(get("batch")), GTIN: strings.TrimSpace(get("gtin")), Edge: strings.TrimSpace(get("edge"))}
	for _, f := range []struct {
		name string
		dst  *time.Time
		end  bool
	}{{"from", &s.From, false}, {"to", &s.To, true}} {
		v := strings.TrimSpace(get(f.name))
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*f.dst = t
			continue
		}
		d, err := time.Parse("2006-01-02", v)
		if err != nil {
			return s, fmt.Errorf("%s %q: want YYYY-MM-DD or RFC 3339", f.name, v)
		}
		if f.end {
			d = d.Add(24 * time.Hour) // a "to" date includes that day
		}
		*f.dst = d
	}
	return s, nil
}

func (c *complianceHandlers) exportOptions(u auth.User) export.Options {
	return export.Options{Store: c.s.opt.Store, GS1: c.opt.GS1, By: u.ID}
}

// journalExport records who exported what (a user action).
func (c *complianceHandlers) journalExport(ctx context.Context, u auth.User, scope export.Scope, format string) error {
	if c.opt.Journal == nil {
		return nil
	}
	_, err := c.opt.Journal.Append(ctx, record.KindUserAction, record.UserAction{User: u.ID, Name: u.Name, Role: u.Role, Action: "export.created", Target: scope.String(), New: format})
	return err
}

func (c *complianceHandlers) exportsPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	c.s.render(w, "exports.html", map[string]any{"User": u, "Jobs": c.jobs.list(), "Formats": export.Formats, "Error": r.URL.Query().Get("error"), "May": mayExport(u)})
}

// exportCreate starts an export job from the form (POST /exports) or the
// API (POST /api/v1/exports with a JSON body {batch, gtin, edge, from, to, format}).
func (c *complianceHandlers) exportCreate(w http.ResponseWriter, r *http.Request, u auth.User) {
	api := isAPI(r)
	fail := func(code int, msg string) {
		if api {
			httpError(w, code, msg)
			return
		}
		http.Redirect(w, r, "/exports?error="+urlQuery(msg), http.StatusSeeOther)
	}
	if !mayExport(u) {
		fail(http.StatusForbidden, "exports are for QA, supervisors and admins")
		return
	}
	var get func(string) string
	if api {
		var body map[string]string
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
			fail(http.StatusBadRequest, "body: "+err.Error())
			return
		}
		get = func(k string) string { return body[k] }
	} else {
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		get = r.PostForm.Get
	}
	scope, err := parseScope(get)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	format := get("format")
	if !export.ValidFormat(format) {
		fail(http.StatusBadRequest, fmt.Sprintf("format %q: want one of %s", format, strings.Join(export.Formats, ", ")))
		return
	}
	if _, err := export.Resolve(r.Context(), c.s.opt.Store, scope); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if err := c.journalExport(r.Context(), u, scope, format); err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	j, err := c.jobs.start(c.exportOptions(u), scope, format, u.ID)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	if api {
		writeJSON(w, http.StatusAccepted, j)
		return
	}
	http.Redirect(w, r, "/exports/"+j.ID, http.StatusSeeOther)
}

func (c *complianceHandlers) exportJobPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	j, ok := c.jobs.get(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	c.s.render(w, "export_job.html", map[string]any{"User": u, "Job": j})
}

func (c *complianceHandlers) apiExportJob(w http.ResponseWriter, r *http.Request, _ auth.User) {
	j, ok := c.jobs.get(r.PathValue("id"))
	if !ok {
		httpError(w, http.StatusNotFound, "no export "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (c *complianceHandlers) exportDownload(w http.ResponseWriter, r *http.Request, u auth.User) {
	j, ok := c.jobs.get(r.PathValue("id"))
	if !ok || !mayExport(u) {
		http.NotFound(w, r)
		return
	}
	if j.State != "done" {
		http.Error(w, "export "+j.ID+" is "+j.State, http.StatusConflict)
		return
	}
	name := "serialine-export-" + safeName(j.Scope.String()) + export.Ext(j.Format)
	w.Header().Set("Content-Type", export.ContentType(j.Format))
	if j.Format != export.FormatHTML {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	http.ServeFile(w, r, j.path)
}

// apiExportStream writes an export straight into the response:
// GET /api/v1/export?batch=L1&format=epcis-1.2 (also gtin, edge, from, to).
func (c *complianceHandlers) apiExportStream(w http.ResponseWriter, r *http.Request, u auth.User) {
	if !mayExport(u) {
		httpError(w, http.StatusForbidden, "exports are for QA, supervisors and admins")
		return
	}
	q := r.URL.Query()
	scope, err := parseScope(q.Get)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	format := q.Get("format")
	if !export.ValidFormat(format) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want one of %s", format, strings.Join(export.Formats, ", ")))
		return
	}
	if _, err := export.Resolve(r.Context(), c.s.opt.Store, scope); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := c.journalExport(r.Context(), u, scope, format); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Spool to a file first: an export that fails half-way must not look
	// like a complete download.
	opt := c.exportOptions(u)
	opt.TempDir = c.jobs.dir
	if err := os.MkdirAll(c.jobs.dir, 0o700); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	f, err := os.CreateTemp(c.jobs.dir, "stream-*")
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := export.Run(r.Context(), opt, scope, format, f); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", export.ContentType(format))
	w.Header().Set("Content-Disposition", `attachment; filename="serialine-export-`+safeName(scope.String())+export.Ext(format)+`"`)
	f.Seek(0, 0)
	http.ServeContent(w, r, "", time.Time{}, f)
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "+", "?", "%3F", "=", "%3D")
	return r.Replace(s)
}
