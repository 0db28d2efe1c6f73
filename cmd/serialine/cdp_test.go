package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A small Chrome DevTools Protocol client for the browser test: it starts
// Debian's headless Chromium, attaches to its page over the DevTools
// websocket, and drives it with real input events (mouse clicks at an
// element's position, typed text).

type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	conn *websocket.Conn

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpReply
	wmu     sync.Mutex
	done    chan struct{}
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// chromiumPath finds Debian's chromium (skips the test when absent, unless
// SERIALINE_REQUIRE_TOOLS=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SERIALINE_REQUIRE_TOOLS") == "1" {
		t.Fatal("chromium required (SERIALINE_REQUIRE_TOOLS=1) but not installed (Debian package chromium)")
	}
	t.Skip("chromium not installed (Debian package chromium)")
	return ""
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
		"--window-size=1400,1100", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd, waiting: map[int64]chan cdpReply{}, done: make(chan struct{})}
	t.Cleanup(func() {
		if b.conn != nil {
			b.conn.Close()
		}
		cancel()
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not print its DevTools address within 30 s")
	}
	// The page target of the browser.
	host := strings.TrimPrefix(wsURL, "ws://")
	host = host[:strings.IndexByte(host, '/')]
	var pageWS string
	deadline := time.Now().Add(10 * time.Second)
	for pageWS == "" {
		resp, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			var targets []struct{ Type, WebSocketDebuggerURL string }
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" {
					pageWS = tg.WebSocketDebuggerURL
				}
			}
		}
		if pageWS == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no page target in chromium at %s", host)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	conn, _, err := websocket.DefaultDialer.Dial(pageWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	b.conn = conn
	go b.read()
	b.call("Page.enable", nil)
	b.call("Runtime.enable", nil)
	return b
}

func (b *browser) read() {
	defer close(b.done)
	for {
		_, raw, err := b.conn.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			ID int64 `json:"id"`
			cdpReply
		}
		if json.Unmarshal(raw, &m) != nil || m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// call sends a command and returns its result (fails the test on error).
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	res, err := b.try(method, params)
	if err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	return res
}

func (b *browser) try(method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	if params == nil {
		params = map[string]any{}
	}
	b.wmu.Lock()
	err := b.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	b.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, fmt.Errorf("%s (%d)", r.Error.Message, r.Error.Code)
		}
		return r.Result, nil
	case <-b.done:
		return nil, io.ErrUnexpectedEOF
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("no answer in 30 s")
	}
}

// eval evaluates a JS expression and decodes its value into v.
func (b *browser) eval(expr string, v any) error {
	res, err := b.try("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if v == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, v)
}

// waitFor polls a JS condition until it is true.
func (b *browser) waitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		var ok bool
		if lastErr = b.eval("Boolean("+expr+")", &ok); lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var html string
			b.eval("document.body ? document.body.innerText.slice(0, 3000) : ''", &html)
			b.t.Fatalf("timed out after %s waiting for %s (%v); page text:\n%s", timeout, what, lastErr, html)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url})
	b.waitFor("page "+url+" loaded", `document.readyState === "complete" && location.href !== "about:blank"`, 20*time.Second)
}

// click dispatches a real mouse click at the centre of the element, once
// the page has run its scripts (a click before app.js bound its handlers
// would be lost) and the element is the one under that point (not covered,
// not still moving after scrollIntoView).
func (b *browser) click(selector string) {
	b.t.Helper()
	b.waitFor("the page's scripts before clicking "+selector, `document.readyState === "complete"`, 20*time.Second)
	var pos struct {
		X, Y float64
		Hit  bool
	}
	js := fmt.Sprintf(`(function(){var e=document.querySelector(%q); if(!e) throw new Error("no element %s"); e.scrollIntoView({block:"center", behavior:"instant"}); var r=e.getBoundingClientRect(); var x=r.left+r.width/2, y=r.top+r.height/2; var h=document.elementFromPoint(x, y); return {X:x, Y:y, Hit: !!h && (h === e || e.contains(h))};})()`, selector, selector)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := b.eval(js, &pos); err != nil {
			b.t.Fatal(err)
		}
		if pos.Hit {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s is not the element under its own centre (covered or moving)", selector)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		b.call("Input.dispatchMouseEvent", map[string]any{"type": typ, "x": pos.X, "y": pos.Y, "button": "left", "clickCount": 1})
	}
}

// typeInto focuses an input, clears it and types text.
func (b *browser) typeInto(selector, text string) {
	b.t.Helper()
	if err := b.eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q); if(!e) throw new Error("no element %s"); e.focus(); e.select && e.select(); e.value=""; return true;})()`, selector, selector), nil); err != nil {
		b.t.Fatal(err)
	}
	b.call("Input.insertText", map[string]any{"text": text})
}

func (b *browser) text(selector string) string {
	b.t.Helper()
	var s string
	if err := b.eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q); return e ? e.textContent : "";})()`, selector), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// screenshot captures the whole page as PNG.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	// Right after a navigation the layout may not be measured yet ("0
	// width"): wait for a laid-out, loaded page, and retry briefly.
	b.waitFor("a laid-out page", `document.readyState === "complete" && document.documentElement.getBoundingClientRect().width > 0`, 10*time.Second)
	var res json.RawMessage
	var err error
	for i := 0; ; i++ {
		res, err = b.try("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true})
		if err == nil {
			break
		}
		if i == 20 {
			b.t.Fatalf("Page.captureScreenshot: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var r struct {
		Data string `json:"data"`
	}
	json.Unmarshal(res, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
