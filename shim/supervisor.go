//go:build linux

// Package shim supervises one service: it starts the command, relays
// signals to it, reaps every process that ends up upshim's child, respawns
// the service under a limit, and stops it with a kill signal and a timeout.
//
// Two parts. The machine (machine.go) decides: every (state, event) pair of
// the service's life is decided in its step function, which returns the
// effects as data. The Supervisor carries them out: one goroutine, the one
// that calls Run, owns the machine, turns what happens (SIGCHLD and the
// other signals, deadlines, the service's notifications, control
// requests) into events, and performs the effects through a small process
// interface (procs). Nothing else reads or writes process state, so there
// is no mutex; the same goroutine spawns and reaps, so a child's pid is
// recorded before its exit can be seen. Nothing in upshim calls wait4 but
// reap, only at the top of the loop, and nothing waits through os/exec.
package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/upshim/upshim/logging"
	"golang.org/x/sys/unix"
)

// lateSignalsAfter is how long after start-up upshim begins relaying the
// signals that would not kill it (USR1, WINCH, real-time signals…); see
// caughtSignals.
const lateSignalsAfter = 5 * time.Millisecond

// ExitUsage is upshim's exit status for a usage or configuration error.
const ExitUsage = 2

// Supervisor runs one service. Create it with New and call Run once.
type Supervisor struct {
	cfg    Config
	stderr io.Writer
	procs  procs
	m      *machine

	path   string         // resolved Command[0]
	setup  *resolvedSetup // the service's environment, credentials, limits…
	main   *resolvedSetup // setup, plus the held sockets: the main process's
	held   []heldSocket   // the sockets held for the main process, open until Run returns
	pgrp   int            // upshim's own process group, which it never signals
	self   int            // upshim's pid
	termFG bool           // upshim held the terminal's foreground at start

	clock deadlines

	readyFD *os.File          // --ready-fd, until first ready
	up      *upward           // NOTIFY_SOCKET of whoever runs upshim
	notes   chan notification // from the service's NOTIFY_SOCKET
	notify  *notifySocket
	sink    *logging.Sink // the log files, with --log-file
	control *controlSocket

	mainFD    *os.File      // pidfd of a main process that is not upshim's child
	mainFDPid int           // ...its pid
	mainGoneC chan *os.File // a mainFD became readable: its process ended
	vetted    *os.File      // pidfd of the MAINPID vet just checked, until adopted
	vettedPid int

	probes    chan probeResult // the probes' results, with a health probe
	devnull   *os.File         // a command probe's stdin
	pingEvery time.Duration    // half the outer watchdog's interval, 0 without one

	requests chan *request
	chld     chan os.Signal
	sigs     chan os.Signal
	late     []os.Signal // signals registered once the service runs

	exits   []exit  // the reaper's buffer, reused
	pending []event // results of effects, stepped after the effects of their step
	msg     []byte
}

// New returns a supervisor for cfg, which must have passed Validate.
// Messages go to stderr.
func New(cfg Config, stderr io.Writer) *Supervisor {
	s := &Supervisor{
		cfg:    cfg,
		stderr: stderr,
		procs:  osProcs{},
		// A SIGCHLD that arrives while one is pending adds nothing: every
		// SIGCHLD empties the whole wait queue.
		chld: make(chan os.Signal, 1),
		// Relayed signals must not be dropped: os/signal drops what does
		// not fit. runc uses 2048; a burst larger than this is not a relay
		// any service could make sense of.
		sigs: make(chan os.Signal, 256),
		// Each watchMain goroutine sends at most once, and the loop
		// always receives.
		mainGoneC: make(chan *os.File, 4),
	}
	s.m = newMachine(&s.cfg, os.Getpid() == 1)
	return s
}

// Run starts the service and supervises it until it is over, then returns
// upshim's exit status. It must be called once, and it owns the process
// state for as long as it runs.
func (s *Supervisor) Run() int {
	cleanup, err := s.prepare()
	defer cleanup()
	if err != nil {
		s.fail(err)
		return exitCodeOf(err)
	}
	s.dispatch(event{kind: evStart, at: time.Now()})
	s.loop()
	return s.m.code
}

