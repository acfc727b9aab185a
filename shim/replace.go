//go:build linux

package shim

// Graceful replace: start a new instance of the service beside the one
// that serves, with the same held sockets, wait until it is ready as
// --expect says, then stop the old one. The only time two instances are
// alive at once, and so the machine holds two instance values: m.old, the
// one being replaced, which serves until the new one is ready, and
// m.inst, the new one, which the start machinery (spawn, readiness,
// start timeout, probes) drives as it drives any start. Every exit is
// named by roleOf: the old main process's is evOldExit.
//
// The phases, in order:
//
//	replace-pre-start   the new instance's pre-start runs
//	replace-starting    the new main process runs, not ready yet
//	replace-post-start  the new one is ready; its post-start runs
//	replace-stopping    the old one got the kill signal (no pre-stop);
//	                    SIGKILL to its tree at --kill-timeout
//	replace-post-stop   the old one is gone; its post-stop runs
//
// A new instance that fails before it is ready is killed with its tree,
// and the old one serves on as if nothing happened: nothing counts in
// the respawn window, which is for the service's own failures.

import (
	"fmt"
	"syscall"
	"time"
)

// replaceRun is what a replace under way remembers besides the two
// instances.
type replaceRun struct {
	req  *request // ctl replace, answered once the old one is gone; nil for --replace-signal
	from int      // the old main process when the replace began, for the answer
}

// starting reports whether a main process is being started: the service's
// own start, or a replace's new instance.
func (m *machine) starting() bool {
	return m.phase == phStarting || m.phase == phReplaceStarting
}

// readyByProbe reports whether the first passing health probe makes the
// starting instance ready: under --expect health, and for a replace under
// --expect none with a probe, where "it started" cannot tell.
func (m *machine) readyByProbe() bool {
	return m.cfg.Expect == ExpectHealth ||
		(m.old != nil && m.cfg.Expect == ExpectNone && m.cfg.Health.Kind != ProbeNone)
}

// startTimeout bounds the start under way: --replace-timeout for a
// replace's new instance, --start-timeout otherwise.
func (m *machine) startTimeout() time.Duration {
	if m.old != nil {
		return time.Duration(m.cfg.ReplaceTimeout)
	}
	return time.Duration(m.cfg.StartTimeout)
}

// oldServes reports whether the old instance is still the one serving:
// until the new one is ready.
func (m *machine) oldServes() bool {
	if m.old == nil || m.old.pid == 0 {
		return false
	}
	switch m.phase {
	case phReplacePreStart, phReplaceStarting, phReplacePostStart:
		return true
	}
	return false
}

// onReplace handles ctl replace (r) or --replace-signal (r nil). strays,
// under --kill-mode all, names a process below upshim that is in no
// instance's tree: the old instance's could then not be told from the new
// one's, and a replace is refused rather than kill the wrong one.
func (m *machine) onReplace(r *request, strays string) {
	refuse := func(text string) {
		m.logf(levelInfo, "replace refused: %s", text)
		if r != nil {
			m.reply(r, "error "+text)
		}
	}
	switch {
	case m.old != nil:
		refuse("replace in progress")
	case m.then != intentNone:
		refuse("the service is stopping; not replacing")
	case m.phase != phRunning || m.inst.pid == 0:
		refuse(fmt.Sprintf("the service is %s, not running and ready; nothing to replace (use start or restart)", m.phase))
	case m.cfg.Expect == ExpectNone && m.cfg.Health.Kind == ProbeNone:
		refuse("replace needs to know when the new instance is ready: add --expect notify (or stop, fork, daemon) or a health probe (--health-cmd, --health-http, --health-tcp); under --expect none a process that started is not one that serves")
	case m.cfg.KillMode == KillAll && strays != "":
		refuse("--kill-mode all: " + strays + ", so the old instance's processes could not be told from the new one's; not replacing")
	default:
		m.beginReplace(r)
	}
}

// beginReplace keeps the serving instance as m.old and starts a new one:
// pre-start first, if given. The old one's watchdog and probes pause
// until the replace is over.
func (m *machine) beginReplace(r *request) {
	m.quiesce()
	old := m.inst
	m.old = &old
	m.inst = instance{}
	m.replace = replaceRun{req: r, from: old.pid}
	m.reloading = true
	m.announce("RELOADING=1")
	m.announce("STATUS=replacing main process " + itoa(old.pid))
	m.logf(levelInfo, "replacing main process (%d): starting a new instance", old.pid)
	if m.cfg.Hooks[PreStart] != "" {
		m.phase = phReplacePreStart
		m.spawnHook(PreStart)
		return
	}
	m.startNew()
}

// startNew spawns the new main process; onSpawned goes on as for a start.
func (m *machine) startNew() {
	m.phase = phReplaceStarting
	m.emit(effect{kind: effSpawnMain})
}

// newReady: the new instance is ready; its post-start runs, if given,
// and then the old one is stopped.
func (m *machine) newReady() {
	m.disarm(dlStart)
	m.disarm(dlPidfile)
	m.logf(levelDebug, "new main process (%d) is ready", m.inst.pid)
	if m.cfg.Hooks[PostStart] != "" {
		m.phase = phReplacePostStart
		m.spawnHook(PostStart)
		return
	}
	m.stopOld()
}

