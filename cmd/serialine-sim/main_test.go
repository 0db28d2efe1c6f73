package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/edge/config"
)

func TestControlAPIInjectsPrinterFault(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := &config.Line{Devices: config.Devices{
		Printers: []config.Device{{Name: "printer-1", Driver: "zebra"}},
		Cameras:  []config.Device{{Name: "camera-1", Driver: "dataman"}},
		PLCs:     []config.Device{{Name: "plc-1", Driver: "modbus"}},
	}}
	l, err := linesim.Start(ctx, cfg, linesim.Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(controlAPI(l))
	defer srv.Close()
	post := func(path, body string) int {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/printer/printer-1/fault", `{"fault":"head_open"}`); code != 200 {
		t.Fatalf("fault: %d", code)
	}
	// The real driver sees the injected fault over the wire.
	z, _ := zebra.New("printer-1", l.Addr("printer-1"), 200*time.Millisecond, zebra.Options{}, zerolog.Nop())
	defer z.Close()
	h, _ := z.Status(ctx)
	if h.Fault != "head_open" {
		t.Fatalf("driver sees %+v", h)
	}
	for path, body := range map[string]string{
		"/printer/printer-1/fault": `{"fault":"smoke"}`,
		"/printer/nope/fault":      `{"fault":"none"}`,
		"/plc/plc-1/delay":         `{"delay":"soon"}`,
	} {
		if code := post(path, body); code == 200 {
			t.Errorf("%s %s accepted", path, body)
		}
	}
	if code := post("/camera/camera-1/rates", `{"no_read":0.5}`); code != 200 {
		t.Fatalf("rates: %d", code)
	}
	if code := post("/plc/plc-1/disconnect", `{}`); code != 200 {
		t.Fatalf("disconnect: %d", code)
	}
	resp, err := http.Get(srv.URL + "/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %v", err)
	}
	resp.Body.Close()
	_ = drivers.LevelUnit
}