// prepare does everything the service needs before it starts, in order;
// the first error stops it. cleanup undoes what was done, error or not.
func (s *Supervisor) prepare() (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	s.tune()
	s.catchSignals()
	s.self, s.pgrp = os.Getpid(), unix.Getpgrp()
	if s.self != 1 {
		if err := setSubreaper(); err != nil {
			s.logf(levelWarn, "warning: cannot become a subreaper (%v): orphans will not be reaped or stopped", err)
		}
	}
	setup, err := s.cfg.Setup.resolve()
	if err != nil {
		return cleanup, usageError{err}
	}
	s.setup = setup
	// The sockets first: a bad address stops upshim before anything else
	// is set up, and binding a unix socket sets the process-wide umask
	// for a moment, before any other goroutine of upshim's creates files.
	undo = append(undo, s.closeSockets)
	if err := s.holdSockets(); err != nil {
		return cleanup, err
	}
	if s.cfg.ReadyFD >= 0 {
		if err := s.openReadyFD(); err != nil {
			return cleanup, usageError{err}
		}
	}
	if s.cfg.Log.File != "" {
		lc := s.cfg.Log
		lc.Name, lc.UID, lc.GID, lc.Say = s.cfg.Name, -1, -1, s.sayForLogs
		if setup.cred != nil {
			lc.UID, lc.GID = int(setup.cred.Uid), int(setup.cred.Gid)
			lc.KeepGroups = setup.cred.NoSetGroups
			for _, g := range setup.cred.Groups {
				lc.Groups = append(lc.Groups, int(g))
			}
		}
		if s.sink, err = logging.Open(lc); err != nil {
			return cleanup, setupError(err)
		}
		undo = append(undo, s.sink.Close)
		setup.files = []uintptr{0, s.sink.Stdout().Fd(), s.sink.Stderr().Fd()}
	}
	if s.cfg.Control != "" {
		s.requests = make(chan *request)
		warn := func(format string, args ...any) { s.logAsync(levelWarn, format, args...) }
		if s.control, err = s.listenControl(warn); err != nil {
			return cleanup, err // a usageError, or a socket upshim cannot set up
		}
		undo = append(undo, s.control.close)
	}
	if s.cfg.DiscardOutput && s.sink == nil {
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return cleanup, usageError{err}
		}
		undo = append(undo, func() { devnull.Close() })
		setup.files = []uintptr{0, devnull.Fd(), devnull.Fd()}
	}
	if len(s.cfg.IgnoredStanzas) > 0 {
		s.logf(levelInfo, "job stanzas left to the init, ignored: %s", strings.Join(s.cfg.IgnoredStanzas, ", "))
	}
	s.up = newUpward(os.Getenv("NOTIFY_SOCKET"))
	if s.up != nil {
		s.pingEvery = upwardWatchdog() / 2
	}
	if s.cfg.Expect == ExpectNotify || s.cfg.Watchdog > 0 {
		uid := -1
		if setup.cred != nil {
			uid = int(setup.cred.Uid)
		}
		s.notes = make(chan notification, 16)
		if s.notify, err = listenNotify(uid, s.notes); err != nil {
			flag := "--expect notify"
			if s.cfg.Watchdog > 0 {
				flag = "--watchdog"
			}
			return cleanup, fmt.Errorf("%s: cannot create NOTIFY_SOCKET: %v", flag, err)
		}
		undo = append(undo, s.notify.close)
		setup.env = mergeEnv(setup.env, "NOTIFY_SOCKET="+s.notify.path)
	}
	if s.cfg.Health.Kind != ProbeNone {
		// Each probe's goroutine sends once; one at a time runs.
		s.probes = make(chan probeResult, 4)
	}
	if s.cfg.Health.Kind == ProbeCmd {
		if s.devnull, err = os.Open(os.DevNull); err != nil {
			return cleanup, err
		}
		undo = append(undo, func() { s.devnull.Close() })
	}
	s.main = setup.withSockets(s.held)
	if s.cfg.Watchdog > 0 {
		s.main = s.main.withWatchdog(time.Duration(s.cfg.Watchdog))
	}
	s.termFG = terminalForeground()
	if s.path, err = lookPath(s.cfg.Command[0], s.setup.env); err != nil {
		return cleanup, execError{fmt.Errorf("%s: %w", s.cfg.Command[0], err)}
	}
	return cleanup, nil
}

// listenControl listens on --control PATH, or with --control auto on
// RUNDIR/NAME.sock, where a live upshim of the same name is refused.
func (s *Supervisor) listenControl(warn func(string, ...any)) (*controlSocket, error) {
	if s.cfg.Control != ControlAuto {
		return listenControl(s.cfg.Control, "--control "+s.cfg.Control, s.requests, warn)
	}
	dir, path, err := openRuntimeDir(s.cfg.Name)
	if err != nil {
		return nil, err
	}
	defer dir.Close() // and so unlocks it
	c, err := listenControl(path, "--control auto: "+path, s.requests, warn)
	if errors.Is(err, errControlLive) {
		err = usageError{fmt.Errorf("--control auto: an upshim named %q is already running (it answers on %s); give this one another --name", s.cfg.Name, path)}
	}
	return c, err
}

