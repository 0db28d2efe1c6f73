package tags

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// The child process: the same executable started with childEnv=1 (an
// init function hands it to runChild before main runs). The parent talks
// to it with JSON lines: its stdin carries parent -> child messages, file
// descriptor 3 child -> parent ones; its stderr is kept for crash reports.
const childEnv = "SERIALINE_OPCUA_TAGS_CHILD"

func init() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
}

type msg struct {
	Op   string `json:"op"`
	ID   uint64 `json:"id,omitempty"`
	User string `json:"user,omitempty"`
	// Password travels parent-ward only: the child asks, the parent checks.
	Password string          `json:"password,omitempty"`
	Role     string          `json:"role,omitempty"`
	Cmd      int32           `json:"cmd,omitempty"`
	OK       bool            `json:"ok,omitempty"`
	Err      string          `json:"err,omitempty"`
	NS       int32           `json:"ns,omitempty"`
	Snap     *Snapshot       `json:"snap,omitempty"`
	Stats    *Stats          `json:"stats,omitempty"`
	Init     *childInit      `json:"init,omitempty"`
	Entry    json.RawMessage `json:"entry,omitempty"` // a zerolog line
}

type childInit struct {
	Options Options `json:"options"`
	Key     []byte  `json:"key"`  // PKCS#1 DER
	Cert    []byte  `json:"cert"` // DER
	Level   string  `json:"level"`
}

// child is the parent's handle on one child process.
type child struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	inMu   sync.Mutex
	out    *os.File
	done   chan error
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan msg
	stderr  tailBuffer
}

func (c *child) send(m msg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	_, err = c.in.Write(append(b, '\n'))
	return err
}

// call sends a request and waits for the reply with the same id.
func (c *child) call(m msg, timeout time.Duration) (msg, error) {
	m.ID = c.nextID.Add(1)
	ch := make(chan msg, 1)
	c.mu.Lock()
	c.pending[m.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, m.ID)
		c.mu.Unlock()
	}()
	if err := c.send(m); err != nil {
		return msg{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-time.After(timeout):
		return msg{}, fmt.Errorf("no answer to %s in %s", m.Op, timeout)
	}
}

func (c *child) stats() (Stats, error) {
	r, err := c.call(msg{Op: "stats"}, 5*time.Second)
	if err != nil {
		return Stats{}, err
	}
	if r.Stats == nil {
		return Stats{}, errors.New("no stats in the answer")
	}
	return *r.Stats, nil
}

func (c *child) stderrTail() string { return c.stderr.String() }

// startChild starts a child and waits until it serves.
func (s *Server) startChild(ctx context.Context, exe string) (*child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c := &child{pending: map[uint64]chan msg{}, done: make(chan error, 1), out: r}
	c.cmd = exec.Command(exe)
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.ExtraFiles = []*os.File{w}
	c.cmd.Stdout = io.Discard
	c.cmd.Stderr = &c.stderr
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close() // the child's end
	ready := make(chan msg, 1)
	go c.read(s, ready)
	go func() { c.done <- c.cmd.Wait() }()
	init := &childInit{Options: s.o, Key: x509.MarshalPKCS1PrivateKey(s.key), Cert: s.cert, Level: s.log.GetLevel().String()}
	init.Options.Log = zerolog.Nop()
	if err := c.send(msg{Op: "init", Init: init}); err != nil {
		c.kill()
		return nil, err
	}
	select {
	case m := <-ready:
		if m.Op == "error" {
			c.kill()
			return nil, errors.New(m.Err)
		}
		if m.NS != lineNamespace {
			c.kill()
			return nil, fmt.Errorf("the child serves the line in namespace %d, want %d", m.NS, lineNamespace)
		}
	case err := <-c.done:
		c.done <- err
		return nil, fmt.Errorf("child exited before serving: %v: %s", err, c.stderrTail())
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		c.kill()
		return nil, errors.New("child did not serve within 2 minutes")
	}
	s.mu.Lock()
	s.child = c
	s.mu.Unlock()
	return c, nil
}

func (c *child) kill() {
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
	}
}

// wait feeds snapshots to the child until it exits or ctx ends (then it
// is told to stop: stdin closes).
func (c *child) wait(ctx context.Context, s *Server) error {
	defer func() {
		s.mu.Lock()
		if s.child == c {
			s.child = nil
		}
		s.mu.Unlock()
	}()
	push := func() {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		if last != nil {
			if err := c.send(msg{Op: "update", Snap: last}); err != nil {
				s.log.Debug().Err(err).Msg("snapshot not sent to the OPC UA child")
			}
		}
	}
	push() // the state the previous child had
	for {
		select {
		case err := <-c.done:
			return fmt.Errorf("exit: %v", err)
		case <-s.kick:
			push()
		case <-ctx.Done():
			c.in.Close()
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				c.kill()
				<-c.done
			}
			return nil
		}
	}
}