// stopOld sends the old instance the kill signal: to its main process,
// its group or its tree as --kill-mode says, never to the new one's; no
// pre-stop, since the service is not stopping. SIGKILL to its tree
// follows at --kill-timeout.
func (m *machine) stopOld() {
	m.phase = phReplaceStopping
	if m.old.pid == 0 {
		m.oldGone()
		return
	}
	kill := syscall.Signal(m.cfg.KillSignal)
	m.logf(levelInfo, "new main process (%d) is ready; stopping the old one (%d) with %s", m.inst.pid, m.old.pid, SignalName(kill))
	m.old.signalled = true
	to := toOldGroup
	switch m.cfg.KillMode {
	case KillProcess:
		to = toOldMain
	case KillAll:
		to = toOldTree
	}
	m.signal(to, kill, "replace")
	if kill != syscall.SIGKILL && kill != syscall.SIGCONT {
		m.signal(to, syscall.SIGCONT, "replace")
	}
	m.arm(dlKill, time.Duration(m.cfg.KillTimeout))
}

// killOld: the old instance outlived --kill-timeout; SIGKILL to its tree,
// again until it is gone.
func (m *machine) killOld() {
	m.logf(levelInfo, "old main process (%d) or its group still running after %s; sending SIGKILL", m.replace.from, m.cfg.KillTimeout)
	m.signal(toOldTree, syscall.SIGKILL, "replace kill")
	m.arm(dlSweep, sweepInterval)
	m.emit(effect{kind: effPokeReaper})
}

// onOldExit: the old instance's main process ended. Stopped by the
// replace, it is gone once its group is (onReapedReplacing); ended by
// itself before the new one was ready, the new one takes over without a
// third being started.
func (m *machine) onOldExit(ev event) {
	o := m.old
	o.pid, o.end = 0, ev.status
	m.last, m.lastEnded = ev.status, true
	if m.phase == phReplaceStopping {
		m.logf(levelDebug, "old main process (%d) %s", ev.pid, describeStatus(ev.status))
		return // the reaper's pass, which follows, says whether its group is gone
	}
	m.logf(levelInfo, "old main process (%d) %s during the replace; the new instance takes over once ready", ev.pid, describeStatus(ev.status))
}

// onReapedReplacing ends the old instance's stop once its main process is
// reaped and nothing is left in its group.
func (m *machine) onReapedReplacing(ev event) {
	if m.old.pid == 0 && ev.oldLeft <= 0 {
		m.oldGone()
		return
	}
	if m.killed {
		m.signal(toTree, syscall.SIGKILL, "sweep")
	}
}

// oldGone runs the old instance's post-stop, which UPSHIM_REPLACED_BY
// tells from a stop's.
func (m *machine) oldGone() {
	m.disarm(m.armed[0])
	o := m.old
	if m.cfg.Hooks[PostStop] == "" || m.killHooks {
		m.replaceDone()
		return
	}
	code, status := exitVars(o.end)
	m.phase = phReplacePostStop
	m.emit(effect{kind: effDrainLogs})
	m.spawnHook(PostStop, "SERVICE_RESULT="+serviceResult(o.end, o.signalled), "EXIT_CODE="+code, "EXIT_STATUS="+status,
		"UPSHIM_RESPAWNS="+itoa(m.respawns), "UPSHIM_REPLACED_BY="+itoa(m.inst.pid))
}

// replaceDone answers the replace and goes on with the new instance as
// the service: its watchdog and probes start, or, if it ended or a stop
// came meanwhile, that goes on now.
func (m *machine) replaceDone() {
	from := m.replace.from
	m.logf(levelInfo, "replaced main process (%d) with %d", from, m.inst.pid)
	if r := m.replace.req; r != nil {
		m.reply(r, fmt.Sprintf("ok replaced %d %d", from, m.inst.pid))
	}
	m.old, m.replace = nil, replaceRun{}
	m.phase = phRunning
	m.announce("READY=1") // ends the RELOADING=1 of the start
	switch {
	case m.deferred != nil:
		d := m.deferred
		m.deferred = nil
		m.mainGone(event{at: m.now, pid: d.pid, status: d.status})
	case m.then != intentNone:
		m.beginStop()
	default:
		m.announce(m.runningStatus())
		m.armWatchdog()
		if m.cfg.Health.Kind != ProbeNone && m.inst.health == "" {
			m.startProbing()
		} else {
			m.resumeProbes()
		}
	}
}

