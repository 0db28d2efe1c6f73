package opcua_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/opcua"
)

// nodePLC is the third-party server: testdata/node/plc-server.js on
// node-opcua, one process for the whole package.
type nodePLC struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	port  int
	ns    string
	path  string
}

var (
	nodeOnce sync.Once
	nodeSrv  *nodePLC
	nodeErr  error
	nodeSkip string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if nodeSrv != nil {
		nodeSrv.stdin.Close() // the script exits when stdin closes
		done := make(chan struct{})
		go func() { nodeSrv.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			nodeSrv.cmd.Process.Kill()
		}
	}
	os.Exit(code)
}

// requireNode starts the node-opcua server once, or skips when node or the
// npm modules are missing (fails instead with SERIALINE_REQUIRE_TOOLS=1).
func requireNode(t *testing.T) *nodePLC {
	t.Helper()
	nodeOnce.Do(func() {
		dir, _ := filepath.Abs("testdata/node")
		bin, err := exec.LookPath("node")
		if err != nil {
			nodeSkip = "node is not installed"
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua-server")); err != nil {
			nodeSkip = "npm modules missing: run npm ci in " + dir
			return
		}
		pki, err := os.MkdirTemp("", "serialine-node-plc-")
		if err != nil {
			nodeErr = err
			return
		}
		n := &nodePLC{lines: make(chan string, 64)}
		n.cmd = exec.Command(bin, "plc-server.js")
		n.cmd.Dir = dir
		n.cmd.Env = append(os.Environ(), "PKI_DIR="+pki)
		n.cmd.Stderr = io.Discard // node-opcua warns about sampling intervals and Node versions
		if n.stdin, err = n.cmd.StdinPipe(); err != nil {
			nodeErr = err
			return
		}
		out, err := n.cmd.StdoutPipe()
		if err != nil {
			nodeErr = err
			return
		}
		if err = n.cmd.Start(); err != nil {
			nodeErr = err
			return
		}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if l, ok := strings.CutPrefix(sc.Text(), "@serialine "); ok {
					n.lines <- l // other lines are node-opcua's own log
				}
			}
			close(n.lines)
		}()
		nodeSrv = n
		nodeErr = n.ready()
	})
	if nodeSkip != "" {
		if os.Getenv("SERIALINE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("node-opcua server required (SERIALINE_REQUIRE_TOOLS=1): %s", nodeSkip)
		}
		t.Skip(nodeSkip)
	}
	if nodeErr != nil {
		t.Fatalf("node-opcua server: %v", nodeErr)
	}
	return nodeSrv
}

func (n *nodePLC) next() (map[string]any, error) {
	select {
	case l, ok := <-n.lines:
		if !ok {
			return nil, errors.New("node-opcua server exited")
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			return nil, fmt.Errorf("node-opcua server said %q: %w", l, err)
		}
		if e, ok := m["error"]; ok {
			return nil, fmt.Errorf("node-opcua server: %v", e)
		}
		return m, nil
	case <-time.After(3 * time.Minute): // the first start makes its PKI (slow on a loaded CI machine)
		return nil, errors.New("node-opcua server: no answer in 3 minutes")
	}
}

func (n *nodePLC) ready() error {
	m, err := n.next()
	if err != nil {
		return err
	}
	if m["ready"] != true {
		return fmt.Errorf("node-opcua server: unexpected %v", m)
	}
	n.port, n.ns, n.path = int(m["port"].(float64)), m["namespace"].(string), m["path"].(string)
	return nil
}