// read handles the child's messages: ready, requests, replies, logs.
func (c *child) read(s *Server, ready chan<- msg) {
	defer c.out.Close()
	sc := bufio.NewScanner(c.out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m msg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			s.log.Error().Err(err).Msg("unreadable message from the OPC UA child")
			continue
		}
		switch m.Op {
		case "ready", "error":
			select {
			case ready <- m:
			default:
			}
		case "log":
			relog(s.log, m.Entry)
		case "auth":
			go func() {
				role, ok := "", false
				if s.auth != nil {
					role, ok = s.auth(m.User, m.Password)
				}
				c.send(msg{Op: "reply", ID: m.ID, OK: ok, Role: role})
			}()
		case "cmd":
			go func() {
				r := msg{Op: "reply", ID: m.ID, OK: true}
				if s.cmd == nil {
					r.OK, r.Err = false, "commands are not supported"
				} else if err := s.cmd(context.Background(), m.User, m.Role, m.Cmd); err != nil {
					r.OK, r.Err = false, err.Error()
				}
				c.send(r)
			}()
		default: // replies to our calls
			c.mu.Lock()
			ch := c.pending[m.ID]
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
}

// relog writes a child's zerolog line through the parent's logger.
func relog(log zerolog.Logger, entry json.RawMessage) {
	var fields map[string]any
	if json.Unmarshal(entry, &fields) != nil {
		return
	}
	lvl, _ := zerolog.ParseLevel(fmt.Sprint(fields["level"]))
	text := fmt.Sprint(fields["message"])
	delete(fields, "level")
	delete(fields, "message")
	delete(fields, "time")
	if text == "" || text == "<nil>" {
		text = "OPC UA child log entry"
	}
	log.WithLevel(lvl).Fields(fields).Str("process", "opcua-child").Msg(text)
}

// tailBuffer keeps the last 8 KB written (the child's stderr: a crash's
// panic trace).
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append([]byte(nil), t.b[len(t.b)-8<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// --- the child side ---

// childConn is the child's link to the parent.
type childConn struct {
	out     *os.File
	outMu   sync.Mutex
	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan msg
}

func (c *childConn) send(m msg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_, err = c.out.Write(append(b, '\n'))
	return err
}

func (c *childConn) call(m msg, timeout time.Duration) (msg, error) {
	m.ID = c.nextID.Add(1)
	ch := make(chan msg, 1)
	c.mu.Lock()
	c.pending[m.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, m.ID)
		c.mu.Unlock()
	}()
	if err := c.send(m); err != nil {
		return msg{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-time.After(timeout):
		return msg{}, fmt.Errorf("the edge did not answer %s in %s", m.Op, timeout)
	}
}

// logWriter turns zerolog lines into log messages to the parent.
type logWriter struct{ c *childConn }

func (w logWriter) Write(p []byte) (int, error) {
	entry := append(json.RawMessage(nil), p...)
	return len(p), w.c.send(msg{Op: "log", Entry: entry})
}

// runChild serves the tags for the parent until its stdin closes.
func runChild() int {
	os.Unsetenv(childEnv)
	// The edge stops us by closing our stdin (also when it dies): a
	// Ctrl-C or SIGTERM to the process group must not kill us first and
	// look like a crash.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	c := &childConn{out: os.NewFile(3, "parent"), pending: map[uint64]chan msg{}}
	if c.out == nil {
		fmt.Fprintln(os.Stderr, "OPC UA tags child: no parent pipe")
		return 2
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 4<<20)
	fail := func(err error) int {
		c.send(msg{Op: "error", Err: err.Error()})
		return 1
	}
	if !in.Scan() {
		return fail(errors.New("no init message"))
	}
	var first msg
	if err := json.Unmarshal(in.Bytes(), &first); err != nil || first.Op != "init" || first.Init == nil {
		return fail(fmt.Errorf("bad init message: %v", err))
	}
	init := first.Init
	key, err := x509.ParsePKCS1PrivateKey(init.Key)
	if err != nil {
		return fail(err)
	}
	lvl, err := zerolog.ParseLevel(init.Level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	o := init.Options
	o.Log = zerolog.New(logWriter{c}).Level(lvl).With().Timestamp().Logger()
	auth := func(user, pw string) (string, bool) {
		r, err := c.call(msg{Op: "auth", User: user, Password: pw}, 10*time.Second)
		if err != nil {
			o.Log.Error().Err(err).Msg("password check not answered: session refused")
			return "", false
		}
		return r.Role, r.OK
	}
	cmd := func(ctx context.Context, user, role string, v int32) error {
		r, err := c.call(msg{Op: "cmd", User: user, Role: role, Cmd: v}, 15*time.Second)
		if err != nil {
			return err
		}
		if !r.OK {
			return errors.New(r.Err)
		}
		return nil
	}
	l, err := newLocal(o, key, init.Cert, auth, cmd)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.ua.Start(ctx); err != nil {
		return fail(err)
	}
	host, port, _ := uaserverAddr(o.Listen)
	if err := waitListening(ctx, host, port); err != nil {
		return fail(err)
	}
	if err := c.send(msg{Op: "ready", NS: int32(l.ua.NamespaceIndex())}); err != nil {
		return 1
	}
	for in.Scan() {
		var m msg
		if err := json.Unmarshal(in.Bytes(), &m); err != nil {
			o.Log.Error().Err(err).Msg("unreadable message from the edge")
			continue
		}
		switch m.Op {
		case "update":
			if m.Snap != nil {
				l.update(*m.Snap)
			}
		case "stats":
			st := l.stats()
			c.send(msg{Op: "stats", ID: m.ID, Stats: &st})
		case "reply":
			c.mu.Lock()
			ch := c.pending[m.ID]
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
	// The edge closed our stdin (or died): stop serving.
	l.ua.Close()
	return 0
}

func uaserverAddr(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}
