package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
)

// LineView is one line as the dashboard and the API show it.
type LineView struct {
	Edge  string `json:"edge"`
	Line  string `json:"line"`
	State string `json:"state"`
	Batch string `json:"batch"`
	Lot   string `json:"lot,omitempty"`
	// Stored counts: every verdict central holds for this edge.
	UnitsGood     int64 `json:"units_good"`
	UnitsRejected int64 `json:"units_rejected"`
	CasesClosed   int64 `json:"cases_closed"`
	PalletsClosed int64 `json:"pallets_closed"`
	// Live counts of the running batch, from the edge's status.
	BatchGood     int            `json:"batch_good"`
	BatchRejected int            `json:"batch_rejected"`
	Reasons       map[string]int `json:"reasons,omitempty"`
	RejectRate    float64        `json:"reject_rate"` // % of the batch's verdicts
	UnitsPerMin   float64        `json:"units_per_min"`
	// Trend is the verification pass rate (%) per TrendBucket, oldest
	// first; null where the line made no verdict.
	Trend []*float64 `json:"trend"`
	// Aggregation: good units of the batch in closed cases (%), and the
	// containers open now.
	Aggregation    float64           `json:"aggregation"`
	OpenCase       string            `json:"open_case,omitempty"`
	OpenCaseFill   int               `json:"open_case_fill"`
	OpenPallet     string            `json:"open_pallet,omitempty"`
	OpenPalletFill int               `json:"open_pallet_fill"`
	Records        int64             `json:"records"`
	HeadSeq        uint64            `json:"head_seq"`
	PendingSync    uint64            `json:"pending_sync"`
	Quarantined    int64             `json:"quarantined"`
	Conflicts      int64             `json:"conflicts"`
	Devices        map[string]string `json:"devices,omitempty"`
	Alarms         []string          `json:"alarms,omitempty"`
	LastSeen       time.Time         `json:"last_seen"`
	Stale          bool              `json:"stale"` // no status for 30 s
}

func lineView(l store.LineSummary, now time.Time) LineView {
	v := LineView{
		Edge: l.Edge, Line: l.Line, State: l.State, Batch: l.Batch,
		UnitsGood: l.UnitsGood, UnitsRejected: l.UnitsRejected, CasesClosed: l.CasesClosed, PalletsClosed: l.PalletsClosed,
		Records: l.Records, HeadSeq: l.Head.Seq, PendingSync: l.PendingSync, Quarantined: l.QuarantinedNum, Conflicts: l.Conflicts,
		LastSeen: l.LastSeen, Stale: l.LastSeen.IsZero() || now.Sub(l.LastSeen) > 30*time.Second,
	}
	if v.Line == "" {
		v.Line = l.Edge
	}
	if st := l.LastStatus; st != nil {
		v.Lot, v.BatchGood, v.BatchRejected, v.Reasons, v.UnitsPerMin = st.Lot, st.Good, st.Rejected, st.Reasons, st.UnitsPerMin
		if n := st.Good + st.Rejected; n > 0 {
			v.RejectRate = 100 * float64(st.Rejected) / float64(n)
		}
		if st.Good > 0 {
			v.Aggregation = 100 * float64(st.Aggregated) / float64(st.Good)
		}
		v.OpenCase, v.OpenCaseFill, v.OpenPallet, v.OpenPalletFill = st.OpenCaseSSCC, st.OpenCase, st.OpenPalletSSCC, st.OpenPallet
		v.Devices, v.Alarms = st.Devices, st.Alarms
	}
	return v
}

// trend accumulates a line's verdicts per bucket.
type trend struct {
	width         time.Duration
	start         time.Time // start of buckets[0]
	good, bad     []int64
	lastG, lastR  int64
	seen          bool
	maxBuckets    int
	lastBucketIdx int
}

func newTrend(width time.Duration, n int) *trend { return &trend{width: width, maxBuckets: n} }

func (t *trend) add(now time.Time, good, rejected int64) {
	if !t.seen {
		t.seen, t.lastG, t.lastR = true, good, rejected
		t.start = now.Truncate(t.width)
		t.good, t.bad = make([]int64, 1), make([]int64, 1)
		return
	}
	idx := int(now.Sub(t.start) / t.width)
	for len(t.good) <= idx {
		t.good, t.bad = append(t.good, 0), append(t.bad, 0)
	}
	if over := len(t.good) - t.maxBuckets; over > 0 {
		t.good, t.bad = t.good[over:], t.bad[over:]
		t.start = t.start.Add(time.Duration(over) * t.width)
		idx -= over
	}
	if dg, dr := good-t.lastG, rejected-t.lastR; dg >= 0 && dr >= 0 {
		t.good[idx] += dg
		t.bad[idx] += dr
	}
	t.lastG, t.lastR = good, rejected
}

func (t *trend) points(now time.Time) []*float64 {
	out := make([]*float64, t.maxBuckets)
	if !t.seen {
		return out
	}
	// Right-align: the last point is the current bucket.
	cur := int(now.Sub(t.start) / t.width)
	for i := range out {
		b := cur - (t.maxBuckets - 1 - i)
		if b < 0 || b >= len(t.good) {
			continue
		}
		if n := t.good[b] + t.bad[b]; n > 0 {
			p := float64(int(1000*float64(t.good[b])/float64(n))) / 10
			out[i] = &p
		}
	}
	return out
}

