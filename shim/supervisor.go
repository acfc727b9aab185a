// Package shim supervises one service: it starts the command, relays
// signals to it, reaps every process that ends up upshim's child, respawns
// the service under a limit, and stops it with a kill signal and a timeout.
//
// The main loop. One goroutine, the one that calls Supervisor.Run, owns all
// process state: the state machine, the main pid, the respawn window, the
// timer. Signals (SIGCHLD included) arrive on channels from os/signal and the
// timer on its channel; nothing else reads or writes that state, so there is
// no mutex. The same goroutine spawns and reaps, so a child's pid is
// recorded before its exit can be seen. Nothing in upshim calls wait4 but
// reap, and nothing waits through os/exec.
package shim

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/upshim/upshim/logging"
	"golang.org/x/sys/unix"
)

// state is where the service is in its life. Each handler (onExit,
// onSignal, onTimer) decides what every state does with its event.
type state int

const (
	// statePreStart: the pre-start hook runs; the main process does not.
	statePreStart state = iota
	// stateStarting: the main process (or its launcher) runs but is not
	// ready yet, as --expect judges readiness.
	stateStarting
	// stateRunning: the main process is ready (post-start may run too).
	stateRunning
	// stateBackoff: the main process ended and a respawn waits for its delay.
	stateBackoff
	// statePreStop: a stop was requested; the pre-stop hook runs.
	statePreStop
	// stateStopping: a stop was requested and the kill signal sent; waiting
	// for the main process, with SIGKILL for everything at the deadline.
	stateStopping
	// statePostStop: the main process is gone; the post-stop hook runs.
	statePostStop
	// stateDown: stopped over the control socket; upshim waits for start,
	// restart or exit.
	stateDown
	// stateDraining: the service is over for good; waiting for what it left
	// behind to go, with SIGKILL for everything at the deadline.
	stateDraining
	// stateDone: nothing is left; Run returns.
	stateDone
)

var stateNames = [...]string{"pre-start", "starting", "running", "backoff", "pre-stop", "stopping", "post-stop", "down", "draining", "done"}

// String names the state for messages and status.
func (st state) String() string { return stateNames[st] }

// timerPurpose says what the one timer is armed for.
type timerPurpose int

const (
	timerNone timerPurpose = iota
	timerRespawn
	timerKill
	timerSweep
	timerStart
	timerFollow
)

// sweepInterval spaces the re-checks made after SIGKILL, until every
// descendant is reaped; they happen only while a stop is ending, never
// while the service runs, so an idle upshim never wakes up.
const sweepInterval = 200 * time.Millisecond

// lateSignalsAfter is how long after start-up upshim begins relaying the
// signals that would not kill it (USR1, WINCH, real-time signals…); see
// caughtSignals.
const lateSignalsAfter = 5 * time.Millisecond

// spawnRetryDelay is the least wait before respawning after a spawn that
// failed for want of a resource (see spawnTransient).
const spawnRetryDelay = 100 * time.Millisecond

// ExitUsage is upshim's exit status for a usage or configuration error.
const ExitUsage = 2