// holdSockets adopts the sockets upshim was passed (LISTEN_PID is its pid)
// and binds the --listen ones after them, in order, and gives the machine
// their list for `ctl status`. A malformed address never gets here (the
// flag refused it); one that cannot be bound is a plain error, exit 1.
func (s *Supervisor) holdSockets() error {
	inherited, err := inheritedSockets()
	if err != nil {
		return err
	}
	s.held = inherited
	if n := len(inherited); s.cfg.ReadyFD >= 3 && s.cfg.ReadyFD < 3+n {
		return usageError{fmt.Errorf("--ready-fd %d: that descriptor is one of the LISTEN_FDS=%d upshim was passed", s.cfg.ReadyFD, n)}
	}
	backlog := s.cfg.ListenBacklog
	if backlog == 0 {
		backlog = maxBacklog
	}
	for _, a := range s.cfg.Listen {
		fd, err := bindListen(a, backlog, s.cfg.ListenMode)
		if err != nil {
			return err
		}
		s.held = append(s.held, heldSocket{fd: fd, name: a.Name, flag: "--listen " + a.Spec})
	}
	for i, h := range s.held {
		st := ListenStatus{Name: h.name, Addr: socketAddr(h.fd), FD: 3 + i}
		s.m.sockets = append(s.m.sockets, st)
		s.logf(levelDebug, "holding %s (%s) for the service as fd %d", st.Addr, h.flag, st.FD)
	}
	return nil
}

// closeSockets closes the held sockets, when upshim is done: clients are
// refused from then on, rather than left waiting for a service that will
// not come back.
func (s *Supervisor) closeSockets() {
	for _, h := range s.held {
		unix.Close(h.fd)
	}
	s.held = nil
}

// tune sets the runtime up for a loop that is idle most of the time.
func (s *Supervisor) tune() {
	// One loop does all the work: a second P buys nothing but memory (a
	// thread, its stacks, a cache), and setting the value stops the
	// runtime from re-reading the cgroup's CPU limit on its own. With
	// --log-file, the pipes' readers and the files' writer work at once.
	procs := 1
	if s.cfg.Log.File != "" {
		procs = 2
	}
	runtime.GOMAXPROCS(procs)
}

// catchSignals asks for the signals that would kill or stop upshim before
// anything exists that they should reach: a Go program that has not asked
// for SIGTERM dies of it with status 2. The others wait (see the late
// deadline in loop).
func (s *Supervisor) catchSignals() {
	signal.Notify(s.chld, unix.SIGCHLD)
	urgent, later := caughtSignals()
	signal.Notify(s.sigs, urgent...)
	s.late = later
	if err := ignoreReserved(); err != nil {
		s.logf(levelWarn, "warning: cannot ignore SIGRTMIN (%v): it would kill upshim", err)
	}
}

// loop turns what happens into events until the machine is done.
func (s *Supervisor) loop() {
	// The other relayed signals are registered once the service has had
	// time to start: each costs a round trip to the runtime's signal
	// thread, together more than the rest of upshim's start-up, and a
	// signal the service gets before it has set up its handlers would
	// only kill it.
	s.clock.set(slotLate, time.Now().Add(lateSignalsAfter))
	if s.pingEvery > 0 {
		s.clock.set(slotPing, time.Now().Add(s.pingEvery))
	}
	for s.m.phase != phDone {
		select {
		case <-s.chld:
			s.collect()
		case sig := <-s.sigs:
			s.onSignal(sig.(syscall.Signal))
		case now := <-s.clock.c:
			s.onClock(now)
		case n := <-s.notes:
			s.dispatch(event{kind: evNotify, at: time.Now(), note: s.vet(n)})
			if s.vetted != nil { // not adopted
				s.vetted.Close()
				s.vetted, s.vettedPid = nil, 0
			}
		case f := <-s.mainGoneC:
			s.onMainFD(f)
		case p := <-s.probes:
			s.dispatch(event{kind: evProbeResult, at: time.Now(), seq: p.seq, output: p.output, final: p.final, ok: p.ok})
		case r := <-s.requests:
			ev := event{kind: evRequest, at: time.Now(), req: r}
			if r.verb == "replace" {
				ev.strays = s.strays()
			}
			s.dispatch(ev)
		}
	}
	s.clock.stop()
}

