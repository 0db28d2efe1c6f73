// Package line is the edge's line engine: batches, serial allocation, the
// print → verify → verdict cycle, reject signalling and aggregation rules.
//
// The engine is one goroutine that owns all line state. Device goroutines
// (printer, camera, PLC) feed it events; it applies a group of events in ONE
// store transaction (state changes and their records together), commits, and
// only then performs side effects (unit labels to the printer, case and
// pallet labels to their printers, reject pulses and counters to the PLC,
// camera triggers). A crash between commit and side effect can lose a print
// (the unit then times out and is rejected) but can never print a serial
// that has no record, nor print a serial twice. A container label or a
// reject pulse whose outcome a crash left unknown is settled fail-safe at
// the restart: the label is pending (an e-signed reprint), the reject not
// delivered (the batch is held until the unit's removal is confirmed); see
// labels.go and rejects.go.
package line

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// Devices are the line's equipment, already constructed from the config.
type Devices struct {
	// Printer prints the unit labels (the GS1 DataMatrix of every unit).
	Printer     drivers.Printer
	PrinterName string
	Camera      drivers.Camera
	CameraName  string
	PLC         drivers.PLC
	PLCName     string
	// TriggerCamera makes the engine trigger the camera by command once per
	// unit (Camera must implement drivers.Triggerer): at each rising edge
	// of the PLC's product_present input when that tag is mapped, else
	// right after each unit label is sent.
	TriggerCamera bool
	// LabelPrinters print the SSCC labels (GS1-128, print and apply) of
	// the cases and pallets that close, each for the levels it serves; the
	// unit printer may be one of them (same name). A level without a
	// printer gets no label.
	LabelPrinters []LabelPrinter
}

// LabelPrinter is a printer of container labels.
type LabelPrinter struct {
	Name    string
	Printer drivers.Printer
	Levels  []drivers.Level // case, pallet
}

// Options configure an Engine.
type Options struct {
	Config  *config.Line
	Store   *store.DB
	Devices Devices
	Log     zerolog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Version is the software version written in edge.started.
	Version string
	// StatusInterval is how often device health is polled; default 1s.
	StatusInterval time.Duration
	// OnStatus, if set, is called (from the engine goroutine) after every
	// committed step with the new status. It must not block.
	OnStatus func(Status)
	// ConfigBytes are the bytes Config was parsed from. When given, they
	// are kept in the store by hash so that an open batch keeps its config
	// across restarts (see BatchConfig), and Config must be the open
	// batch's config.
	ConfigBytes []byte
	// Pending is a changed line config (the file on disk) waiting for the
	// open batch to close; nil when the file is the config in force.
	Pending *config.Line
	// Equipment, if set, is the equipment registry's hook (equipment.go).
	Equipment Equipment
	// Backpressure, if set, is asked before units are fed to the printer
	// (see backpressure.go). It must be cheap and must not block.
	Backpressure func() (hold bool, why string)
	// PresencePoll is how often the PLC's product_present input is read
	// when the camera is triggered on it; default 10ms. The input must stay
	// high, and then low, for at least twice this for every edge to be seen.
	PresencePoll time.Duration
}

// Engine runs one packaging line.
type Engine struct {
	opt   Options
	cfg   *config.Line
	db    *store.DB
	dev   Devices
	log   zerolog.Logger
	now   func() time.Time
	ahead int

	events chan event
	cmds   chan command
	printQ chan drivers.Label
	plcQ   chan plcOp
	// labelQ holds the container labels of each label printer (by name);
	// labelBy names the printer of each container level.
	labelQ   map[string]chan drivers.Label
	labelBy  map[string]string
	printers []printerDev
	trigQ    chan struct{}
	presence bool // the camera is triggered at the PLC's product_present edges
	// local are events the engine raised itself after a commit (a full
	// queue): applied in the next step.
	local []event
	// gated: unit printing waits because a full container could not be
	// labelled (sequential aggregation with a label printer not ready).
	gated bool

	// Engine-goroutine state.
	b            *batch // active batch (nil when idle)
	health       map[string]drivers.Health
	lastHeadMove time.Time
	fx           effects
	speed        speedometer

	status  atomic.Pointer[Status]
	stopped chan struct{} // closed when the engine loop has ended
	// processed counts camera events applied and committed (tests wait on it).
	processed atomic.Int64
	ready     chan struct{}
	once      sync.Once

	restart     chan struct{} // closed to ask the daemon to restart (apply a config)
	restartOnce sync.Once
}