// Supervisor runs one service. Create it with New and call Run once.
type Supervisor struct {
	cfg    Config
	stderr io.Writer
	path   string         // resolved Command[0]
	setup  *resolvedSetup // the service's environment, credentials, limits…

	state     state
	main      int // pid of the main process, 0 when none
	mainStart time.Time
	last      syscall.WaitStatus // how the last run ended
	ranOnce   bool
	code      int // upshim's exit status once the service is over

	respawns    int // respawns so far, for messages and status
	window      respawnWindow
	consecutive int // failures since the last run that outlived the interval

	stopRequested bool
	stopSignalled bool // a signal (TERM, INT) asked for the stop under way
	killed        bool // SIGKILL has been sent to everything
	killHooks     bool // ...hooks included: a second stop request

	foreground bool // the service gets the terminal's foreground
	lastPgrp   int  // process group of the latest main process
	// mainHasTerminal: the main process was given the terminal's foreground.
	mainHasTerminal bool

	timer   *time.Timer
	timerC  <-chan time.Time
	purpose timerPurpose

	hook      *hookRun // the hook running, if any: one at a time
	hookTimer *time.Timer
	hookC     <-chan time.Time
	deferred  *exit // the main process's end, kept while post-start runs
	next      next  // what follows post-stop

	mainFD    *os.File      // pidfd of a main process that is not upshim's child
	mainGoneC chan *os.File // a mainFD became readable: its process ended

	launcher        int       // pid of the launcher of a forking service
	awaitingPidfile bool      // the launcher is gone; its pidfile is not there yet
	pidfileSince    time.Time // when the launcher exited
	startTimedOut   bool      // this run did not become ready in time
	following       *exit     // a main process exited 0; its successor's pidfile is awaited

	readyFD        *os.File          // --ready-fd, until first ready
	up             *upward           // NOTIFY_SOCKET of whoever runs upshim
	announcedReady bool              // READY=1 went upward
	reloading      bool              // RELOADING=1 went upward; READY=1 ends it
	notes          chan notification // from the service's NOTIFY_SOCKET
	notify         *notifySocket
	status         string // the service's last STATUS=
	notifyWarned   bool   // a bad NOTIFY_SOCKET message was logged this run

	sink *logging.Sink // the log files, with --log-file

	control         *controlSocket
	requests        chan request
	waiting         []request // stop and restart requests, answered once down
	stayUp          bool      // a control stop: the service goes down, upshim stays
	restartWhenDown bool      // ...and starts it again
	lastEnded       bool      // s.last holds how a main process ended

	chld chan os.Signal
	sigs chan os.Signal
	msg  []byte
}

