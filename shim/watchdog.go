//go:build linux

package shim

// systemd's watchdog protocol, both ways. Downward, with --watchdog, the
// service gets WATCHDOG_USEC and WATCHDOG_PID (its own pid, which the
// setup helper sets, as for LISTEN_PID) and a private NOTIFY_SOCKET; once
// it is ready it must send WATCHDOG=1 within every interval, or it gets
// --watchdog-signal, SIGKILL to its tree after --kill-timeout, and a
// restart that counts as a failure. Upward, when whatever runs upshim set
// WATCHDOG_USEC, upshim's loop pings every half interval.
//
// The machine's part is here too: what a watchdog field means in each
// state, and the stop that a watchdog or health failure starts.

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// parseUsec reads a count of microseconds, as the protocol sends them.
func parseUsec(v string) (time.Duration, error) {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || n > uint64(1<<63-1)/1000 {
		return 0, fmt.Errorf("%q is not a count of microseconds", v)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// watchdogTimeout is this run's watchdog interval: --watchdog, or what
// the service set with WATCHDOG_USEC=; 0 is off.
func (m *machine) watchdogTimeout() time.Duration {
	if m.inst.wdSet {
		return m.inst.wdTimeout
	}
	return time.Duration(m.cfg.Watchdog)
}

// watched reports whether the service is ready and running on its own,
// which is when the watchdog runs: from readiness until a stop or the
// end of the run.
func (m *machine) watched() bool {
	return (m.phase == phRunning || m.phase == phPostStart) && m.inst.pid != 0 &&
		m.then == intentNone && m.inst.ending == ""
}

// armWatchdog arms the watchdog for a full interval from now, or disarms
// it when the interval is 0.
func (m *machine) armWatchdog() {
	if d := m.watchdogTimeout(); d > 0 {
		m.arm(dlWatchdog, d)
		return
	}
	m.disarm(dlWatchdog)
}

// onWatchdogFields handles WATCHDOG=, WATCHDOG_USEC= and
// EXTEND_TIMEOUT_USEC=, which count only from the main process's tree:
// another process cannot keep a hung service alive, nor kill it.
func (m *machine) onWatchdogFields(n *notification) {
	wd, hasWD := n.fields["WATCHDOG"]
	usec, hasUsec := n.fields["WATCHDOG_USEC"]
	ext, hasExt := n.fields["EXTEND_TIMEOUT_USEC"]
	if !hasWD && !hasUsec && !hasExt {
		return
	}
	if m.old != nil {
		return // the watchdog pauses during a replace; the old one's pings mean nothing now
	}
	if !n.fromMain || m.inst.pid == 0 {
		m.warnNotify("warning: NOTIFY_SOCKET: watchdog message from pid %d, which is not in the main process's tree: ignored", n.pid)
		return
	}
	if hasUsec {
		d, err := parseUsec(usec)
		if err != nil {
			m.warnNotify("warning: NOTIFY_SOCKET: WATCHDOG_USEC=%s: %v: ignored", usec, err)
		} else {
			m.inst.wdTimeout, m.inst.wdSet = d, true
			m.logf(levelDebug, "watchdog interval is now %s (WATCHDOG_USEC)", d)
			if m.watched() {
				m.armWatchdog()
			}
		}
	}
	switch wd {
	case "1":
		// Pings before readiness are not needed: --start-timeout covers
		// the start, and the watchdog is armed once ready.
		if m.watched() {
			m.armWatchdog()
		}
	case "trigger":
		// The service found itself broken; systemd takes it even without
		// a watchdog interval.
		if m.inst.pid != 0 && m.then == intentNone && m.inst.ending == "" &&
			(m.watched() || m.phase == phStarting) {
			m.logf(levelError, "watchdog: the service sent WATCHDOG=trigger; sending %s to main process (%d)",
				Signal(m.cfg.WatchdogSignal), m.inst.pid)
			m.failStop("watchdog")
		}
	case "":
	default:
		m.warnNotify("warning: NOTIFY_SOCKET: WATCHDOG=%s: want 1 or trigger: ignored", wd)
	}
	if hasExt {
		m.extendTimeout(ext)
	}
}

// extendTimeout is EXTEND_TIMEOUT_USEC=: the start timeout while starting,
// the kill timeout while stopping, run until at least that long from now.
func (m *machine) extendTimeout(v string) {
	d, err := parseUsec(v)
	if err != nil {
		m.warnNotify("warning: NOTIFY_SOCKET: EXTEND_TIMEOUT_USEC=%s: %v: ignored", v, err)
		return
	}
	dl := m.armed[0]
	if !(m.phase == phStarting && dl == dlStart) && !(m.phase == phStopping && dl == dlKill) {
		return
	}
	if m.now.Add(d).After(m.due[0]) {
		m.logf(levelDebug, "%s timeout extended to %s from now (EXTEND_TIMEOUT_USEC)", dl, d)
		m.arm(dl, d)
	}
}

// onWatchdogTimeout: no ping came within the interval.
func (m *machine) onWatchdogTimeout() {
	if !m.watched() {
		return
	}
	m.logf(levelError, "watchdog timeout: no WATCHDOG=1 for %s; sending %s to main process (%d)",
		m.watchdogTimeout(), Signal(m.cfg.WatchdogSignal), m.inst.pid)
	m.failStop("watchdog")
}

// failStop ends a run that the watchdog or the health probes found hung:
// the stop sequence without pre-stop, after which post-stop gets
// SERVICE_RESULT=reason and the run counts as a failure (mainEnded). A
// post-start hook still running is stopped first, as for a requested stop.
func (m *machine) failStop(reason string) {
	m.inst.ending = reason
	m.quiesce()
	if m.phase == phPostStart && m.hook != nil && m.hook.pid != 0 {
		m.stopHook() // onHookExit goes on
		return
	}
	m.killFailed()
}

// killFailed sends a failed run its signal: --watchdog-signal to the main
// process for the watchdog, the kill signal per --kill-mode otherwise;
// SIGKILL to everything at the kill timeout.
func (m *machine) killFailed() {
	if m.inst.ending == "watchdog" {
		m.killRun(syscall.Signal(m.cfg.WatchdogSignal), true)
		return
	}
	m.killRun(syscall.Signal(m.cfg.KillSignal), false)
}

// quiesce stops the watchdog and the probes: the run is over, or stopping.
func (m *machine) quiesce() {
	m.disarm(dlWatchdog)
	m.pauseProbes()
}

// The Supervisor's side.

// upwardWatchdog is the interval of the watchdog whoever runs upshim set
// (systemd's WatchdogSec=), or 0: WATCHDOG_USEC, for upshim's pid or with
// no WATCHDOG_PID, as sd_watchdog_enabled reads them.
func upwardWatchdog() time.Duration {
	d, err := parseUsec(os.Getenv("WATCHDOG_USEC"))
	if err != nil || d <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return d
}

// withWatchdog is the main process's setup under --watchdog: r's, plus
// WATCHDOG_USEC; the helper adds WATCHDOG_PID, the service's own pid.
func (r *resolvedSetup) withWatchdog(d time.Duration) *resolvedSetup {
	m := *r
	m.env = mergeEnv(append([]string(nil), r.env...), "WATCHDOG_USEC="+strconv.FormatInt(d.Microseconds(), 10))
	m.watchdogPID = true
	return &m
}

// fromMainTree reports whether pid is the main process or one of its
// descendants, or in its process group (a worker it left to upshim).
func (s *Supervisor) fromMainTree(pid int) bool {
	main := s.m.inst.pid
	if main == 0 || pid <= 1 {
		return false
	}
	if pid == main {
		return true
	}
	if g, err := s.procs.group(pid); err == nil && g == s.m.inst.pgid && g != s.pgrp {
		return true
	}
	for i := 0; pid > 1 && i < 64; i++ {
		pid = s.procs.parent(pid)
		if pid == main {
			return true
		}
		if pid == s.self {
			return false
		}
	}
	return false
}