// collect reaps every child that has ended and hands each to the machine
// by its role; the end of the pass is an event too, which says whether any
// child is left.
func (s *Supervisor) collect() {
	exits, none := s.procs.reap(s.exits[:0])
	s.exits = exits
	now := time.Now()
	for _, e := range exits {
		if e.status.Stopped() {
			s.dispatch(event{kind: evMainStopped, at: now, pid: e.pid, sig: e.status.StopSignal()})
			continue
		}
		s.dispatch(event{kind: s.m.roleOf(e.pid), at: now, pid: e.pid, status: e.status})
	}
	ev := event{kind: evReaped, at: now, none: none}
	if o := s.m.old; o != nil && o.pid == 0 && s.m.phase == phReplaceStopping {
		ev.oldLeft = s.procs.signalInstance(0, 0, o.pgid)
	}
	s.dispatch(ev)
}

// onSignal turns a signal sent to upshim into its event.
func (s *Supervisor) onSignal(sig syscall.Signal) {
	kind := evRelaySignal
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		kind = evStopSignal
	case unix.SIGHUP:
		kind = evReloadSignal
	}
	ev := event{kind: kind, at: time.Now(), sig: sig}
	if sig == syscall.Signal(s.cfg.ReplaceSignal) && sig != 0 {
		ev.kind, ev.strays = evReplaceSignal, s.strays()
	}
	s.dispatch(ev)
}

// onClock handles the one timer: every deadline that has passed.
func (s *Supervisor) onClock(now time.Time) {
	for _, slot := range s.clock.due(now) {
		switch slot {
		case slotLate:
			signal.Notify(s.sigs, s.late...)
			dropStartupPages()
			s.logf(levelDebug, "relaying every signal")
			continue
		case slotPing:
			// The outer watchdog hears from the loop itself: a loop that
			// hangs stops pinging.
			if err := s.up.send("WATCHDOG=1"); err != nil {
				s.logf(levelDebug, "NOTIFY_SOCKET: %v", err)
			}
			s.clock.set(slotPing, now.Add(s.pingEvery))
			continue
		}
		s.dispatch(event{kind: evDeadline, at: now, dl: s.clock.purpose[slot]})
	}
	s.clock.rearm()
}

// dispatch steps the machine with ev and carries out its effects; effects
// that have a result (a spawn, a search for the main process) give events
// that are stepped in turn, before anything else happens.
func (s *Supervisor) dispatch(ev event) {
	s.pending = append(s.pending[:0], ev)
	for i := 0; i < len(s.pending); i++ {
		for _, e := range s.m.step(s.pending[i]) {
			s.do(e, s.pending[i].at)
		}
	}
	s.pending = s.pending[:0]
	if s.mainFD != nil && s.mainFDPid != s.m.inst.pid && (s.m.old == nil || s.mainFDPid != s.m.old.pid) {
		s.forgetMainFD() // the main process it followed is no longer the main process
	}
}

// then queues the result of an effect.
func (s *Supervisor) then(ev event) { s.pending = append(s.pending, ev) }

// do carries out one effect.
func (s *Supervisor) do(e effect, now time.Time) {
	switch e.kind {
	case effSpawnMain:
		s.spawnMain(now)
	case effSpawnHook:
		s.spawnHook(e, now)
	case effSignal:
		s.signal(e)
	case effArm:
		s.clock.arm(e.dl, now.Add(e.d))
	case effDisarm:
		s.clock.disarm(e.dl)
	case effAnnounce:
		msg := e.msg
		if msg == "RELOADING=1" {
			msg += "\nMONOTONIC_USEC=" + monotonicUsec()
		}
		if err := s.up.send(msg); err != nil {
			s.logf(levelDebug, "NOTIFY_SOCKET: %v", err)
		}
	case effReply:
		e.req.reply <- e.msg
	case effLog:
		s.logf(e.level, "%s", e.msg)
	case effFindMain:
		s.findMain(now)
	case effDrainLogs:
		if s.sink != nil {
			s.sink.Drain()
		}
	case effReadyFD:
		if s.readyFD != nil {
			if err := writeNoSigpipe(int(s.readyFD.Fd()), []byte{'\n'}); err != nil {
				s.logf(levelWarn, "warning: --ready-fd %d: %v", s.cfg.ReadyFD, err)
			}
			s.readyFD.Close()
			s.readyFD = nil
		}
	case effWatchMain:
		if s.vetted != nil && s.vettedPid == e.pid {
			s.watchMain(s.vetted, e.pid)
			s.vetted, s.vettedPid = nil, 0
		}
	case effTerminal:
		if terminalForeground() {
			unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, e.pid)
		}
	case effRotate:
		s.rotate(e.req)
	case effProbe:
		s.runProbe(e.seq, now)
	case effPokeReaper:
		select {
		case s.chld <- unix.SIGCHLD:
		default: // a pass is due already
		}
	}
}