// New returns a supervisor for cfg, which must have passed Validate.
// Messages go to stderr.
func New(cfg Config, stderr io.Writer) *Supervisor {
	return &Supervisor{
		cfg:    cfg,
		stderr: stderr,
		window: respawnWindow{limit: cfg.RespawnLimit},
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
}

// Run starts the service and supervises it until it is over, then returns
// upshim's exit status. It must be called once, and it owns the process
// state for as long as it runs.
func (s *Supervisor) Run() int {
	// Every spawn happens on this goroutine, and so, locked, on one thread
	// that lives as long as upshim: the children's death signal follows
	// the thread that forked them (see deathSignal). Never unlocked.
	runtime.LockOSThread()
	// One loop does all the work: a second P buys nothing but memory (a
	// thread, its stacks, a cache), and setting the value stops the
	// runtime from re-reading the cgroup's CPU limit on its own. With
	// --log-file, the pipes' readers and the files' writer work at once.
	procs := 1
	if s.cfg.Log.File != "" {
		procs = 2
	}
	runtime.GOMAXPROCS(procs)
	// Catch signals before anything exists that they should reach: a Go
	// program that has not asked for SIGTERM dies of it with status 2.
	signal.Notify(s.chld, unix.SIGCHLD)
	urgent, later := caughtSignals()
	signal.Notify(s.sigs, urgent...)
	if err := ignoreReserved(); err != nil {
		s.logf(levelWarn, "warning: cannot ignore SIGRTMIN (%v): it would kill upshim", err)
	}
	if os.Getpid() != 1 {
		if err := setSubreaper(); err != nil {
			s.logf(levelWarn, "warning: cannot become a subreaper (%v): orphans will not be reaped or stopped", err)
		}
	}
	setup, err := s.cfg.Setup.resolve()
	if err == nil && s.cfg.ReadyFD >= 0 {
		err = s.openReadyFD()
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "upshim: %v\n", err)
		return ExitUsage
	}
	s.setup = setup
	if s.cfg.Log.File != "" {
		lc := s.cfg.Log
		lc.Name, lc.UID, lc.GID = s.cfg.Name, -1, -1
		if setup.cred != nil {
			lc.UID, lc.GID = int(setup.cred.Uid), int(setup.cred.Gid)
			lc.KeepGroups = setup.cred.NoSetGroups
			for _, g := range setup.cred.Groups {
				lc.Groups = append(lc.Groups, int(g))
			}
		}
		if s.sink, err = logging.Open(lc); err != nil {
			fmt.Fprintf(s.stderr, "upshim: %v\n", err)
			return ExitUsage
		}
		defer s.sink.Close()
		setup.files = []uintptr{0, s.sink.Stdout().Fd(), s.sink.Stderr().Fd()}
	}
	if s.cfg.Control != "" {
		s.requests = make(chan request)
		if s.control, err = listenControl(s.cfg.Control, s.requests, s.warnAsync); err != nil {
			fmt.Fprintf(s.stderr, "upshim: %v\n", err)
			return controlExitCode(err)
		}
		defer s.control.close()
	}
	if s.cfg.DiscardOutput && s.sink == nil {
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			fmt.Fprintf(s.stderr, "upshim: %v\n", err)
			return ExitUsage
		}
		defer devnull.Close()
		setup.files = []uintptr{0, devnull.Fd(), devnull.Fd()}
	}
	if len(s.cfg.IgnoredStanzas) > 0 {
		s.logf(levelInfo, "job stanzas left to the init, ignored: %s", strings.Join(s.cfg.IgnoredStanzas, ", "))
	}
	s.up = newUpward(os.Getenv("NOTIFY_SOCKET"))
	if s.cfg.Expect == ExpectNotify {
		uid := -1
		if setup.cred != nil {
			uid = int(setup.cred.Uid)
		}
		s.notes = make(chan notification, 16)
		if s.notify, err = listenNotify(uid, s.notes); err != nil {
			s.logf(levelError, "--expect notify: cannot create NOTIFY_SOCKET: %v", err)
			return 1
		}
		defer s.notify.close()
		setup.env = mergeEnv(setup.env, "NOTIFY_SOCKET="+s.notify.path)
	}
	s.foreground = terminalForeground()

	path, err := lookPath(s.cfg.Command[0], s.setup.env)
	if err != nil {
		s.logf(levelError, "%s: %v", s.cfg.Command[0], err)
		return spawnFailureCode(err)
	}
	s.path = path
	s.beginStart()

	// The other relayed signals are registered once the service has had
	// time to start: each costs a round trip to the runtime's signal
	// thread, together more than the rest of upshim's start-up, and a
	// signal the service gets before it has set up its handlers would
	// only kill it.
	lateC := time.After(lateSignalsAfter)
	for s.state != stateDone {
		select {
		case <-s.chld:
			s.collect()
		case sig := <-s.sigs:
			s.onSignal(sig.(syscall.Signal))
		case <-s.timerC:
			s.onTimer()
		case <-s.hookC:
			s.onHookTimer()
		case m := <-s.notes:
			s.onNotify(m)
		case f := <-s.mainGoneC:
			s.onMainFD(f)
		case r := <-s.requests:
			s.onRequest(r)
		case <-lateC:
			signal.Notify(s.sigs, later...)
			lateC = nil
			dropStartupPages()
			s.logf(levelDebug, "relaying every signal")
		}
	}
	return s.code
}

// startMain spawns the main process. A command that cannot be executed
// ends the service with 127 or 126, whether on the first start or on a
// respawn: upstart did not respawn a job whose exec failed either. A
// spawn that failed for want of processes, descriptors or memory is a
// failed run with status 126, under the respawn policy like any other.
func (s *Supervisor) startMain() {
	fg := s.foreground && (!s.ranOnce || terminalForeground() || terminalOwnedBy(s.lastPgrp))
	pid, err := spawn(s.cfg.Name, s.path, s.cfg.Command, s.setup, fg)
	if err != nil && spawnTransient(err) {
		s.logf(levelError, "%s: cannot start: %v", s.cfg.Command[0], err)
		s.forgetMainFD()
		s.main, s.mainStart = 0, time.Now()
		s.mainEnded(exit{status: syscall.WaitStatus(126 << 8), notStarted: true})
		return
	}
	if err != nil {
		s.logf(levelError, "%s: cannot execute: %v", s.cfg.Command[0], err)
		code := spawnFailureCode(err)
		s.next = next{code: code}
		s.runPostStop("exit-code", syscall.WaitStatus(code<<8))
		return
	}
	s.forgetMainFD()
	s.main, s.mainStart, s.ranOnce, s.lastPgrp, s.mainHasTerminal = pid, time.Now(), true, pid, fg
	s.notifyWarned = false
	s.logf(levelDebug, "main process (%d) started: %s", pid, s.path)
	if s.cfg.Expect == ExpectNone {
		s.becomeReady()
		return
	}
	s.state = stateStarting
	if s.cfg.StartTimeout > 0 {
		s.arm(timerStart, time.Duration(s.cfg.StartTimeout))
	}
}