func (n *nodePLC) send(t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	b, _ := json.Marshal(cmd)
	if _, err := n.stdin.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	if cmd["cmd"] == "restart" {
		if err := n.ready(); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	m, err := n.next()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (n *nodePLC) state(t *testing.T) map[string]any {
	return n.send(t, map[string]any{"cmd": "state"})["state"].(map[string]any)
}

func (n *nodePLC) options() opcua.Options {
	node := func(name string) string { return "nsu=" + n.ns + ";s=Line1." + name }
	return opcua.Options{Path: n.path, Username: "edge", Password: "edge-secret-1", PublishInterval: 50 * time.Millisecond,
		Tags: map[string]opcua.Tag{
			"reject":          {Node: node("Reject"), Pulse: 20 * time.Millisecond},
			"level":           {Node: node("Level")},
			"line_running":    {Node: node("LineRunning")},
			"product_present": {Node: node("ProductPresent")},
			"good_count":      {Node: node("GoodCount")},
			"small":           {Node: node("Small")},
		}}
}

func (n *nodePLC) plc(t *testing.T, policy, mode string) *opcua.PLC {
	t.Helper()
	o := n.options()
	o.Security = opcua.Security{Policy: policy, Mode: mode}
	p, err := opcua.New("node-plc", fmt.Sprintf("127.0.0.1:%d", n.port), 3*time.Second, o, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// The Go driver against node-opcua: every security policy and mode it
// claims, read, write, counters, a subscription, and the refusals.
func TestNodeOPCUAServer(t *testing.T) {
	n := requireNode(t)
	ctx := context.Background()
	for _, sec := range [][2]string{{"None", "None"}, {"Basic256Sha256", "Sign"}, {"Basic256Sha256", "SignAndEncrypt"},
		{"Aes128_Sha256_RsaOaep", "SignAndEncrypt"}, {"Aes256_Sha256_RsaPss", "Sign"}, {"Aes256_Sha256_RsaPss", "SignAndEncrypt"}} {
		t.Run(sec[0]+"-"+sec[1], func(t *testing.T) {
			p := n.plc(t, sec[0], sec[1])
			before := n.state(t)["rejects"].(float64)
			if err := p.WriteBool(ctx, "reject", true); err != nil {
				t.Fatal(err)
			}
			st := n.state(t)
			if st["rejects"].(float64) != before+1 || st["Reject"] != false {
				t.Fatalf("node-opcua saw %v rejects, gate %v", st["rejects"].(float64)-before, st["Reject"])
			}
			if v, err := p.ReadBool(ctx, "line_running"); err != nil || !v {
				t.Fatalf("line_running %v %v", v, err)
			}
			if err := p.WriteUint(ctx, "good_count", 123456); err != nil {
				t.Fatal(err)
			}
			if v, err := p.ReadUint(ctx, "good_count"); err != nil || v != 123456 {
				t.Fatalf("good_count %d %v", v, err)
			}
			if err := p.WriteUint(ctx, "small", 70000); err == nil {
				t.Fatal("70000 written to a UInt16")
			}
			// Writes to an input are refused by node-opcua: a device fault, the session stays.
			if err := p.WriteBool(ctx, "product_present", true); !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "BadNotWritable") {
				t.Fatalf("write to an input: %v", err)
			}
			if err := p.WriteBool(ctx, "level", true); err != nil {
				t.Fatal(err)
			}
		})
	}
	o := n.options()
	o.Password = "wrong"
	p, err := opcua.New("node-plc", fmt.Sprintf("127.0.0.1:%d", n.port), 3*time.Second, o, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx); !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "BadUserAccessDenied") {
		t.Fatalf("wrong password: %v", err)
	}
}

// node-opcua restarts (a new server on the same port): writes and the
// subscription come back.
func TestNodeOPCUAServerRestart(t *testing.T) {
	n := requireNode(t)
	p := n.plc(t, "Basic256Sha256", "SignAndEncrypt")
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan opcua.Change, 64)
	done := make(chan error, 1)
	go func() {
		done <- p.Subscribe(ctx, []string{"product_present", "line_running"}, func(c opcua.Change) { changes <- c })
	}()
	defer func() {
		cancel()
		<-done
	}()
	latest := map[string]any{}
	want := func(tag string, v any) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for latest[tag] != v {
			select {
			case c := <-changes:
				if c.Err != nil {
					t.Fatalf("change: %v", c.Err)
				}
				latest[c.Tag] = c.Value
			case <-deadline:
				t.Fatalf("no change %s=%v (latest %v)", tag, v, latest)
			}
		}
	}
	n.send(t, map[string]any{"cmd": "set", "tag": "ProductPresent", "value": false})
	want("product_present", false)
	n.send(t, map[string]any{"cmd": "set", "tag": "ProductPresent", "value": true})
	want("product_present", true)
	if err := p.WriteBool(context.Background(), "level", true); err != nil {
		t.Fatal(err)
	}
	n.send(t, map[string]any{"cmd": "restart"})
	deadline := time.Now().Add(20 * time.Second)
	for p.WriteBool(context.Background(), "level", false) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no recovery after the node-opcua server restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n.state(t)["Level"] != false {
		t.Fatal("the write after the restart did not reach the server")
	}
	n.send(t, map[string]any{"cmd": "set", "tag": "ProductPresent", "value": false})
	want("product_present", false) // the subscription is back
	n.send(t, map[string]any{"cmd": "set", "tag": "ProductPresent", "value": true})
}