// spawnMain starts the main process. A command that cannot be executed
// ends the service with 127 or 126, whether on the first start or on a
// respawn: upstart did not respawn a job whose exec failed either. A
// failure for want of processes, descriptors or memory is a failed run.
func (s *Supervisor) spawnMain(now time.Time) {
	last := s.m.inst.pgid
	// A replace's new instance never takes the terminal from the old one.
	fg := s.termFG && s.m.old == nil && (!s.m.ranOnce || terminalForeground() || terminalOwnedBy(last))
	pid, err := s.procs.spawn(s.cfg.Name, s.path, s.cfg.Command, s.main, fg)
	if err != nil {
		code := spawnFailureCode(err)
		if spawnTransient(err) {
			code = 0
		}
		s.then(event{kind: evSpawnFailed, at: now, err: err, code: code})
		return
	}
	s.then(event{kind: evSpawned, at: now, pid: pid, fg: fg})
}

// spawnHook starts a hook with /bin/sh -e -c, under the service's setup
// plus the effect's variables, in a process group of its own so that a
// timeout can kill all of it.
func (s *Supervisor) spawnHook(e effect, now time.Time) {
	setup := *s.setup
	setup.env = mergeEnv(append([]string(nil), s.setup.env...), e.env...)
	argv := []string{"sh", "-e", "-c", s.cfg.Hooks[e.hook]}
	pid, err := s.procs.spawn(s.cfg.Name, "/bin/sh", argv, &setup, false)
	if err != nil {
		s.then(event{kind: evSpawnFailed, at: now, err: err, code: 126})
		return
	}
	s.then(event{kind: evSpawned, at: now, pid: pid})
}

// signal sends a signal where the machine said. A group is signalled only
// if it is not upshim's own: a service that joined upshim's group gets the
// signal alone, and upshim's parent never does.
func (s *Supervisor) signal(e effect) {
	switch e.to {
	case toTree:
		n := s.procs.signalTree(e.sig, s.m.inst.pgid, e.pid)
		if e.what == "left behind" && e.sig != unix.SIGCONT && n != 0 {
			left := "processes"
			if n > 0 {
				left = plural(n, "process", "processes")
			}
			s.logf(levelInfo, "the service left %s behind; sent %s, SIGKILL in %s", left, SignalName(e.sig), s.cfg.KillTimeout)
		}
		return
	case toSelf:
		s.procs.signal(s.self, e.sig)
		return
	case toOldTree, toNewTree:
		// One instance's tree, never the other's: the descendants of its
		// main process and the members of its group.
		s.procs.signalInstance(e.sig, e.pid, e.pgid)
		return
	}
	target := e.pid
	switch e.to {
	case toMainGroup:
		// The group as it is now: a daemon may have called setsid since
		// it was adopted. Never upshim's own group, which also holds
		// whatever started upshim, and which a service can join; nor the
		// group of a main process followed by pidfd that has ended.
		if g, err := s.procs.group(e.pid); err == nil && g != s.pgrp && g > 1 && s.mainAlive() {
			target = -g
		}
	case toHookGroup, toProbeGroup:
		if e.pid != s.pgrp {
			target = -e.pid
		}
	case toOldGroup:
		// The old instance's group as it is now, or, once its main
		// process is gone, as recorded; never upshim's own.
		g := e.pgid
		if e.pid != 0 {
			if now, err := s.procs.group(e.pid); err == nil {
				g = now
			}
		}
		target = 0
		if g != s.pgrp && g > 1 {
			target = -g
		}
	}
	if target == s.mainFDPid && s.mainFD != nil {
		// Not upshim's child: only its pidfd is sure to reach it.
		if err := pidfdSignal(s.mainFD, e.sig); err != nil {
			s.logf(levelWarn, "warning: %s %s to %d: %v", e.what, SignalName(e.sig), target, err)
			return
		}
		s.logf(levelDebug, "%s %s to %d", e.what, SignalName(e.sig), target)
		return
	}
	if target == 0 || target == s.self {
		return
	}
	if err := s.procs.signal(target, e.sig); err != nil {
		s.logf(levelWarn, "warning: %s %s to %d: %v", e.what, SignalName(e.sig), target, err)
		return
	}
	s.logf(levelDebug, "%s %s to %d", e.what, SignalName(e.sig), target)
}

