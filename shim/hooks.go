package shim

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HookKind names one of the four lifecycle hooks.
type HookKind int

// The hooks, in the order of a service's life.
const (
	// PreStart runs before every start, respawns included; failure means
	// the service does not run and upshim exits with the hook's status.
	PreStart HookKind = iota
	// PostStart runs once the service is ready, alongside it; failure is
	// logged and ignored.
	PostStart
	// PreStop runs on a requested stop, before the kill signal.
	PreStop
	// PostStop runs after every run, with how it ended in its environment.
	PostStop
)

var hookNames = [...]string{"pre-start", "post-start", "pre-stop", "post-stop"}

// String names the hook as its flag does.
func (k HookKind) String() string { return hookNames[k] }

// DefaultHookTimeout is --hook-timeout's default.
const DefaultHookTimeout = Duration(30 * time.Second)

// hookRun is the one hook running at a time.
type hookRun struct {
	kind     HookKind
	pid      int
	timedOut bool // killed at --hook-timeout
	stopping bool // got the kill signal because a stop was requested
}

// next says what follows a run of the service once post-stop is done.
type next struct {
	respawn   bool
	delay     time.Duration
	code      int  // upshim's exit status if the service is over
	signalled bool // a stop already sent the kill signal to what is left
}

// runHook starts hook kind with /bin/sh -e -c, under the service's setup
// plus extra variables, in a process group of its own so that a timeout
// can kill all of it. It reports whether the hook started.
func (s *Supervisor) runHook(kind HookKind, extra ...string) bool {
	setup := *s.setup
	setup.env = mergeEnv(append([]string(nil), s.setup.env...), extra...)
	argv := []string{"sh", "-e", "-c", s.cfg.Hooks[kind]}
	pid, err := spawn(s.cfg.Name, "/bin/sh", argv, &setup, false)
	if err != nil {
		s.logf(levelError, "%s hook: cannot execute /bin/sh: %v", kind, err)
		return false
	}
	s.hook = &hookRun{kind: kind, pid: pid}
	s.logf(levelDebug, "%s hook (%d) started", kind, pid)
	if s.cfg.HookTimeout > 0 {
		s.armHook(time.Duration(s.cfg.HookTimeout))
	}
	return true
}

// hasHook reports whether --kind was given.
func (s *Supervisor) hasHook(kind HookKind) bool { return s.cfg.Hooks[kind] != "" }

// onHookExit continues the service's life once its hook has ended.
func (s *Supervisor) onHookExit(e exit) {
	h := s.hook
	s.hook = nil
	s.disarmHook()
	ok := !h.timedOut && e.status.Exited() && e.status.ExitStatus() == 0
	switch {
	case h.timedOut:
		s.logf(levelError, "%s hook (%d) timed out after %s and was killed", h.kind, e.pid, s.cfg.HookTimeout)
	case !ok:
		s.logf(levelError, "%s hook (%d) %s", h.kind, e.pid, describeStatus(e.status))
	default:
		s.logf(levelDebug, "%s hook (%d) %s", h.kind, e.pid, describeStatus(e.status))
	}

	switch h.kind {
	case PreStart:
		if ok && !s.stopRequested {
			s.startMain()
			return
		}
		// The service does not run: upshim ends with the hook's status.
		result := hookResult(h, e.status)
		if s.stopRequested && !ok {
			result = "success"
		}
		s.next = next{code: exitCode(e.status)}
		if ok {
			s.next.code = exitCode(s.last)
		}
		s.runPostStop(result, e.status)
	case PostStart:
		if d := s.deferred; d != nil {
			// The main process ended while post-start ran; its end was
			// kept until now, as upstart kept the respawn.
			s.deferred = nil
			s.mainGone(*d)
		} else if s.stopRequested && s.state == stateRunning {
			s.beginStop()
		}
	case PreStop:
		if s.main == 0 {
			s.mainGone(exit{status: s.last})
			return
		}
		s.sendKill()
	case PostStop:
		s.proceed()
	}
}

// hookResult is SERVICE_RESULT for a pre-start that failed.
func hookResult(h *hookRun, ws syscall.WaitStatus) string {
	if h.timedOut {
		return "timeout"
	}
	return serviceResult(ws, false)
}