type event interface{}

type evReading struct{ r drivers.Reading }
type evReadError struct{ err error }
type evPrintFailed struct {
	serial string
	err    error
}
type evHealth struct {
	device string
	kind   string
	h      drivers.Health
}

type command struct {
	name  string
	fn    func(tx *store.Tx) (any, error)
	raw   func() (any, error) // runs on the engine goroutine, managing its own transactions
	reply chan cmdResult
}

type cmdResult struct {
	v   any
	err error
}

type plcOp struct {
	reject   bool
	id       string    // the reject's id (pendingReject.ID)
	deadline time.Time // no reject pulse is sent after it
	counters bool
	good     uint64
	rejected uint64
}

type effects struct {
	prints  []drivers.Label
	labels  []queuedLabel
	plc     []plcOp
	replies []func()
}

// queuedLabel is a container label for a label printer.
type queuedLabel struct {
	printer string
	label   drivers.Label
}

// printerDev is one printer device and what it prints: unit labels
// (units), container labels (boxes), or both.
type printerDev struct {
	name  string
	p     drivers.Printer
	units chan drivers.Label
	boxes chan drivers.Label
}

// RuleError is a refusal by a line rule (aggregation interlock, batch state,
// ...): nothing was changed.
type RuleError struct{ Msg string }

func (e *RuleError) Error() string { return e.Msg }

func ruleErr(format string, a ...any) error { return &RuleError{Msg: fmt.Sprintf(format, a...)} }

