package api

import "net/http"

// ServeMetrics adds GET /metrics (Prometheus text format, from metrics)
// and GET /readyz (200 when ready returns nil, else 503 with the reason).
// Call before Run. Both are unauthenticated, like /healthz: they carry
// counts, never serials or credentials.
func (s *Server) ServeMetrics(metrics http.Handler, ready func() error) {
	if metrics != nil {
		s.mux.Handle("GET /metrics", metrics)
	}
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
}