// collect reaps every child that has ended and hands each to onExit. In
// the last stages of a stop it also notices that nothing is left. Each call
// reaps into a slice of its own: handling one exit may collect again.
func (s *Supervisor) collect() {
	exits, none := reap(nil)
	for _, e := range exits {
		s.onExit(e)
	}
	switch s.state {
	case stateStopping, stateDraining:
		if none && s.main == 0 && s.hook == nil {
			s.disarm()
			if s.stayUp {
				s.onDown()
				return
			}
			s.state = stateDone
			for _, r := range s.waiting {
				r.reply <- "ok stopped; upshim exits"
			}
		} else if s.killed {
			// A process forked while SIGKILL went round may have escaped
			// the first pass; every exit is a chance to catch it.
			signalDescendants(unix.SIGKILL, s.lastPgrp, s.hookPgid())
		}
	}
}

// onExit handles one reaped child.
func (s *Supervisor) onExit(e exit) {
	if e.status.Stopped() {
		s.onStopped(e)
		return
	}
	if s.hook != nil && e.pid == s.hook.pid {
		s.onHookExit(e)
		return
	}
	if e.pid != s.main {
		s.logf(levelDebug, "reaped orphan %d, which %s", e.pid, describeStatus(e.status))
		return
	}
	s.main, s.last, s.lastEnded = 0, e.status, true
	s.forgetMainFD()
	switch {
	case s.state == stateStarting && s.cfg.Expect.forks() && !s.startTimedOut && !s.stopRequested:
		s.launcherExited(e)
	case s.state == stateRunning && s.follow(e):
		// a daemon that re-forked: the new pid is the main process now
	case s.hook != nil && s.hook.kind == PostStart:
		s.deferred = &e // the respawn waits for post-start
		s.logf(levelDebug, "main process (%d) %s; waiting for post-start", e.pid, describeStatus(e.status))
	case s.hook != nil && s.hook.kind == PreStop:
		// onHookExit goes on once pre-stop is done.
	default:
		s.mainGone(e)
	}
}

// mainGone goes on from the end of the main process: to post-stop and
// then the end, if upshim was asked to stop, or to the respawn decision.
func (s *Supervisor) mainGone(e exit) {
	if s.stopRequested {
		s.logf(levelDebug, "main process (%d) %s", e.pid, describeStatus(e.status))
		s.next = next{code: exitCode(e.status), signalled: s.state == stateStopping}
		s.runPostStop(serviceResult(e.status, true), e.status)
		return
	}
	s.mainEnded(e)
}

// onStopped handles a child that a signal stopped. When the main process
// holds the terminal, a Ctrl-Z stopped it, and upshim stops itself so that
// the shell that started it sees the job stop and takes the terminal back;
// SIGCONT (fg, bg) continues upshim, which passes it on.
func (s *Supervisor) onStopped(e exit) {
	if e.pid == s.main && s.state == stateStarting && s.cfg.Expect == ExpectStop {
		// --expect stop: the service says it is ready by stopping itself.
		unix.Kill(e.pid, unix.SIGCONT)
		s.becomeReady()
		return
	}
	if e.pid != s.main || !s.mainHasTerminal || os.Getpid() == 1 {
		return
	}
	s.logf(levelDebug, "main process (%d) stopped by %s; stopping too", e.pid, SignalName(e.status.StopSignal()))
	unix.Kill(os.Getpid(), unix.SIGSTOP)
}