// New builds an engine. Run starts it.
func New(opt Options) (*Engine, error) {
	if opt.Config == nil || opt.Store == nil {
		return nil, errors.New("line: config and store are required")
	}
	if opt.Devices.Printer == nil || opt.Devices.Camera == nil || opt.Devices.PLC == nil {
		return nil, errors.New("line: a printer, a camera and a PLC are required")
	}
	if _, ok := opt.Devices.Camera.(drivers.Triggerer); opt.Devices.TriggerCamera && !ok {
		return nil, fmt.Errorf("line: camera %s cannot be triggered by command", opt.Devices.CameraName)
	}
	if opt.PresencePoll <= 0 {
		opt.PresencePoll = 10 * time.Millisecond
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.StatusInterval <= 0 {
		opt.StatusInterval = time.Second
	}
	ahead := opt.Config.Edge.PrintAhead
	if ahead <= 0 {
		ahead = 3
	}
	e := &Engine{
		opt:     opt,
		cfg:     opt.Config,
		db:      opt.Store,
		dev:     opt.Devices,
		log:     opt.Log.With().Str("line", opt.Config.Line.ID).Logger(),
		now:     opt.Now,
		ahead:   ahead,
		events:  make(chan event, 1024),
		cmds:    make(chan command),
		printQ:  make(chan drivers.Label, ahead+64),
		plcQ:    make(chan plcOp, 4096),
		health:  map[string]drivers.Health{},
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
		restart: make(chan struct{}),
		labelQ:  map[string]chan drivers.Label{},
		labelBy: map[string]string{},
		trigQ:   make(chan struct{}, 256),
	}
	if err := e.setupPrinters(); err != nil {
		return nil, err
	}
	e.presence = opt.Devices.TriggerCamera && e.plcHasTag("product_present")
	e.status.Store(&Status{Line: opt.Config.Line.ID, Edge: opt.Config.Edge.ID, State: "Starting", PackML: PackMLStarting})
	return e, nil
}

// Ready is closed once the engine has recovered its state and is running.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Run runs the engine and its device loops until ctx is done or the store
// fails (then the daemon must stop: state in memory may be ahead of disk).
func (e *Engine) Run(ctx context.Context) error {
	if err := e.recoverState(); err != nil {
		return err
	}
	e.publish()
	e.once.Do(func() { close(e.ready) })
	g, ctx := errgroup.WithContext(ctx)
	for _, pd := range e.printers {
		g.Go(func() error { return e.printerLoop(ctx, pd) })
	}
	g.Go(func() error { return e.cameraLoop(ctx) })
	if e.dev.TriggerCamera {
		g.Go(func() error { return e.triggerLoop(ctx) })
	}
	g.Go(func() error { return e.plcLoop(ctx) })
	g.Go(func() error { return e.loop(ctx) })
	err := g.Wait()
	for _, pd := range e.printers {
		pd.p.Close()
	}
	e.dev.Camera.Close()
	e.dev.PLC.Close()
	return err
}

// recoverState loads the active batch and settles units whose fate is
// unknown after a restart: they may or may not have been printed, so their
// serials are decommissioned, never re-issued.
func (e *Engine) recoverState() error {
	return e.db.Update(func(tx *store.Tx) error {
		if _, err := tx.Append(record.KindEdgeStarted, record.EdgeStarted{
			Version: e.opt.Version, Line: e.cfg.Line.ID, PublicKey: record.EncodePublicKey(e.db.PublicKey()),
		}); err != nil {
			return err
		}
		id := tx.Get(store.State, []byte("active_batch"))
		var b batch
		if id != nil {
			if ok, err := tx.GetJSON(store.Batches, id, &b); err != nil || !ok {
				return fmt.Errorf("active batch %q: missing or unreadable state: %v", id, err)
			}
			if b.ConfigHash != e.cfg.Hash {
				if len(e.opt.ConfigBytes) > 0 {
					return fmt.Errorf("batch %s runs with line config %s, the engine was given %s: an open batch keeps its config (load it with BatchConfig)", b.ID, short(b.ConfigHash), short(e.cfg.Hash))
				}
				e.log.Warn().Str("batch", b.ID).Str("batch_config", b.ConfigHash).Str("config", e.cfg.Hash).Msg("the open batch was created with another line config")
			}
		}
		if err := e.applyConfig(tx); err != nil {
			return err
		}
		if id == nil {
			if e.opt.Pending != nil && e.opt.Pending.Hash != e.cfg.Hash {
				e.requestRestart("a changed line config is waiting and no batch is open")
			}
			return nil
		}
		e.b = &b
		pending, file := "", ""
		if e.opt.Pending != nil {
			pending, file = e.opt.Pending.Hash, e.opt.Pending.File
		}
		if err := e.setPending(tx, pending, file); err != nil {
			return err
		}
		// A unit that was between printer and camera has no verdict and
		// got no reject pulse: its serial is decommissioned and, because
		// the physical unit may be travelling on unverified, the line is
		// held until a supervisor confirms it was found and removed (the
		// same path as a reject that was not delivered).
		restarted := b.InFlight
		b.InFlight = nil
		now := e.now()
		for _, f := range restarted {
			if f.Challenge != "" {
				e.requeueChallenge(f.Challenge)
				continue
			}
			if err := e.decommission(tx, f.Serial, ReasonRestart, "unknown"); err != nil {
				return err
			}
			e.countReject(ReasonRestart)
			if err := e.undelivered(tx, pendingReject{
				ID: f.Serial, Serial: f.Serial, Reason: ReasonRestart, Case: b.OpenCase,
				At: f.SentAt, Deadline: now.UnixNano(),
				Detail: "the edge stopped while the unit was between printer and camera: no verdict, no reject pulse",
			}); err != nil {
				return err
			}
		}
		// Labels and reject pulses whose outcome was not known when the
		// edge stopped: a label is pending (reprint after a check), a
		// reject counts as not delivered (the unit may be downstream).
		if err := e.recoverLabels(tx); err != nil {
			return err
		}
		if err := e.recoverRejects(tx); err != nil {
			return err
		}
		e.fx = effects{}
		return e.saveBatch(tx)
	})
}

// ErrStopped: the engine is not running (any more).
var ErrStopped = errors.New("line engine is not running")

func (e *Engine) loop(ctx context.Context) error {
	defer close(e.stopped)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	group := e.cfg.Edge.GroupCommit
	if group <= 0 {
		group = 256
	}
	evs := make([]event, 0, group)
	for {
		evs = evs[:0]
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e.events:
			evs = append(evs, ev)
		case c := <-e.cmds:
			if err := e.runCommand(c); err != nil {
				return err
			}
			continue
		case <-tick.C:
		}
	drain:
		for len(evs) < group {
			select {
			case ev := <-e.events:
				evs = append(evs, ev)
			default:
				break drain
			}
		}
		if err := e.step(evs); err != nil {
			e.log.Error().Err(err).Msg("store commit failed; stopping the line engine")
			return fmt.Errorf("line engine: %w", err)
		}
	}
}

