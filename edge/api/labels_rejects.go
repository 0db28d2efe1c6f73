package api

import (
	"net/http"

	"github.com/serialine/serialine/edge/config"
)

// reprintLabel prints a closed container's SSCC label again (a pending or a
// damaged label), e-signed by a supervisor with a reason.
func (s *Server) reprintLabel(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Signature *Signature `json:"signature"`
	}
	sig, ok := s.signed(w, r, "supervisor", &req, &req.Signature)
	if !ok {
		return
	}
	if sig.Reason == "" {
		writeErr(w, http.StatusUnprocessableEntity, "a label reprint needs a reason")
		return
	}
	sscc := r.PathValue("sscc")
	if err := s.eng.ReprintLabel(r.Context(), sscc, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	s.log.Info().Str("user", u.ID).Str("signer", sig.User).Str("sscc", sscc).Msg("container label reprint")
	c, err := s.eng.Container(sscc)
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, c)
}

// confirmRemoval records that an item whose reject did not reach the PLC
// was found and removed, e-signed by a supervisor.
func (s *Server) confirmRemoval(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Note      string     `json:"note"`
		Signature *Signature `json:"signature"`
	}
	sig, ok := s.signed(w, r, "supervisor", &req, &req.Signature)
	if !ok {
		return
	}
	if err := s.eng.ConfirmRemoval(r.Context(), r.PathValue("id"), req.Note, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	s.log.Info().Str("user", u.ID).Str("signer", sig.User).Str("reject", r.PathValue("id")).Msg("removal of an undelivered reject confirmed")
	writeJSON(w, 200, s.eng.Status())
}