// strays names, under --kill-mode all, a process below upshim in no tree
// a replace could tell apart (see strayFrom); "" otherwise.
func (s *Supervisor) strays() string {
	if s.cfg.KillMode != KillAll || s.m.inst.pid == 0 {
		return ""
	}
	var spared []int
	if s.m.hook != nil && s.m.hook.pid != 0 {
		spared = append(spared, s.m.hook.pid)
	}
	if s.m.probe != nil && s.m.probe.pid != 0 {
		spared = append(spared, s.m.probe.pid)
	}
	return strayFrom(s.m.inst.pid, s.m.inst.pgid, spared...)
}

// findMain looks for the process a forking service's launcher left behind:
// by pidfile, or as the one child upshim has adopted.
func (s *Supervisor) findMain(now time.Time) {
	pid, retry, err := s.survivor()
	if err != nil {
		s.then(event{kind: evNotFound, at: now, err: err, retry: retry})
		return
	}
	pgid := pid
	if g, err := s.procs.group(pid); err == nil {
		pgid = g
	}
	s.then(event{kind: evFound, at: now, pid: pid, pgid: pgid})
}

// rotate rotates the log files, for `ctl rotate`.
func (s *Supervisor) rotate(r *request) {
	if s.sink == nil {
		r.reply <- "error no --log-file to rotate"
		return
	}
	if err := s.sink.Rotate(); err != nil {
		r.reply <- "error " + err.Error()
		return
	}
	r.reply <- "ok rotated " + s.cfg.Log.File
}

// openReadyFD checks --ready-fd and keeps it from the service.
func (s *Supervisor) openReadyFD() error {
	fd := s.cfg.ReadyFD
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("--ready-fd %d: not an open descriptor", fd)
	}
	unix.CloseOnExec(fd)
	s.readyFD = os.NewFile(uintptr(fd), "ready-fd")
	return nil
}

// Every line upshim writes about the service goes through line and out:
// one prefix, upshim[NAME]:, to stderr and to the log file.

// logf writes one line from the loop, in the loop's own buffer, unless
// --quiet or the lack of --verbose hides its level.
func (s *Supervisor) logf(level int, format string, args ...any) {
	if level > s.cfg.Verbosity {
		return
	}
	s.msg = s.line(s.msg[:0], format, args...)
	s.out(s.msg, true)
}

// logAsync is logf for the other goroutines (the control socket's).
func (s *Supervisor) logAsync(level int, format string, args ...any) {
	if level > s.cfg.Verbosity {
		return
	}
	s.out(s.line(nil, format, args...), true)
}

// sayForLogs prints the log writer's own lines (lost output, a link
// replaced): to stderr only, since the writer puts in the file what
// belongs there, and must never wait for itself.
func (s *Supervisor) sayForLogs(serious bool, msg string) {
	level := levelWarn
	if serious {
		level = levelError
	}
	if level > s.cfg.Verbosity {
		return
	}
	s.out(s.line(nil, "%s", msg), false)
}

// line appends one prefixed line to b.
func (s *Supervisor) line(b []byte, format string, args ...any) []byte {
	b = append(b, "upshim["...)
	b = append(b, s.cfg.Name...)
	b = append(b, "]: "...)
	b = fmt.Appendf(b, format, args...)
	return append(b, '\n')
}

// out writes a line to stderr and, with toFile, to the log file.
func (s *Supervisor) out(b []byte, toFile bool) {
	s.stderr.Write(b)
	if toFile && s.sink != nil {
		s.sink.Message(b)
	}
}

// fail reports a start-up error. Before the command is looked up, an
// error is about the command line or upshim's own set-up, not yet about
// the service, and says so with upshim's bare prefix, as the flag
// parser's errors do.
func (s *Supervisor) fail(err error) {
	var exec execError
	if !errors.As(err, &exec) {
		s.msg = fmt.Appendf(s.msg[:0], "upshim: %v\n", err)
		s.stderr.Write(s.msg)
		return
	}
	s.logf(levelError, "%v", err)
}

func timeNow() time.Time { return time.Now() }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return itoa(n) + " " + many
}