// hub polls the store and pushes changed lines and alerts to every
// subscribed browser. Updates coalesce: a slow subscriber gets the latest
// view of each line once, never a queue of stale ones, so 50 lines or 500
// cost one store read per poll and at most one event per poll per browser.
type hub struct {
	st     store.Store
	poll   time.Duration
	bucket time.Duration
	log    zerolog.Logger

	mu     sync.Mutex
	subs   map[*sub]struct{}
	lines  map[string]LineView
	trends map[string]*trend
	alerts []AlertView
	ready  chan struct{}
	once   sync.Once
}

type sub struct {
	mu     sync.Mutex
	lines  map[string]LineView
	alerts []AlertView
	dirtyA bool
	notify chan struct{}
}

func (s *sub) push(lines map[string]LineView, alerts []AlertView, withAlerts bool) {
	s.mu.Lock()
	for k, v := range lines {
		s.lines[k] = v
	}
	if withAlerts {
		s.alerts, s.dirtyA = alerts, true
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *sub) take() (map[string]LineView, []AlertView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, a, da := s.lines, s.alerts, s.dirtyA
	s.lines, s.alerts, s.dirtyA = map[string]LineView{}, nil, false
	return l, a, da
}

func newHub(st store.Store, poll, bucket time.Duration, log zerolog.Logger) *hub {
	return &hub{st: st, poll: poll, bucket: bucket, log: log, subs: map[*sub]struct{}{}, lines: map[string]LineView{}, trends: map[string]*trend{}, ready: make(chan struct{})}
}

func (h *hub) run(ctx context.Context) error {
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		if err := h.tick(ctx); err != nil && ctx.Err() == nil {
			h.log.Error().Err(err).Msg("dashboard update failed")
		}
		h.once.Do(func() { close(h.ready) })
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *hub) tick(ctx context.Context) error {
	ls, err := h.st.Lines(ctx)
	if err != nil {
		return err
	}
	al, err := h.st.Alerts(ctx, store.AlertFilter{ActiveOnly: true, Limit: 200})
	if err != nil {
		return err
	}
	now := time.Now()
	changed := map[string]LineView{}
	h.mu.Lock()
	for _, l := range ls {
		tr := h.trends[l.Edge]
		if tr == nil {
			tr = newTrend(h.bucket, 30)
			h.trends[l.Edge] = tr
		}
		tr.add(now, l.UnitsGood, l.UnitsRejected)
		v := lineView(l, now)
		v.Trend = tr.points(now)
		if old, ok := h.lines[l.Edge]; !ok || !reflect.DeepEqual(old, v) {
			changed[l.Edge] = v
			h.lines[l.Edge] = v
		}
	}
	av := alertViews(al)
	alertsChanged := !reflect.DeepEqual(av, h.alerts)
	if alertsChanged {
		h.alerts = av
	}
	subs := make([]*sub, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	if len(changed) == 0 && !alertsChanged {
		return nil
	}
	for _, s := range subs {
		s.push(changed, av, alertsChanged)
	}
	return nil
}

// snapshot returns every line's latest view, by line name.
func (h *hub) snapshot() ([]LineView, []AlertView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]LineView, 0, len(h.lines))
	for _, v := range h.lines {
		out = append(out, v)
	}
	sortLines(out)
	return out, h.alerts
}

func sortLines(l []LineView) {
	sort.Slice(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Edge < l[j].Edge
	})
}

func (h *hub) subscribe() *sub {
	s := &sub{lines: map[string]LineView{}, notify: make(chan struct{}, 1)}
	// Snapshot and registration under one lock: no tick falls between them.
	h.mu.Lock()
	m := make(map[string]LineView, len(h.lines))
	for k, v := range h.lines {
		m[k] = v
	}
	alerts := h.alerts
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	s.push(m, alerts, true)
	return s
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// events streams the dashboard as server-sent events: "lines" (the lines
// that changed, full views) and "alerts" (the active alerts), a comment
// every 15 s to keep proxies from closing the stream.
func (s *Server) events(w http.ResponseWriter, r *http.Request, _ auth.User) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	select {
	case <-s.hub.ready:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			// A session that ended (logout, idle or absolute expiry,
			// account disabled) ends the stream too; the stream itself
			// does not count as use.
			if c, err := r.Cookie(cookieName); err == nil {
				if ok, err := s.opt.Users.Alive(r.Context(), c.Value); err != nil || !ok {
					return
				}
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-sub.notify:
			lines, alerts, da := sub.take()
			if len(lines) > 0 {
				l := make([]LineView, 0, len(lines))
				for _, v := range lines {
					l = append(l, v)
				}
				sortLines(l)
				if err := sse(w, "lines", map[string]any{"lines": l, "at": time.Now().UTC()}); err != nil {
					return
				}
			}
			if da {
				if alerts == nil {
					alerts = []AlertView{}
				}
				if err := sse(w, "alerts", map[string]any{"alerts": alerts}); err != nil {
					return
				}
			}
			fl.Flush()
		}
	}
}

func sse(w http.ResponseWriter, event string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, raw)
	return err
}