// replaceFailed ends a replace whose new instance failed before it was
// ready: it is killed with its tree, and the old one serves on. If the
// old one ended meanwhile, nothing serves: the new one's failure is then
// the service's, under the respawn policy.
func (m *machine) replaceFailed(why string) {
	r, from := m.replace.req, m.replace.from
	if m.old.pid == 0 {
		m.logf(levelError, "replace failed: %s; the old main process (%d) had ended too", why, from)
		if r != nil {
			m.reply(r, fmt.Sprintf("error replace failed: %s; the old main process (%d) had ended too", why, from))
		}
		m.dropNew(syscall.SIGKILL, "replace failed")
		m.old, m.replace = nil, replaceRun{}
		m.phase = phStarting
		m.startFailed(m.now, m.last)
		return
	}
	m.logf(levelError, "replace failed: %s; main process (%d) keeps serving", why, from)
	if r != nil {
		m.reply(r, fmt.Sprintf("error replace failed: %s; main process %d keeps serving", why, from))
	}
	m.dropNew(syscall.SIGKILL, "replace failed")
	m.restoreOld()
}

// dropNew gives up the new instance: sig to its tree, and its hook, if
// one runs, is killed; their exits are orphans' from now on.
func (m *machine) dropNew(sig syscall.Signal, why string) {
	m.disarm(m.armed[0])
	m.pauseProbes()
	if h := m.hook; h != nil {
		if h.pid != 0 {
			m.signal(toHookGroup, syscall.SIGKILL, why)
		}
		m.hook = nil
		m.disarm(dlHook)
	}
	if m.inst.pid != 0 || m.inst.pgid != 0 {
		m.signal(toNewTree, sig, why)
		if sig != syscall.SIGKILL {
			m.signal(toNewTree, syscall.SIGCONT, why)
		}
	}
}

// restoreOld makes the old instance the service again, as it was, with
// its watchdog and probes going on.
func (m *machine) restoreOld() {
	m.inst = *m.old
	m.old, m.replace = nil, replaceRun{}
	m.phase = phRunning
	m.announce("READY=1") // ends the RELOADING=1 of the start
	m.announce(m.runningStatus())
	if m.watched() {
		m.armWatchdog()
	}
	m.resumeProbes()
}

// replaceHookFailed: a hook of the new instance could not run. Pre-start
// fails the replace; post-start's failure is only logged, as at a start;
// the old one's post-stop ends it all the same.
func (m *machine) replaceHookFailed(kind HookKind, why string) {
	switch kind {
	case PreStart:
		m.replaceFailed("pre-start hook: " + why)
	case PostStart:
		m.stopOld()
	case PostStop:
		m.replaceDone()
	}
}

// onReplaceHookExit goes on from a hook's end during a replace.
func (m *machine) onReplaceHookExit(h *hookRun, ev event, ok bool) {
	switch h.kind {
	case PreStart:
		if !ok {
			why := "pre-start hook " + describeStatus(ev.status)
			if h.timedOut {
				why = fmt.Sprintf("pre-start hook timed out after %s", m.cfg.HookTimeout)
			}
			m.replaceFailed(why)
			return
		}
		m.startNew()
	case PostStart:
		m.stopOld()
	case PostStop:
		m.replaceDone()
	}
}

// onNewExit: the new instance's main process ended. Before it was ready,
// the replace has failed; after, while the old one is being stopped, its
// end waits for the replace to be over, and the respawn policy decides.
func (m *machine) onNewExit(ev event) {
	m.inst.pid = 0
	switch m.phase {
	case phReplaceStarting, phReplacePostStart:
		m.replaceFailed(fmt.Sprintf("the new main process (%d) %s", ev.pid, describeStatus(ev.status)))
	default:
		m.last, m.lastEnded = ev.status, true
		m.deferred = &exit{pid: ev.pid, status: ev.status}
		m.logf(levelInfo, "new main process (%d) %s while the old one stops", ev.pid, describeStatus(ev.status))
	}
}

// onNewLauncherExit: a forking service's new launcher ended. Exit 0 hands
// the new instance over to what it left behind.
func (m *machine) onNewLauncherExit(ev event) {
	m.inst.pid = 0
	if !ev.status.Exited() || ev.status.ExitStatus() != 0 {
		m.replaceFailed(fmt.Sprintf("expected a fork, but the new launcher (%d) %s", ev.pid, describeStatus(ev.status)))
		return
	}
	m.inst.launcher, m.inst.since = ev.pid, ev.at
	m.emit(effect{kind: effFindMain})
}

// stopDuringReplace: a stop stops both instances. Before the new one is
// ready, it is given up (the kill signal to its tree; SIGKILL with
// everything at the end of the stop) and the stop goes on from the old
// one; once the old one is being stopped, the stop waits for it and then
// stops the new one. Reports whether the stop is taken care of.
func (m *machine) stopDuringReplace(then intent, why string) bool {
	switch m.phase {
	case phReplacePreStart, phReplaceStarting, phReplacePostStart:
		m.logf(levelInfo, "%s during a replace; the new instance is given up and both stop", why)
		if r := m.replace.req; r != nil {
			m.reply(r, "error replace failed: a stop was asked for")
		}
		m.dropNew(syscall.Signal(m.cfg.KillSignal), "stop")
		m.inst = *m.old
		m.old, m.replace = nil, replaceRun{}
		m.phase = phRunning
		m.announce("READY=1")
		return false // the stop goes on from phRunning
	}
	if m.then != intentExit {
		m.then = then
	}
	m.logf(levelDebug, "%s; the old instance is stopping, the new one stops after it", why)
	return true
}