// serviceResult is SERVICE_RESULT for a run that ended with ws, as systemd
// names results; stopped says upshim's stop ended it.
func serviceResult(ws syscall.WaitStatus, stopped bool) string {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0, stopped && !ws.CoreDump():
		return "success"
	case ws.Exited():
		return "exit-code"
	case ws.CoreDump():
		return "core-dump"
	}
	return "signal"
}

// exitVars are the post-stop hook's EXIT_CODE and EXIT_STATUS for ws.
func exitVars(ws syscall.WaitStatus) (code, status string) {
	switch {
	case ws.Exited():
		return "exited", itoa(ws.ExitStatus())
	case ws.CoreDump():
		return "dumped", SignalName(ws.Signal())
	case ws.Signaled():
		return "killed", SignalName(ws.Signal())
	}
	return "exited", itoa(exitCode(ws))
}

// runPostStop runs post-stop, if given, with how the run ended and the
// respawns before it, and then goes on as s.next says.
func (s *Supervisor) runPostStop(result string, ws syscall.WaitStatus) {
	if !s.hasHook(PostStop) || s.killHooks {
		s.proceed()
		return
	}
	code, status := exitVars(ws)
	s.state = statePostStop
	if s.sink != nil {
		s.sink.Drain() // the run's output is in the file before post-stop looks
	}
	if !s.runHook(PostStop, "SERVICE_RESULT="+result, "EXIT_CODE="+code, "EXIT_STATUS="+status,
		"UPSHIM_RESPAWNS="+itoa(s.respawns)) {
		s.proceed()
	}
}

// proceed does what s.next says: respawn, after the delay, or finish.
func (s *Supervisor) proceed() {
	n := s.next
	if !n.respawn || s.stopRequested {
		s.finish(n.code, n.signalled)
		return
	}
	s.respawns++
	if n.delay == 0 {
		s.beginStart()
		return
	}
	s.state = stateBackoff
	s.arm(timerRespawn, n.delay)
}

// beginStart runs pre-start, if given, then the main process.
func (s *Supervisor) beginStart() {
	if !s.hasHook(PreStart) {
		s.startMain()
		return
	}
	s.state = statePreStart
	if !s.runHook(PreStart) {
		s.next = next{code: 126}
		s.runPostStop("exit-code", syscall.WaitStatus(126<<8))
	}
}

// beginStop runs pre-stop, if given, then sends the kill signal. While
// the successor of a re-forked daemon is awaited there is no main process
// to stop: the run ends there (stopFollowing).
func (s *Supervisor) beginStop() {
	if s.stopFollowing() {
		return
	}
	if s.hasHook(PreStop) {
		s.state = statePreStop
		if s.runHook(PreStop) {
			return
		}
	}
	s.sendKill()
}

// stopHook asks the running hook's process group to stop, with SIGKILL at
// the kill timeout: a stop must not wait for a hook that hangs.
func (s *Supervisor) stopHook() {
	h := s.hook
	h.stopping = true
	sig := syscall.Signal(s.cfg.KillSignal)
	unix.Kill(-h.pid, sig)
	unix.Kill(-h.pid, unix.SIGCONT)
	s.armHook(time.Duration(s.cfg.KillTimeout))
}

// onHookTimer kills the running hook's group: its timeout, or the kill
// timeout of a stop, has passed.
func (s *Supervisor) onHookTimer() {
	s.hookC = nil
	h := s.hook
	if h == nil {
		return
	}
	if !h.stopping {
		h.timedOut = true
		s.logf(levelInfo, "%s hook (%d) still running after %s; killing it", h.kind, h.pid, s.cfg.HookTimeout)
	}
	unix.Kill(-h.pid, unix.SIGKILL)
}

// armHook sets the hook's timer.
func (s *Supervisor) armHook(d time.Duration) {
	s.disarmHook()
	s.hookTimer = time.NewTimer(d)
	s.hookC = s.hookTimer.C
}

// disarmHook stops the hook's timer, if set.
func (s *Supervisor) disarmHook() {
	if s.hookTimer != nil {
		s.hookTimer.Stop()
	}
	s.hookC = nil
}