// mainEnded decides, for a main process that ended by itself, between
// respawning and finishing.
func (s *Supervisor) mainEnded(e exit) {
	ws := e.status
	code := exitCode(ws)
	result := serviceResult(ws, false)
	if s.startTimedOut {
		s.startTimedOut, result = false, "timeout"
	}
	normal := s.cfg.NormalExit.Contains(ws) || (s.cfg.Task && ws.Exited() && ws.ExitStatus() == 0)
	if s.cfg.Respawn && s.mainHasTerminal && ws.Signaled() && (ws.Signal() == unix.SIGINT || ws.Signal() == unix.SIGQUIT) {
		// Ctrl-C or Ctrl-\ went to the service alone, since it has the
		// terminal; the user meant to stop it, as a shell would take it.
		s.logf(levelInfo, "main process (%d) %s from the terminal; not respawning", e.pid, describeStatus(ws))
		s.stopRequested = true
		normal = true
	}
	what := fmt.Sprintf("main process (%d) %s", e.pid, describeStatus(ws))
	if e.notStarted {
		what = "the main process could not start"
	}
	if !s.cfg.Respawn || normal {
		s.logf(levelDebug, "%s", what)
		s.next = next{code: code}
		s.runPostStop(result, ws)
		return
	}

	now := time.Now()
	if now.Sub(s.mainStart) >= s.resetAfter() {
		s.consecutive = 0
	}
	s.consecutive++
	if !s.window.fail(now) {
		s.logf(levelError, "%s; respawning too fast (%d times within %s), stopped",
			what, s.window.count, s.cfg.RespawnLimit.Interval)
		if code == 0 {
			code = 1
		}
		s.next = next{code: code}
		s.runPostStop("start-limit-hit", ws)
		return
	}
	delay := backoff(time.Duration(s.cfg.RespawnDelay), time.Duration(s.cfg.RespawnDelayMax), s.consecutive)
	if e.notStarted && delay < spawnRetryDelay {
		// Without a delay the next spawn would fail the same way at once,
		// and again, with no pause to let the resource come back.
		delay = spawnRetryDelay
	}
	s.logf(levelInfo, "%s; respawning%s (%s)", what, after(delay), s.respawnCount())
	s.next = next{respawn: true, delay: delay, code: code}
	s.announce("STATUS=respawning after the main process " + describeStatus(ws))
	s.runPostStop(result, ws)
}

// resetAfter is how long a run must last for the backoff to start again
// from --respawn-delay: the respawn limit's interval, or 5s without one.
func (s *Supervisor) resetAfter() time.Duration {
	if s.cfg.RespawnLimit.Interval > 0 {
		return s.cfg.RespawnLimit.Interval
	}
	return DefaultRespawnLimit.Interval
}

// respawnCount formats "3/10 within 5s", or "respawn 3, no limit".
func (s *Supervisor) respawnCount() string {
	if s.cfg.RespawnLimit.Unlimited() {
		return "respawn " + itoa(s.respawns+1) + ", no limit"
	}
	return itoa(s.window.count) + "/" + itoa(s.cfg.RespawnLimit.Count) + " within " +
		s.cfg.RespawnLimit.Interval.String()
}

func after(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return " in " + d.String()
}

// finish ends the service with upshim exit status code. What the service
// left behind is given the kill signal (unless signalled says a stop
// already sent it) and SIGKILL at the deadline; Run returns once nothing
// is left.
func (s *Supervisor) finish(code int, signalled bool) {
	s.code = code
	s.state = stateDraining
	if s.collect(); s.state == stateDone || s.purpose == timerKill || s.purpose == timerSweep {
		return // nothing left, or a deadline already stands
	}
	if !signalled {
		sig := syscall.Signal(s.cfg.KillSignal)
		n := signalDescendants(sig, s.lastPgrp, s.hookPgid())
		signalDescendants(unix.SIGCONT, s.lastPgrp, s.hookPgid())
		left := "processes"
		if n >= 0 {
			left = plural(n, "process", "processes")
		}
		s.logf(levelInfo, "the service left %s behind; sent %s, SIGKILL in %s", left, SignalName(sig), s.cfg.KillTimeout)
	}
	s.arm(timerKill, time.Duration(s.cfg.KillTimeout))
}

