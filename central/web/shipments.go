package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/shipping"
	"github.com/serialine/serialine/central/store"
)

func (c *complianceHandlers) shipError(w http.ResponseWriter, err error) {
	var ve *shipping.ValidationError
	switch {
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "shipment refused: nothing was recorded", "problems": ve.Problems})
	case errors.Is(err, shipping.ErrSignature):
		httpError(w, http.StatusForbidden, err.Error())
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

// shipRequest is the body of POST /api/v1/shipments: one shipment or
// several, and the e-signature of the logged-in user.
type shipRequest struct {
	shipping.Request
	Shipments []shipping.Request `json:"shipments"`
	Signer    shipping.Signer    `json:"signer"`
}

func (c *complianceHandlers) apiShip(w http.ResponseWriter, r *http.Request, u auth.User) {
	if c.opt.Journal == nil {
		httpError(w, http.StatusServiceUnavailable, "shipping needs central's journal")
		return
	}
	var req shipRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	reqs := req.Shipments
	if len(req.Request.Containers) > 0 {
		reqs = append([]shipping.Request{req.Request}, reqs...)
	}
	out, err := c.ship.Ship(r.Context(), u, req.Signer, reqs, "api")
	if err != nil {
		c.shipError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"shipments": out})
}

// apiShipImport takes a WMS CSV file as multipart/form-data: field "file",
// and the signer's "user", "password", "meaning", "reason".
func (c *complianceHandlers) apiShipImport(w http.ResponseWriter, r *http.Request, u auth.User) {
	if c.opt.Journal == nil {
		httpError(w, http.StatusServiceUnavailable, "shipping needs central's journal")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 32<<20)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		httpError(w, http.StatusBadRequest, "want multipart/form-data with a file field: "+err.Error())
		return
	}
	f, fh, err := r.FormFile("file")
	if err != nil {
		httpError(w, http.StatusBadRequest, "file: "+err.Error())
		return
	}
	defer f.Close()
	reqs, err := shipping.ParseCSV(f, fh.Filename)
	if err != nil {
		var ve *shipping.ValidationError
		if errors.As(err, &ve) {
			c.shipError(w, err)
			return
		}
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	sg := shipping.Signer{User: r.FormValue("user"), Password: r.FormValue("password"), Meaning: r.FormValue("meaning"), Reason: r.FormValue("reason")}
	out, err := c.ship.Ship(r.Context(), u, sg, reqs, fh.Filename)
	if err != nil {
		c.shipError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"shipments": out})
}

func (c *complianceHandlers) apiShipment(w http.ResponseWriter, r *http.Request, _ auth.User) {
	sh, err := c.s.opt.Store.Shipment(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sh)
}