// step applies device events and timers in one transaction, then performs
// the side effects.
func (e *Engine) step(evs []event) error {
	if len(e.local) > 0 {
		evs = append(append([]event(nil), e.local...), evs...)
		e.local = nil
	}
	err := e.db.Update(func(tx *store.Tx) error {
		dirty := false
		for _, ev := range evs {
			d, err := e.apply(tx, ev)
			if err != nil {
				return err
			}
			dirty = dirty || d
		}
		d, err := e.timers(tx)
		if err != nil {
			return err
		}
		dirty = dirty || d
		d, err = e.closeWaiting(tx)
		if err != nil {
			return err
		}
		dirty = dirty || d
		d, err = e.fill(tx)
		if err != nil {
			return err
		}
		if err := e.equipmentTick(tx); err != nil {
			return err
		}
		if dirty || d {
			return e.saveBatch(tx)
		}
		return nil
	})
	if err != nil {
		e.fx = effects{}
		return err
	}
	e.flush()
	for _, ev := range evs {
		switch ev.(type) {
		case evReading, evReadError:
			e.processed.Add(1)
		}
	}
	return nil
}

func (e *Engine) runCommand(c command) error {
	if c.raw != nil {
		v, err := c.raw()
		var re *RuleError
		if err != nil && !errors.As(err, &re) {
			c.reply <- cmdResult{err: err}
			return fmt.Errorf("line engine: command %s: %w", c.name, err)
		}
		e.publish()
		c.reply <- cmdResult{v: v, err: err}
		return nil
	}
	saved := e.snapshotBatch()
	var res any
	err := e.db.Update(func(tx *store.Tx) error {
		v, err := c.fn(tx)
		if err != nil {
			return err
		}
		res = v
		if _, err := e.fill(tx); err != nil {
			return err
		}
		return e.saveBatch(tx)
	})
	if err != nil {
		e.b = saved
		e.fx = effects{}
		var re *RuleError
		if errors.As(err, &re) {
			e.publish()
			c.reply <- cmdResult{err: err}
			return nil
		}
		c.reply <- cmdResult{err: err}
		return fmt.Errorf("line engine: command %s: %w", c.name, err)
	}
	e.flush() // status published before the caller hears back
	c.reply <- cmdResult{v: res}
	return nil
}

// do runs fn as a command on the engine goroutine, in one transaction, and
// waits for its result.
func (e *Engine) do(ctx context.Context, name string, fn func(tx *store.Tx) (any, error)) (any, error) {
	return e.send(ctx, command{name: name, fn: fn, reply: make(chan cmdResult, 1)})
}

// doRaw runs fn on the engine goroutine; fn makes its own transactions
// (each of them consistent) and must not touch the batch state.
func (e *Engine) doRaw(ctx context.Context, name string, fn func() (any, error)) (any, error) {
	return e.send(ctx, command{name: name, raw: fn, reply: make(chan cmdResult, 1)})
}