// onSignal handles one signal sent to upshim.
func (s *Supervisor) onSignal(sig syscall.Signal) {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		s.requestStop(sig)
	case unix.SIGHUP:
		s.reload()
	default:
		if sig == unix.SIGCONT && s.mainHasTerminal && s.main != 0 && terminalForeground() {
			// fg after a Ctrl-Z gave the terminal back to upshim's group;
			// the service is the one reading it.
			unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, s.lastPgrp)
		}
		to := sig
		if r, ok := s.cfg.Rewrite[Signal(sig)]; ok {
			if r == 0 {
				s.logf(levelDebug, "dropped %s (--rewrite)", SignalName(sig))
				return
			}
			to = syscall.Signal(r)
		}
		s.send(to, s.cfg.SignalGroup, "relay")
	}
}

// send delivers sig to the main process, or to its process group (see
// mainGroup). The pid is safe to signal: either it is upshim's child and
// has not been reaped, so the kernel cannot have given it to another
// process, or upshim holds a pidfd for it (see watchMain) and signals
// through that.
func (s *Supervisor) send(sig syscall.Signal, group bool, why string) {
	if s.main == 0 {
		s.logf(levelDebug, "%s %s: no main process", why, SignalName(sig))
		return
	}
	target := s.main
	if group {
		if g := s.mainGroup(); g != 0 {
			target = -g
		}
	}
	var err error
	if target == s.main && s.mainFD != nil {
		err = pidfdSignal(s.mainFD, sig)
	} else {
		err = unix.Kill(target, sig)
	}
	if err != nil {
		s.logf(levelWarn, "warning: %s %s to %d: %v", why, SignalName(sig), target, err)
		return
	}
	s.logf(levelDebug, "%s %s to %d", why, SignalName(sig), target)
}

// mainGroup is the process group that group signals go to, or 0 for the
// main process alone. It is the group recorded when the main process was
// started or adopted, and only while the main process is alive and still
// in it: a service that moved into another group (setpgid) has left that
// group to whatever is in it. Never upshim's own group, which also holds
// whatever started upshim, and which a service can join.
func (s *Supervisor) mainGroup() int {
	g, err := unix.Getpgid(s.main)
	if err != nil || g != s.lastPgrp || g <= 1 || g == unix.Getpgrp() || !s.mainAlive() {
		return 0
	}
	return g
}

// requestStop starts the stop sequence: no more respawns, the kill signal
// per --kill-mode, SIGKILL to everything at the deadline. sig is the signal
// that asked (TERM, INT), or 0 for a control request. A request while a
// stop is under way goes to stopAgain.
func (s *Supervisor) requestStop(sig syscall.Signal) {
	if s.state == stateDown {
		// Stopped over the control socket: there is nothing left to stop.
		s.state = stateDone
		return
	}
	if s.stopRequested {
		s.stopAgain(sig)
		return
	}
	s.stopRequested = true
	s.stopSignalled = sig != 0
	why := "got " + SignalName(sig)
	if sig == 0 {
		why = "asked over --control"
	}
	s.logf(levelDebug, "%s; stopping (%s)", why, s.state)
	switch s.state {
	case stateBackoff:
		s.disarm()
		s.logf(levelInfo, "%s; respawn cancelled", why)
		s.finish(exitCode(s.last), false)
	case stateStarting:
		s.sendKill()
	case statePreStart:
		// The service has not started: stop the hook instead, and do not
		// let it hang the stop (upstart's worst hang).
		s.stopHook()
	case stateRunning:
		if s.hook != nil {
			s.stopHook() // post-start; the stop goes on once it has ended
			return
		}
		s.beginStop()
	}
	// statePreStop, stateStopping, statePostStop, stateDraining: under way.
}

// stopAgain handles a stop request while a stop is under way. A control
// request waits for it: its caller keeps the reply until the stop is over.
// A signal (the init's TERM) makes the stop an exit, even one that a
// control stop began to keep upshim up; a second signal kills everything
// at once, since whoever sends TERM twice means now.
func (s *Supervisor) stopAgain(sig syscall.Signal) {
	if sig == 0 {
		s.logf(levelDebug, "asked over --control to stop; a stop is under way, waiting for it")
		return
	}
	s.stayUp, s.restartWhenDown = false, false
	if !s.stopSignalled {
		s.stopSignalled = true
		s.logf(levelInfo, "got %s during a stop; upshim exits once it is over", SignalName(sig))
		return
	}
	if !s.killed {
		s.logf(levelInfo, "got %s again; killing everything now", SignalName(sig))
		s.killHooks = true
		s.killEverything()
	}
}

// reload sends the reload signal to the main process and tells the outer
// supervisor. Under --expect notify the service's own READY=1 ends the
// reload; otherwise upshim cannot know more than that the signal went.
func (s *Supervisor) reload() {
	s.reloading = true
	s.announce("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
	s.send(syscall.Signal(s.cfg.ReloadSignal), false, "reload")
	if s.cfg.Expect != ExpectNotify {
		s.announce("READY=1")
	}
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

// sendKill sends the kill signal per --kill-mode and arms the deadline for
// SIGKILL to everything.
func (s *Supervisor) sendKill() {
	s.announce("STOPPING=1")
	kill := syscall.Signal(s.cfg.KillSignal)
	s.logf(levelDebug, "stopping main process (%d) with %s", s.main, SignalName(kill))
	s.state = stateStopping
	s.signalStop(kill)
	if kill != unix.SIGKILL && kill != unix.SIGCONT {
		// A stopped process would hold the kill signal until continued.
		s.signalStop(unix.SIGCONT)
	}
	s.arm(timerKill, time.Duration(s.cfg.KillTimeout))
}

// signalStop sends sig to whom --kill-mode names.
func (s *Supervisor) signalStop(sig syscall.Signal) {
	switch s.cfg.KillMode {
	case KillProcess:
		s.send(sig, false, "stop")
	case KillGroup:
		s.send(sig, true, "stop")
	case KillAll:
		signalDescendants(sig, s.lastPgrp, s.hookPgid())
	}
}

// hookPgid is the running hook's process group, which stop signals to
// "everything" leave alone, or 0. A second stop request kills it too.
func (s *Supervisor) hookPgid() int {
	if s.hook == nil || s.killHooks {
		return 0
	}
	return s.hook.pid
}

// killEverything sends SIGKILL to every descendant and re-checks until the
// last one is reaped.
func (s *Supervisor) killEverything() {
	s.killed = true
	signalDescendants(unix.SIGKILL, s.lastPgrp, s.hookPgid())
	s.arm(timerSweep, sweepInterval)
}

// onTimer handles the one timer firing.
func (s *Supervisor) onTimer() {
	purpose := s.purpose
	s.timerC, s.purpose = nil, timerNone
	switch purpose {
	case timerRespawn:
		if s.state == stateBackoff {
			s.beginStart()
		}
	case timerKill:
		if s.state == stateStopping || s.state == stateDraining || s.state == statePostStop {
			s.logf(levelInfo, "still running after %s; sending SIGKILL", s.cfg.KillTimeout)
			s.killEverything()
		}
	case timerStart:
		s.onStartTimer()
	case timerFollow:
		s.followAgain()
	case timerSweep:
		s.collect()
		if s.state != stateDone {
			signalDescendants(unix.SIGKILL, s.lastPgrp, s.hookPgid())
			s.arm(timerSweep, sweepInterval)
		}
	}
}

// arm sets the one timer for purpose, replacing whatever it was set for.
func (s *Supervisor) arm(purpose timerPurpose, d time.Duration) {
	s.disarm()
	s.timer = time.NewTimer(d)
	s.timerC, s.purpose = s.timer.C, purpose
}

// disarm stops the timer, if set.
func (s *Supervisor) disarm() {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerC, s.purpose = nil, timerNone
}

// Message levels: errors always print, --quiet hides info and warnings,
// --verbose adds debug.
const (
	levelError = -1
	levelWarn  = 0
	levelInfo  = 0
	levelDebug = 1
)

// logf writes one message line, prefixed upshim[NAME]:, to stderr.
func (s *Supervisor) logf(level int, format string, args ...any) {
	if level > s.cfg.Verbosity {
		return
	}
	s.msg = append(s.msg[:0], "upshim["...)
	s.msg = append(s.msg, s.cfg.Name...)
	s.msg = append(s.msg, "]: "...)
	s.msg = fmt.Appendf(s.msg, format, args...)
	s.msg = append(s.msg, '\n')
	s.stderr.Write(s.msg)
	if s.sink != nil {
		s.sink.Message(s.msg)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return itoa(n) + " " + many
}