func (e *Engine) send(ctx context.Context, c command) (any, error) {
	select {
	case e.cmds <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.stopped:
		return nil, ErrStopped
	}
	select {
	case r := <-c.reply:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Engine) snapshotBatch() *batch {
	if e.b == nil {
		return nil
	}
	c := *e.b
	c.Reasons = make(map[string]int, len(e.b.Reasons))
	for k, v := range e.b.Reasons {
		c.Reasons[k] = v
	}
	c.InFlight = append([]inflight(nil), e.b.InFlight...)
	c.Alarms = append([]string(nil), e.b.Alarms...)
	c.Open = append([]string(nil), e.b.Open...)
	c.Waiting = append([]string(nil), e.b.Waiting...)
	c.LabelsQueued = append([]string(nil), e.b.LabelsQueued...)
	c.LabelsPending = append([]string(nil), e.b.LabelsPending...)
	c.Rejects = append([]pendingReject(nil), e.b.Rejects...)
	c.Undelivered = append([]pendingReject(nil), e.b.Undelivered...)
	if e.b.Challenge != nil {
		ch := *e.b.Challenge
		ch.Pending = append([]string(nil), ch.Pending...)
		c.Challenge = &ch
	}
	return &c
}

func (e *Engine) saveBatch(tx *store.Tx) error {
	if e.b == nil {
		return nil
	}
	return tx.PutJSON(store.Batches, []byte(e.b.ID), e.b)
}

func (e *Engine) flush() {
	// Reject pulses first: they race the unit to the gate.
	for _, op := range e.fx.plc {
		select {
		case e.plcQ <- op:
		default:
			if op.reject {
				// Never dropped silently: the reject is not delivered.
				e.local = append(e.local, evRejectDone{id: op.id, detail: "the PLC queue is full: the reject output is not keeping up"})
			}
			e.log.Error().Str("device", e.dev.PLCName).Bool("reject", op.reject).Msg("PLC queue full: the PLC output is not keeping up")
		}
	}
	for _, q := range e.fx.labels {
		select {
		case e.labelQ[q.printer] <- q.label:
		default:
			e.local = append(e.local, evLabelDone{sscc: q.label.ID, printer: q.printer, err: errors.New("the printer's label queue is full")})
		}
	}
	for _, j := range e.fx.prints {
		e.printQ <- j // bounded by print-ahead: never blocks long
	}
	replies := e.fx.replies
	e.fx = effects{}
	e.publish()
	for _, f := range replies {
		f()
	}
}

func (e *Engine) apply(tx *store.Tx, ev event) (bool, error) {
	switch ev := ev.(type) {
	case evReading:
		return true, e.verdict(tx, ev.r)
	case evReadError:
		return e.readError(tx, ev.err)
	case evPrintFailed:
		return true, e.printFailed(tx, ev.serial, ev.err)
	case evHealth:
		return false, e.healthChanged(tx, ev)
	case evLabelDone:
		return true, e.labelDone(tx, ev)
	case evRejectDone:
		return e.rejectDone(tx, ev)
	case evTriggerFailed:
		return false, e.triggerFailed(tx, ev)
	}
	return false, fmt.Errorf("line engine: unknown event %T", ev)
}

func (e *Engine) healthChanged(tx *store.Tx, ev evHealth) error {
	if err := e.equipmentHealth(tx, ev); err != nil {
		return err
	}
	old, seen := e.health[ev.device]
	e.health[ev.device] = ev.h
	if seen && old.OK() == ev.h.OK() && old.Fault == ev.h.Fault {
		return nil
	}
	if !seen && ev.h.OK() {
		return nil
	}
	fault := ev.h.Fault
	if !ev.h.Connected && fault == "" {
		fault = "disconnected"
	}
	if ev.h.OK() {
		fault = "cleared"
		e.log.Info().Str("device", ev.device).Msg("device ok")
	} else {
		e.log.Warn().Str("device", ev.device).Str("fault", fault).Str("detail", ev.h.Detail).Msg("device fault")
	}
	_, err := tx.Append(record.KindDeviceFault, record.DeviceFault{Device: ev.device, Kind: ev.kind, Fault: fault, Detail: ev.h.Detail})
	return err
}

// devicesOK reports whether the unit printer, the camera and the PLC are
// connected and without fault: the engine only feeds the printer when it can
// also verify and reject. Label printers do not count here: a case printer
// fault stops containers from closing (see labelReady), not unit printing.
func (e *Engine) devicesOK() bool {
	for _, name := range []string{e.dev.PrinterName, e.dev.CameraName, e.dev.PLCName} {
		if h, ok := e.health[name]; !ok || !h.OK() {
			return false
		}
	}
	return true
}
