//go:build linux

package shim

// The lifecycle machine. Every decision about the service's life is made
// here, in step: given the state and one event, it changes the state and
// returns what must be done as a list of effects. It does no I/O and reads
// no clock (the time comes with the event), so a unit test can walk every
// state × event cell; testdata/lifecycle.golden is that walk, and the
// design document of the lifecycle. The Supervisor's loop turns signals,
// exits, deadlines, notifications and control requests into events and
// carries the effects out.
//
// The shape follows s6-supervise, whose whole life is one table of
// state × event: every cell is decided, the ignored ones included.

import (
	"fmt"
	"math"
	"strconv"
	"syscall"
	"time"
)

// phase is where the service is in its life.
type phase int

const (
	// phInit: nothing has started yet.
	phInit phase = iota
	// phPreStart: the pre-start hook runs; the main process does not.
	phPreStart
	// phStarting: the main process (or its launcher) runs, not ready yet
	// as --expect judges readiness.
	phStarting
	// phAwaitPidfile: a forking service's launcher exited 0 and its
	// pidfile is not there yet; upshim reads it again until pidfileWait.
	phAwaitPidfile
	// phRunning: the main process is ready.
	phRunning
	// phFollowing: a forking service's main process exited 0 while
	// running; the successor its pidfile will name is awaited.
	phFollowing
	// phPostStart: ready, and the post-start hook runs alongside.
	phPostStart
	// phPostStartEnded: the main process ended while post-start ran; its
	// end waits for the hook, as upstart kept the respawn waiting.
	phPostStartEnded
	// phBackoff: the main process ended; a respawn waits for its delay.
	phBackoff
	// phPreStop: a stop was asked for; the pre-stop hook runs.
	phPreStop
	// phStopping: the kill signal went; waiting for the main process,
	// with SIGKILL to everything at the deadline.
	phStopping
	// phPostStop: the main process is gone; the post-stop hook runs.
	phPostStop
	// phDraining: this run is over; waiting for what it left behind to go,
	// with SIGKILL to everything at the deadline.
	phDraining
	// phDown: stopped over the control socket; upshim waits for start,
	// restart or exit.
	phDown
	// phDone: nothing is left; Run returns.
	phDone
	// The phases of a replace (replace.go): two instances are alive, the
	// old one in m.old, the new one in m.inst.
	//
	// phReplacePreStart: the new instance's pre-start runs; the old serves.
	phReplacePreStart
	// phReplaceStarting: the new main process runs, not ready yet; the
	// old serves.
	phReplaceStarting
	// phReplacePostStart: the new one is ready; its post-start runs, the
	// old still serves.
	phReplacePostStart
	// phReplaceStopping: the old one got the kill signal; waiting for it
	// and its group to go, with SIGKILL to its tree at the deadline.
	phReplaceStopping
	// phReplacePostStop: the old one is gone; its post-stop runs.
	phReplacePostStop
)

var phaseNames = [...]string{"init", "pre-start", "starting", "awaiting-pidfile", "running", "following", "post-start",
	"post-start-ended", "backoff", "pre-stop", "stopping", "post-stop", "draining", "down", "done",
	"replace-pre-start", "replace-starting", "replace-post-start", "replace-stopping", "replace-post-stop"}

func (p phase) String() string { return phaseNames[p] }

// statusName is the state `ctl status` shows: the phases of one stage of
// the life share a name, so that scripts see the names they always saw.
func (p phase) statusName() string {
	switch p {
	case phAwaitPidfile:
		return "starting"
	case phPostStart, phPostStartEnded, phFollowing:
		return "running"
	case phReplacePreStart, phReplaceStarting, phReplacePostStart, phReplaceStopping, phReplacePostStop:
		return "replacing"
	}
	return p.String()
}

// intent is what a requested stop leads to. It is part of the state: a
// stop that SIGTERM asked for stays an exit whatever the control socket
// says meanwhile.
type intent int

const (
	// intentNone: nobody asked for a stop; the respawn policy decides.
	intentNone intent = iota
	// intentDown: `ctl stop`: the service goes down, upshim stays up.
	intentDown
	// intentRestart: `ctl restart`: down, then up again.
	intentRestart
	// intentExit: SIGTERM, SIGINT, `ctl exit`, or Ctrl-C: upshim exits.
	intentExit
)

var intentNames = [...]string{"", "down", "restart", "exit"}

// instance is one run of the service: its main process and what upshim
// knows of it. It is a value, so that two can be alive at once.
type instance struct {
	pid      int       // the main process, 0 when none
	pgid     int       // its process group, recorded at spawn or adoption
	launcher int       // a forking service's launcher, once it exited 0
	started  time.Time // when the main process was spawned
	terminal bool      // it was given the terminal's foreground
	timedOut bool      // it did not become ready by --start-timeout
	since    time.Time // when the launcher exited, for the pidfile wait

	// ending says why upshim is ending this run on its own: "watchdog" or
	// "unhealthy"; post-stop gets it as SERVICE_RESULT.
	ending    string
	wdTimeout time.Duration // the watchdog interval the service set (WATCHDOG_USEC=)...
	wdSet     bool          // ...if it did

	health     string // "", starting, healthy or unhealthy
	streak     int    // failed probes in a row
	periodOver bool   // a probe passed: the start period is over

	// For the old instance of a replace: how its main process ended, and
	// whether upshim had sent it the kill signal by then.
	end       syscall.WaitStatus
	signalled bool
}

// hookRun is the one hook running at a time.
type hookRun struct {
	kind     HookKind
	pid      int
	timedOut bool // killed at --hook-timeout
	stopping bool // got the kill signal because a stop was asked for
}

// next says what follows a run of the service once post-stop is done.
type next struct {
	respawn   bool
	delay     time.Duration
	code      int  // upshim's exit status if the service is over
	signalled bool // a stop already sent the kill signal to what is left
}

// deadline names what a deadline is for. The service's deadlines share
// one slot (arming one replaces the other); the hook has a slot of its
// own, since a hook runs alongside the service.
type deadline int

const (
	dlNone         deadline = iota
	dlRespawn               // the respawn delay is over
	dlStart                 // --start-timeout
	dlPidfile               // read a late pidfile again
	dlKill                  // --kill-timeout: SIGKILL to everything left
	dlSweep                 // SIGKILL again until the last process is reaped
	dlHook                  // --hook-timeout, or the kill timeout of a stopping hook
	dlWatchdog              // --watchdog: no WATCHDOG=1 came within the interval
	dlProbe                 // the next health probe is due
	dlProbeTimeout          // --health-timeout of the probe in flight
)

var deadlineNames = [...]string{"none", "respawn", "start", "pidfile", "kill", "sweep", "hook", "watchdog",
	"probe", "probe-timeout"}

func (d deadline) String() string { return deadlineNames[d] }

// machineSlots is how many deadline slots the machine uses: the service's,
// the hook's, the watchdog's, and the probes' (the next probe, or the
// timeout of the one in flight: never both).
const machineSlots = 4

// slot is the deadline slot d uses.
func (d deadline) slot() int {
	switch d {
	case dlHook:
		return 1
	case dlWatchdog:
		return 2
	case dlProbe, dlProbeTimeout:
		return 3
	}
	return 0
}

// spawnRetryDelay is the least wait before respawning after a spawn that
// failed for want of a resource (see spawnTransient).
const spawnRetryDelay = 100 * time.Millisecond

// sweepInterval spaces the re-checks made after SIGKILL, until every
// descendant is reaped; they happen only while a stop is ending, never
// while the service runs, so an idle upshim never wakes up.
const sweepInterval = 200 * time.Millisecond

// machine is the service's whole lifecycle state. Only step changes it.
type machine struct {
	cfg  *Config
	pid1 bool // upshim is PID 1: it never stops itself on Ctrl-Z

	phase    phase
	then     intent
	inst     instance
	old      *instance // during a replace, the instance being replaced (replace.go)
	replace  replaceRun
	hook     *hookRun
	deferred *exit // the main process's end, kept while post-start runs
	next     next  // what follows post-stop

	killed    bool // SIGKILL went to everything
	killHooks bool // ...hooks included: a second stop signal
	sigStop   bool // a stop signal (TERM, INT) arrived: a second one kills

	last      syscall.WaitStatus // how the last main process ended
	lastEnded bool               // last holds a real end
	ranOnce   bool
	code      int // upshim's exit status once the service is over

	respawns    int // respawns so far, for messages and status
	window      respawnWindow
	consecutive int // failures since the last run that outlived the interval

	armed [machineSlots]deadline  // what each deadline slot is armed for
	due   [machineSlots]time.Time // ...and until when
	now   time.Time               // the time of the event being stepped

	probe     *probeRun // the health probe in flight
	probeSeq  int       // the number of the last probe started
	lastProbe string    // the last probe's output, at most maxProbeOutput bytes

	notifyWarned   bool   // a bad NOTIFY_SOCKET message was logged this run
	readyDone      bool   // --ready-fd has had its newline
	announcedReady bool   // READY=1 went upward
	reloading      bool   // RELOADING=1 went upward; READY=1 ends it
	status         string // the service's last STATUS=

	waiting []*request // stop and restart requests, answered once down or done

	sockets []ListenStatus // the sockets held for the service, as data for status

	eff []effect // the effects of the step under way
}

// newMachine returns the machine for cfg, before anything has started.
func newMachine(cfg *Config, pid1 bool) *machine {
	return &machine{cfg: cfg, pid1: pid1, window: respawnWindow{limit: cfg.RespawnLimit}}
}

// step decides what ev means in the current state and returns the
// effects. The slice is reused by the next step.
func (m *machine) step(ev event) []effect {
	m.eff = m.eff[:0]
	m.now = ev.at
	switch ev.kind {
	case evMainExit, evLauncherExit, evHookExit, evOrphanExit, evProbeExit, evOldExit:
		ev.kind = m.roleOf(ev.pid) // an exit's role is the machine's to say
	}
	switch ev.kind {
	case evStart:
		if m.phase == phInit {
			m.beginStart()
		}
	case evMainExit:
		m.onMainExit(ev)
	case evLauncherExit:
		m.onLauncherExit(ev)
	case evHookExit:
		m.onHookExit(ev)
	case evOrphanExit:
		m.logf(levelDebug, "reaped orphan %d, which %s", ev.pid, describeStatus(ev.status))
	case evMainVanished:
		if ev.pid == m.inst.pid && ev.pid != 0 {
			// Its parent reaped it, and its status went there. A stop under
			// way is taken to have ended it; otherwise it counts as a failure.
			m.logf(levelInfo, "main process (%d) ended; its parent, not upshim, reaped it, so how it ended is unknown", ev.pid)
			ev.status = exited(1)
			if m.then != intentNone {
				ev.status = 0
			}
			m.onMainExit(ev)
		}
	case evMainStopped:
		m.onMainStopped(ev)
	case evReaped:
		m.onReaped(ev)
	case evStopSignal:
		m.onStopSignal(ev)
	case evReloadSignal:
		m.reload(nil)
	case evRelaySignal:
		m.onRelaySignal(ev)
	case evDeadline:
		m.onDeadline(ev)
	case evNotify:
		m.onNotify(ev)
	case evRequest:
		m.onRequest(ev)
	case evSpawned:
		m.onSpawned(ev)
	case evSpawnFailed:
		m.onSpawnFailed(ev)
	case evFound:
		m.onFound(ev)
	case evNotFound:
		m.onNotFound(ev)
	case evProbeExit:
		m.onProbeExit(ev)
	case evProbeStarted:
		m.onProbeStarted(ev)
	case evProbeResult:
		m.onProbeResult(ev)
	case evOldExit:
		m.onOldExit(ev)
	case evReplaceSignal:
		m.onReplace(nil, ev.strays)
	}
	return m.eff
}

// roleOf says what an exit of pid is to the machine.
func (m *machine) roleOf(pid int) evKind {
	switch {
	case m.hook != nil && pid == m.hook.pid:
		return evHookExit
	case m.probe != nil && m.probe.pid != 0 && pid == m.probe.pid:
		return evProbeExit
	case m.old != nil && pid != 0 && pid == m.old.pid:
		return evOldExit
	case pid == 0 || pid != m.inst.pid:
		return evOrphanExit
	case m.starting() && m.cfg.Expect.forks():
		return evLauncherExit
	}
	return evMainExit
}

// The effect makers.

func (m *machine) emit(e effect) { m.eff = append(m.eff, e) }

func exited(code int) syscall.WaitStatus { return syscall.WaitStatus(code << 8) }

func (m *machine) logf(level int, format string, args ...any) {
	m.emit(effect{kind: effLog, level: level, msg: fmt.Sprintf(format, args...)})
}

func (m *machine) signal(to target, sig syscall.Signal, why string) {
	pid := m.inst.pid // toMainGroup too: the loop looks its group up when it sends
	switch to {
	case toHookGroup:
		pid = m.hook.pid
	case toProbeGroup:
		pid = m.probe.pid
	case toTree:
		pid = m.hookPgid()
	case toSelf:
		pid = 0
	case toOldMain, toOldGroup, toOldTree:
		m.emit(effect{kind: effSignal, to: to, sig: sig, pid: m.old.pid, pgid: m.old.pgid, what: why})
		return
	case toNewTree:
		m.emit(effect{kind: effSignal, to: to, sig: sig, pid: m.inst.pid, pgid: m.inst.pgid, what: why})
		return
	}
	m.emit(effect{kind: effSignal, to: to, sig: sig, pid: pid, what: why})
}

func (m *machine) arm(dl deadline, d time.Duration) {
	m.armed[dl.slot()], m.due[dl.slot()] = dl, m.now.Add(d)
	m.emit(effect{kind: effArm, dl: dl, d: d})
}

func (m *machine) disarm(dl deadline) {
	if m.armed[dl.slot()] == dlNone {
		return
	}
	m.armed[dl.slot()] = dlNone
	m.emit(effect{kind: effDisarm, dl: dl})
}

func (m *machine) reply(r *request, text string) {
	m.emit(effect{kind: effReply, req: r, msg: text})
}

// announce tells the outer supervisor msg. READY=1 goes the first time
// only once the start is over (running, post-start done), and after that
// only to end a reload.
func (m *machine) announce(msg string) {
	if msg == "READY=1" {
		switch {
		case !m.announcedReady && m.phase != phRunning:
			return
		case m.announcedReady && !m.reloading:
			return
		}
		m.announcedReady, m.reloading = true, false
	}
	m.emit(effect{kind: effAnnounce, msg: msg})
}

// hookPgid is the running hook's process group, which signals to every
// descendant spare, or 0: a second stop signal kills it too.
func (m *machine) hookPgid() int {
	if m.hook == nil || m.killHooks {
		return 0
	}
	return m.hook.pid
}

// The life of one run.

// beginStart runs pre-start, if given, then the main process.
func (m *machine) beginStart() {
	if m.cfg.Hooks[PreStart] == "" {
		m.startMain()
		return
	}
	m.phase = phPreStart
	m.spawnHook(PreStart)
}

// startMain spawns the main process; onSpawned or onSpawnFailed go on.
func (m *machine) startMain() {
	m.phase = phStarting
	m.inst = instance{pgid: m.inst.pgid, terminal: m.inst.terminal}
	m.emit(effect{kind: effSpawnMain})
}

// spawnHook starts hook kind; onSpawned or onSpawnFailed go on.
func (m *machine) spawnHook(kind HookKind, env ...string) {
	m.hook = &hookRun{kind: kind}
	m.emit(effect{kind: effSpawnHook, hook: kind, env: env})
}

func (m *machine) onSpawned(ev event) {
	if m.hook != nil && m.hook.pid == 0 {
		m.hook.pid = ev.pid
		m.logf(levelDebug, "%s hook (%d) started", m.hook.kind, ev.pid)
		if m.cfg.HookTimeout > 0 {
			m.arm(dlHook, time.Duration(m.cfg.HookTimeout))
		}
		if m.phase == phPreStart && m.then != intentNone {
			m.stopHook() // a stop came while the hook was being started
		}
		return
	}
	if !m.starting() || m.inst.pid != 0 {
		return // nothing asked for a main process
	}
	m.inst.pid, m.inst.pgid, m.inst.started = ev.pid, ev.pid, ev.at
	m.inst.terminal = ev.fg
	m.ranOnce, m.notifyWarned = true, false
	m.logf(levelDebug, "main process (%d) started: %s", ev.pid, m.cfg.Command[0])
	if m.cfg.Expect == ExpectNone && !m.readyByProbe() {
		m.becomeReady()
		return
	}
	if d := m.startTimeout(); d > 0 {
		m.arm(dlStart, d)
	}
	if m.readyByProbe() {
		m.startProbing() // the first passing probe makes it ready
	}
}

func (m *machine) onSpawnFailed(ev event) {
	if h := m.hook; h != nil && h.pid == 0 {
		m.hook = nil
		m.logf(levelError, "%s hook: cannot execute /bin/sh: %v", h.kind, ev.err)
		if m.old != nil {
			m.replaceHookFailed(h.kind, "cannot execute /bin/sh: "+ev.err.Error())
			return
		}
		switch h.kind {
		case PreStart:
			m.next = next{code: 126}
			m.runPostStop("exit-code", syscall.WaitStatus(126<<8))
		case PostStart:
			m.phase = phRunning
			if m.then == intentNone {
				m.started()
			}
		case PreStop:
			m.sendKill()
		case PostStop:
			m.proceed()
		}
		return
	}
	if !m.starting() || m.inst.pid != 0 {
		return
	}
	if m.old != nil {
		m.replaceFailed(fmt.Sprintf("%s: cannot start: %v", m.cfg.Command[0], ev.err))
		return
	}
	if ev.code == 0 {
		// Out of processes, descriptors or memory for now: a failed run
		// with status 126 under the respawn policy, not a command that
		// cannot run.
		m.logf(levelError, "%s: cannot start: %v", m.cfg.Command[0], ev.err)
		m.inst.started = ev.at
		m.mainEnded(event{at: ev.at, status: exited(126), notStarted: true})
		return
	}
	m.logf(levelError, "%s: cannot execute: %v", m.cfg.Command[0], ev.err)
	m.next = next{code: ev.code}
	m.runPostStop("exit-code", syscall.WaitStatus(ev.code<<8))
}

// becomeReady marks the service ready: the start timeout is over, and
// post-start runs. The start is over once post-start is, as upstart's
// start and systemd's ExecStartPost= have it: a post-start that waits
// until the service answers makes a readiness check of it.
func (m *machine) becomeReady() {
	if m.old != nil {
		m.newReady()
		return
	}
	m.disarm(dlStart)
	m.phase = phRunning
	m.logf(levelDebug, "main process (%d) is ready", m.inst.pid)
	if m.cfg.Hooks[PostStart] != "" {
		m.phase = phPostStart
		m.spawnHook(PostStart)
		return
	}
	m.started()
}

// started tells the outside that a start is over: the outer supervisor
// (READY=1 the first time) and --ready-fd.
func (m *machine) started() {
	m.announce("READY=1")
	m.announce(m.runningStatus())
	// The watchdog and the probes run from readiness on (under --expect
	// health the probes already run: they made it ready).
	m.armWatchdog()
	if m.cfg.Expect != ExpectHealth {
		m.startProbing()
	}
	if !m.readyDone && m.cfg.ReadyFD >= 0 {
		m.readyDone = true
		m.emit(effect{kind: effReadyFD})
	}
}

// runningStatus is the STATUS= upward for a ready service.
func (m *machine) runningStatus() string {
	s := "STATUS=running, main process " + itoa(m.inst.pid)
	if m.inst.health == healthHealthy {
		s += ", healthy"
	}
	return s
}

// onLauncherExit handles the end of a forking service's launcher before
// it was ready: exit 0 hands the service over to what it left behind;
// anything else is a failed start.
func (m *machine) onLauncherExit(ev event) {
	if m.old != nil {
		m.onNewLauncherExit(ev)
		return
	}
	m.inst.pid, m.last, m.lastEnded = 0, ev.status, true
	if m.inst.timedOut || m.then != intentNone {
		m.mainGone(ev)
		return
	}
	if !ev.status.Exited() || ev.status.ExitStatus() != 0 {
		m.logf(levelError, "expected a fork, but the launcher (%d) %s", ev.pid, describeStatus(ev.status))
		m.mainEnded(ev)
		return
	}
	m.inst.launcher, m.inst.since = ev.pid, ev.at
	m.emit(effect{kind: effFindMain})
}

// onFound makes the process a forking service left behind its main
// process: at start-up, or when a running daemon re-forked.
func (m *machine) onFound(ev event) {
	switch m.phase {
	case phStarting, phAwaitPidfile, phReplaceStarting:
		if m.phase == phReplaceStarting && (m.inst.launcher == 0 || m.inst.pid != 0) {
			return // nothing was looked for
		}
		m.disarm(dlPidfile)
		m.adopt(ev.pid, ev.pgid)
		m.logf(levelDebug, "the launcher (%d) exited 0; main process is %d", m.inst.launcher, ev.pid)
		m.becomeReady()
	case phRunning, phPostStart, phFollowing:
		if m.deferred == nil {
			return
		}
		m.disarm(dlPidfile)
		m.logf(levelInfo, "main process (%d) exited 0; following %d", m.deferred.pid, ev.pid)
		m.deferred = nil
		m.adopt(ev.pid, ev.pgid)
		if m.phase == phFollowing {
			m.phase = phRunning
		}
		// The successor gets a full watchdog interval, and the probes
		// that paused while it was looked for go on.
		if m.watched() {
			m.armWatchdog()
		}
		m.resumeProbes()
	}
}

// adopt makes pid, one of upshim's descendants that the service named or
// left behind, the main process; the stop signals then go to its process
// group, which a daemon that called setsid has made its own.
func (m *machine) adopt(pid, pgid int) {
	m.inst.pid, m.inst.pgid = pid, pgid
}

// onNotFound goes on when no main process could be found: wait for a late
// pidfile, or fail the start, or (a running daemon) take the end as final.
func (m *machine) onNotFound(ev event) {
	switch m.phase {
	case phReplaceStarting:
		if m.inst.launcher == 0 || m.inst.pid != 0 {
			return
		}
		if ev.retry && ev.at.Sub(m.inst.since) < m.pidfileWait() {
			m.arm(dlPidfile, pidfileRetry)
			return
		}
		m.replaceFailed("expected a fork, but " + ev.err.Error())
	case phStarting, phAwaitPidfile:
		if ev.retry && ev.at.Sub(m.inst.since) < m.pidfileWait() {
			if m.phase == phStarting {
				m.logf(levelDebug, "the launcher (%d) exited 0; waiting for --pidfile %s", m.inst.launcher, m.cfg.PidFile)
			}
			m.phase = phAwaitPidfile
			m.arm(dlPidfile, pidfileRetry)
			return
		}
		m.phase = phStarting
		m.logf(levelError, "expected a fork, but %v", ev.err)
		m.startFailed(ev.at, syscall.WaitStatus(0))
	case phRunning, phFollowing:
		d := m.deferred
		if d == nil {
			return
		}
		if m.phase == phRunning {
			m.inst.since = ev.at
		}
		if ev.retry && ev.at.Sub(m.inst.since) < m.pidfileWait() {
			// A re-forked daemon's pidfile is waited for as at start-up.
			m.phase = phFollowing
			m.arm(dlPidfile, pidfileRetry)
			return
		}
		m.deferred = nil
		m.phase = phRunning
		if m.inst.since != ev.at {
			m.logf(levelInfo, "main process (%d) exited 0, and no successor to follow: %v", d.pid, ev.err)
		}
		m.mainGone(event{at: ev.at, pid: d.pid, status: d.status})
	case phPostStart:
		d := m.deferred
		if d == nil {
			return
		}
		m.phase = phPostStartEnded
		m.logf(levelDebug, "main process (%d) %s; waiting for post-start", d.pid, describeStatus(d.status))
	}
}

// pidfileWait is how long a pidfile may keep upshim waiting: pidfileWait,
// or less if --start-timeout is shorter.
func (m *machine) pidfileWait() time.Duration {
	if t := time.Duration(m.cfg.StartTimeout); t > 0 && t < pidfileWait {
		return t
	}
	return pidfileWait
}

// startFailed ends a start that never became ready: the tree is killed
// and the failure counts for the respawn limit like any other, as an exit
// with status 1 when the launcher itself exited 0.
func (m *machine) startFailed(at time.Time, ws syscall.WaitStatus) {
	m.signal(toTree, syscall.SIGKILL, "start failed")
	m.inst.pid = 0
	if ws.Exited() && ws.ExitStatus() == 0 {
		ws = syscall.WaitStatus(1 << 8)
	}
	m.mainEnded(event{at: at, status: ws})
}

// onMainExit handles the end of the main process.
func (m *machine) onMainExit(ev event) {
	if m.old != nil {
		m.onNewExit(ev)
		return
	}
	m.inst.pid, m.last, m.lastEnded = 0, ev.status, true
	switch m.phase {
	case phRunning, phPostStart:
		if m.cfg.Expect.forks() && ev.status.Exited() && ev.status.ExitStatus() == 0 && m.then == intentNone {
			// A daemon that re-forks or re-execs names its successor in
			// the pidfile, or leaves exactly one process behind.
			m.deferred = &exit{pid: ev.pid, status: ev.status}
			m.emit(effect{kind: effFindMain})
			return
		}
		m.quiesce()
		if m.phase == phPostStart {
			m.phase, m.deferred = phPostStartEnded, &exit{pid: ev.pid, status: ev.status}
			m.logf(levelDebug, "main process (%d) %s; waiting for post-start", ev.pid, describeStatus(ev.status))
			return
		}
	case phPreStop:
		return // onHookExit goes on once pre-stop is done
	case phStopping:
		if m.then == intentNone && m.inst.ending != "" {
			// The stop of a hung run is over once its main process is:
			// its deadline goes, and the respawn policy decides.
			m.disarm(m.armed[0])
			m.killed = false
		}
	}
	m.mainGone(ev)
}

// mainGone goes on from the end of the main process: to post-stop and
// then the end, if a stop was asked for, or to the respawn decision.
func (m *machine) mainGone(ev event) {
	m.quiesce()
	if m.then != intentNone {
		m.logf(levelDebug, "main process (%d) %s", ev.pid, describeStatus(ev.status))
		m.next = next{code: exitCode(ev.status), signalled: m.phase == phStopping}
		m.runPostStop(serviceResult(ev.status, true), ev.status)
		return
	}
	m.mainEnded(ev)
}

// onMainStopped handles a main process that a signal stopped. When it
// holds the terminal, a Ctrl-Z stopped it, and upshim stops itself so that
// the shell that started it sees the job stop and takes the terminal back;
// SIGCONT (fg, bg) continues upshim, which passes it on.
func (m *machine) onMainStopped(ev event) {
	if ev.pid != m.inst.pid {
		return
	}
	if m.starting() && m.cfg.Expect == ExpectStop {
		// --expect stop: the service says it is ready by stopping itself.
		m.signal(toMain, syscall.SIGCONT, "ready")
		m.becomeReady()
		return
	}
	if !m.inst.terminal || m.pid1 {
		return
	}
	m.logf(levelDebug, "main process (%d) stopped by %s; stopping too", ev.pid, SignalName(ev.sig))
	m.signal(toSelf, syscall.SIGSTOP, "job control")
}

// mainEnded decides, for a main process that ended by itself, between
// respawning and finishing.
func (m *machine) mainEnded(ev event) {
	m.quiesce()
	ws := ev.status
	code := exitCode(ws)
	result := serviceResult(ws, false)
	if m.inst.timedOut {
		m.inst.timedOut, result = false, "timeout"
	}
	normal := m.cfg.NormalExit.Contains(ws) || (m.cfg.Task && ws.Exited() && ws.ExitStatus() == 0)
	// A run the watchdog or the probes ended is a failure however it
	// exited, and is restarted whether or not --respawn was given, but
	// for --health-action exit.
	ending := m.inst.ending
	respawn := m.cfg.Respawn
	if ending != "" {
		result, normal = ending, false
		respawn = ending == "watchdog" || m.cfg.HealthAction != ActionExit
		if code == 0 {
			code = 1
		}
	}
	if m.cfg.Respawn && m.inst.terminal && ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGQUIT) {
		// Ctrl-C or Ctrl-\ went to the service alone, since it has the
		// terminal; the user meant to stop it, as a shell would take it.
		m.logf(levelInfo, "main process (%d) %s from the terminal; not respawning", ev.pid, describeStatus(ws))
		m.then = intentExit
		normal = true
	}
	what := fmt.Sprintf("main process (%d) %s", ev.pid, describeStatus(ws))
	if ev.notStarted {
		what = "the main process could not start"
	}
	if ending != "" {
		what += " (" + ending + ")"
	}
	if !respawn || normal {
		m.logf(levelDebug, "%s", what)
		m.next = next{code: code}
		m.runPostStop(result, ws)
		return
	}
	if ev.at.Sub(m.inst.started) >= m.resetAfter() {
		m.consecutive = 0
	}
	m.consecutive++
	if !m.window.fail(ev.at) {
		m.logf(levelError, "%s; respawning too fast (%d times within %s), stopped",
			what, m.window.count, m.cfg.RespawnLimit.Interval)
		if code == 0 {
			code = 1
		}
		m.next = next{code: code}
		m.runPostStop("start-limit-hit", ws)
		return
	}
	delay := backoff(time.Duration(m.cfg.RespawnDelay), time.Duration(m.cfg.RespawnDelayMax), m.consecutive)
	if ev.notStarted && delay < spawnRetryDelay {
		// Without a delay the next spawn would fail the same way at once,
		// and again, with no pause to let the resource come back.
		delay = spawnRetryDelay
	}
	m.logf(levelInfo, "%s; respawning%s (%s)", what, after(delay), m.respawnCount())
	m.next = next{respawn: true, delay: delay, code: code}
	m.announce("STATUS=respawning after the main process " + describeStatus(ws))
	m.runPostStop(result, ws)
}

// resetAfter is how long a run must last for the backoff to start again
// from --respawn-delay: the respawn limit's interval, or 5s without one.
func (m *machine) resetAfter() time.Duration {
	if m.cfg.RespawnLimit.Interval > 0 {
		return m.cfg.RespawnLimit.Interval
	}
	return DefaultRespawnLimit.Interval
}

// respawnCount formats "3/10 within 5s", or "respawn 3, no limit".
func (m *machine) respawnCount() string {
	if m.cfg.RespawnLimit.Unlimited() {
		return "respawn " + itoa(m.respawns+1) + ", no limit"
	}
	return itoa(m.window.count) + "/" + itoa(m.cfg.RespawnLimit.Count) + " within " +
		m.cfg.RespawnLimit.Interval.String()
}

func after(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return " in " + d.String()
}

// runPostStop runs post-stop, if given, with how the run ended and the
// respawns before it, and then goes on as m.next says.
func (m *machine) runPostStop(result string, ws syscall.WaitStatus) {
	if m.cfg.Hooks[PostStop] == "" || m.killHooks {
		m.proceed()
		return
	}
	code, status := exitVars(ws)
	m.phase = phPostStop
	m.emit(effect{kind: effDrainLogs}) // the run's output is in the file before post-stop looks
	m.spawnHook(PostStop, "SERVICE_RESULT="+result, "EXIT_CODE="+code, "EXIT_STATUS="+status,
		"UPSHIM_RESPAWNS="+itoa(m.respawns))
}

// proceed does what m.next says: respawn, after the delay, or finish.
func (m *machine) proceed() {
	n := m.next
	if !n.respawn || m.then != intentNone {
		m.finish(n.code, n.signalled)
		return
	}
	m.respawns++
	if n.delay == 0 {
		m.beginStart()
		return
	}
	m.phase = phBackoff
	m.arm(dlRespawn, n.delay)
}

// finish ends the run with upshim exit status code. What the service left
// behind is given the kill signal (unless signalled says a stop already
// sent it) and SIGKILL at the deadline; the reaper's next pass says when
// nothing is left.
func (m *machine) finish(code int, signalled bool) {
	m.code = code
	m.phase = phDraining
	m.emit(effect{kind: effPokeReaper})
	if d := m.armed[0]; d == dlKill || d == dlSweep {
		return // a deadline already stands
	}
	if !signalled {
		m.signal(toTree, syscall.Signal(m.cfg.KillSignal), "left behind")
		m.signal(toTree, syscall.SIGCONT, "left behind")
	}
	m.arm(dlKill, time.Duration(m.cfg.KillTimeout))
}

// onReaped ends a stop once nothing is left, and catches what a process
// forked while SIGKILL went round.
func (m *machine) onReaped(ev event) {
	if m.phase == phReplaceStopping {
		m.onReapedReplacing(ev)
		return
	}
	if m.phase != phStopping && m.phase != phDraining {
		return
	}
	if ev.none && m.inst.pid == 0 && m.hook == nil {
		m.disarm(m.armed[0])
		if m.then == intentDown || m.then == intentRestart {
			m.onDown(ev.at)
			return
		}
		m.phase = phDone
		for _, r := range m.waiting {
			m.reply(r, "ok stopped; upshim exits")
		}
		m.waiting = nil
		return
	}
	if m.killed {
		m.signal(toTree, syscall.SIGKILL, "sweep")
	}
}

// The stop.

// onStopSignal handles SIGTERM and SIGINT: the stop, which then ends in
// an exit whatever the control socket asked; a second one kills
// everything at once, since whoever sends TERM twice means now.
func (m *machine) onStopSignal(ev event) {
	name := SignalName(ev.sig)
	switch {
	case !m.sigStop && m.then != intentNone && m.phase != phDown:
		m.sigStop, m.then = true, intentExit
		m.logf(levelInfo, "got %s during a stop; upshim exits once it is over", name)
	case !m.sigStop:
		m.sigStop = true
		m.requestStop(intentExit, "got "+name)
	case !m.killed:
		m.logf(levelInfo, "got %s again; killing everything now", name)
		m.then, m.killHooks = intentExit, true
		m.killEverything()
	}
}

// requestStop starts the stop sequence toward then: no more respawns,
// pre-stop, the kill signal per --kill-mode, SIGKILL to everything at the
// deadline. A stop already under way goes on; a control request only
// waits for it, and never turns an exit into staying up.
func (m *machine) requestStop(then intent, why string) {
	if m.phase == phDown {
		if then == intentExit {
			m.then, m.phase = intentExit, phDone // nothing is left to stop
		}
		return
	}
	m.quiesce()
	if m.old != nil && m.stopDuringReplace(then, why) {
		return
	}
	if m.then != intentNone {
		m.logf(levelDebug, "%s to stop; a stop is under way, waiting for it", why)
		if m.then != intentExit {
			m.then = then
		}
		return
	}
	m.then = then
	m.logf(levelDebug, "%s; stopping (%s)", why, m.phase)
	switch m.phase {
	case phBackoff:
		m.disarm(dlRespawn)
		m.logf(levelInfo, "%s; respawn cancelled", why)
		m.finish(exitCode(m.last), false)
	case phStarting:
		m.sendKill()
	case phAwaitPidfile:
		// The main process is not known yet: the kill signal goes to what
		// the launcher left, wherever it is below upshim.
		m.disarm(dlPidfile)
		m.announce("STOPPING=1")
		m.phase = phStopping
		m.signal(toTree, syscall.Signal(m.cfg.KillSignal), "stop")
		m.signal(toTree, syscall.SIGCONT, "stop")
		m.arm(dlKill, time.Duration(m.cfg.KillTimeout))
		m.emit(effect{kind: effPokeReaper})
	case phFollowing:
		// The successor is not known yet: the run ends here, and finish
		// stops whatever the daemon left.
		m.disarm(dlPidfile)
		d := m.deferred
		m.deferred, m.phase = nil, phRunning
		m.mainGone(event{at: time.Time{}, pid: d.pid, status: d.status})
	case phPreStart, phPostStart, phPostStartEnded:
		// The hook goes first: it must not hang the stop (upstart's worst
		// hang); the stop goes on once it has ended.
		if m.hook != nil && m.hook.pid != 0 {
			m.stopHook()
		}
	case phRunning:
		m.beginStop()
	}
	// phPreStop, phStopping, phPostStop, phDraining: under way.
}

// beginStop runs pre-stop, if given, then sends the kill signal.
func (m *machine) beginStop() {
	if m.cfg.Hooks[PreStop] != "" {
		m.phase = phPreStop
		m.spawnHook(PreStop)
		return
	}
	m.sendKill()
}

// sendKill sends the kill signal per --kill-mode and arms the deadline
// for SIGKILL to everything.
func (m *machine) sendKill() {
	m.announce("STOPPING=1")
	m.killRun(syscall.Signal(m.cfg.KillSignal), false)
}

// killRun sends kill per --kill-mode, or to the main process alone, and
// arms the deadline for SIGKILL to everything.
func (m *machine) killRun(kill syscall.Signal, mainOnly bool) {
	m.logf(levelDebug, "stopping main process (%d) with %s", m.inst.pid, SignalName(kill))
	m.phase = phStopping
	send := m.signalStop
	if mainOnly {
		send = func(sig syscall.Signal) { m.send(sig, false, "watchdog") }
	}
	send(kill)
	if kill != syscall.SIGKILL && kill != syscall.SIGCONT {
		// A stopped process would hold the kill signal until continued.
		send(syscall.SIGCONT)
	}
	m.arm(dlKill, time.Duration(m.cfg.KillTimeout))
	if m.inst.pid == 0 {
		m.emit(effect{kind: effPokeReaper})
	}
}

// signalStop sends sig to whom --kill-mode names.
func (m *machine) signalStop(sig syscall.Signal) {
	if m.inst.pid == 0 && m.cfg.KillMode != KillAll {
		return
	}
	switch m.cfg.KillMode {
	case KillProcess:
		m.signal(toMain, sig, "stop")
	case KillGroup:
		m.signal(toMainGroup, sig, "stop")
	case KillAll:
		m.signal(toTree, sig, "stop")
	}
}

// killEverything sends SIGKILL to every descendant and re-checks until the
// last one is reaped.
func (m *machine) killEverything() {
	m.killed = true
	m.signal(toTree, syscall.SIGKILL, "kill")
	m.arm(dlSweep, sweepInterval)
	m.emit(effect{kind: effPokeReaper})
}

// stopHook asks the running hook's process group to stop, with SIGKILL at
// the kill timeout: a stop must not wait for a hook that hangs.
func (m *machine) stopHook() {
	m.hook.stopping = true
	m.signal(toHookGroup, syscall.Signal(m.cfg.KillSignal), "stop hook")
	m.signal(toHookGroup, syscall.SIGCONT, "stop hook")
	m.arm(dlHook, time.Duration(m.cfg.KillTimeout))
}

// onHookExit continues the service's life once its hook has ended.
func (m *machine) onHookExit(ev event) {
	h := m.hook
	m.hook = nil
	m.disarm(dlHook)
	ok := !h.timedOut && ev.status.Exited() && ev.status.ExitStatus() == 0
	switch {
	case h.timedOut:
		m.logf(levelError, "%s hook (%d) timed out after %s and was killed", h.kind, ev.pid, m.cfg.HookTimeout)
	case !ok:
		m.logf(levelError, "%s hook (%d) %s", h.kind, ev.pid, describeStatus(ev.status))
	default:
		m.logf(levelDebug, "%s hook (%d) %s", h.kind, ev.pid, describeStatus(ev.status))
	}
	if m.old != nil || m.phase == phReplacePostStop {
		m.onReplaceHookExit(h, ev, ok)
		return
	}
	switch h.kind {
	case PreStart:
		if ok && m.then == intentNone {
			m.startMain()
			return
		}
		// The service does not run: upshim ends with the hook's status.
		result := hookResult(h, ev.status)
		if m.then != intentNone && !ok {
			result = "success"
		}
		m.next = next{code: exitCode(ev.status)}
		if ok {
			m.next.code = exitCode(m.last)
		}
		m.runPostStop(result, ev.status)
	case PostStart:
		switch {
		case m.phase == phPostStartEnded:
			// The main process ended while post-start ran; its end was
			// kept until now.
			d := m.deferred
			m.deferred = nil
			m.phase = phRunning
			m.mainGone(event{at: ev.at, pid: d.pid, status: d.status})
		case m.then != intentNone:
			m.phase = phRunning
			m.beginStop()
		case m.inst.ending != "":
			// The watchdog or the probes found the run hung while
			// post-start ran; its stop goes on now.
			m.phase = phRunning
			m.killFailed()
		default:
			m.phase = phRunning
			m.started()
		}
	case PreStop:
		if m.inst.pid == 0 {
			m.mainGone(event{at: ev.at, status: m.last})
			return
		}
		m.sendKill()
	case PostStop:
		m.proceed()
	}
}

// hookResult is SERVICE_RESULT for a pre-start that failed.
func hookResult(h *hookRun, ws syscall.WaitStatus) string {
	if h.timedOut {
		return "timeout"
	}
	return serviceResult(ws, false)
}

// onDeadline handles an armed deadline that passed.
func (m *machine) onDeadline(ev event) {
	if m.armed[ev.dl.slot()] != ev.dl {
		return // disarmed or replaced since
	}
	m.armed[ev.dl.slot()] = dlNone
	switch ev.dl {
	case dlRespawn:
		if m.phase == phBackoff {
			m.beginStart()
		}
	case dlKill:
		switch m.phase {
		case phStopping, phDraining, phPostStop:
			m.logf(levelInfo, "still running after %s; sending SIGKILL", m.cfg.KillTimeout)
			m.killEverything()
		case phReplaceStopping:
			m.killOld()
		}
	case dlSweep:
		m.emit(effect{kind: effPokeReaper})
		if m.phase == phReplaceStopping && !m.killed {
			m.signal(toOldTree, syscall.SIGKILL, "sweep")
		} else {
			m.signal(toTree, syscall.SIGKILL, "sweep")
		}
		m.arm(dlSweep, sweepInterval)
	case dlPidfile:
		if m.phase == phAwaitPidfile || m.phase == phFollowing ||
			(m.phase == phReplaceStarting && m.inst.pid == 0 && m.inst.launcher != 0) {
			m.emit(effect{kind: effFindMain})
		}
	case dlStart:
		m.onStartTimeout(ev)
	case dlHook:
		h := m.hook
		if h == nil || h.pid == 0 {
			return
		}
		if !h.stopping {
			h.timedOut = true
			m.logf(levelInfo, "%s hook (%d) still running after %s; killing it", h.kind, h.pid, m.cfg.HookTimeout)
		}
		m.signal(toHookGroup, syscall.SIGKILL, "hook deadline")
	case dlWatchdog:
		m.onWatchdogTimeout()
	case dlProbe:
		m.runProbe()
	case dlProbeTimeout:
		m.onProbeTimeout()
	}
}

// onStartTimeout handles --start-timeout: the service was not ready.
func (m *machine) onStartTimeout(ev event) {
	if !m.starting() {
		return
	}
	what := "the service to be ready"
	switch {
	case m.cfg.Expect.forks() && m.inst.pid != 0:
		what = "a fork, but the launcher is still running"
	case m.cfg.Expect == ExpectStop:
		what = "the service to stop itself (SIGSTOP) when ready, but it has not"
	case m.cfg.Expect == ExpectNotify:
		what = "READY=1 on NOTIFY_SOCKET, but none came"
	case m.cfg.Expect == ExpectHealth:
		what = "a passing health probe, but none passed"
		if m.lastProbe != "" {
			what += " (last: " + firstLine(m.lastProbe) + ")"
		}
	}
	if m.old != nil {
		m.replaceFailed(fmt.Sprintf("expected %s after %s", what, m.startTimeout()))
		return
	}
	m.quiesce()
	m.logf(levelError, "expected %s after %s; killing it", what, m.cfg.StartTimeout)
	m.inst.timedOut = true
	m.signal(toTree, syscall.SIGKILL, "start timeout")
	if m.inst.pid == 0 {
		m.startFailed(ev.at, 0)
	}
}

// Signals.

// onRelaySignal passes a signal on to the service, after --rewrite.
func (m *machine) onRelaySignal(ev event) {
	sig := ev.sig
	if sig == syscall.SIGCONT && m.inst.terminal && m.inst.pid != 0 && m.old == nil {
		// fg after a Ctrl-Z gave the terminal back to upshim's group; the
		// service is the one reading it.
		m.emit(effect{kind: effTerminal, pid: m.inst.pgid})
	}
	to := sig
	if r, ok := m.cfg.Rewrite[Signal(sig)]; ok {
		if r == 0 {
			m.logf(levelDebug, "dropped %s (--rewrite)", SignalName(sig))
			return
		}
		to = syscall.Signal(r)
	}
	m.send(to, m.cfg.SignalGroup, "relay")
}

// send delivers sig to the main process, or to its group, and returns
// its pid, or 0 when there is none. Until a replace's new instance is
// ready, the old one, which serves, is the main process.
func (m *machine) send(sig syscall.Signal, group bool, why string) int {
	if m.oldServes() {
		if group {
			m.signal(toOldGroup, sig, why)
		} else {
			m.signal(toOldMain, sig, why)
		}
		return m.old.pid
	}
	if m.inst.pid == 0 {
		m.logf(levelDebug, "%s %s: no main process", why, SignalName(sig))
		return 0
	}
	if group {
		m.signal(toMainGroup, sig, why)
	} else {
		m.signal(toMain, sig, why)
	}
	return m.inst.pid
}

// reload sends the reload signal to the main process. A reload never
// leaves the outer supervisor reloading: under --expect notify the
// service's own RELOADING=1 … READY=1 go upward and upshim invents none;
// otherwise upshim brackets the signal with RELOADING=1 and READY=1 once
// the start is over. With nothing running, nothing goes upward.
func (m *machine) reload(r *request) {
	sig := syscall.Signal(m.cfg.ReloadSignal)
	if m.old != nil {
		m.logf(levelInfo, "reload: a replace is in progress; %s not sent", SignalName(sig))
		if r != nil {
			m.reply(r, "error replace in progress")
		}
		return
	}
	if m.inst.pid == 0 || !m.serving() {
		m.logf(levelInfo, "reload: the service is %s; %s not sent", m.phase, SignalName(sig))
		if r != nil {
			m.reply(r, "error not running")
		}
		return
	}
	// Before the first READY=1 the outer supervisor is still starting
	// the unit: nothing to bracket.
	bracket := m.cfg.Expect != ExpectNotify && m.announcedReady
	if bracket {
		m.reloading = true
		m.announce("RELOADING=1")
	}
	m.send(sig, false, "reload")
	if bracket {
		m.announce("READY=1")
	}
	if r != nil {
		m.reply(r, fmt.Sprintf("ok sent %s to %d", Signal(sig), m.inst.pid))
	}
}

// serving reports whether the main process is up and past its start.
func (m *machine) serving() bool {
	switch m.phase {
	case phRunning, phPostStart, phStarting:
		return true
	}
	return false
}

// The service's notifications.

// onNotify handles a message from the service's NOTIFY_SOCKET.
func (m *machine) onNotify(ev event) {
	n := ev.note
	if !n.allowed {
		m.warnNotify("warning: NOTIFY_SOCKET: message from uid %d (pid %d) ignored", n.uid, n.pid)
		return
	}
	if v, ok := n.fields["MAINPID"]; ok {
		switch {
		case !n.mainPIDOK && n.mainPIDWhy != "":
			m.warnNotify("warning: NOTIFY_SOCKET: MAINPID=%s %s: ignored", v, n.mainPIDWhy)
		case !n.mainPIDOK:
			m.warnNotify("warning: NOTIFY_SOCKET: MAINPID=%s is not one of upshim's descendants: ignored", v)
		case m.old != nil:
			m.warnNotify("warning: NOTIFY_SOCKET: MAINPID=%s during a replace: ignored", v)
		case n.mainPID != m.inst.pid && m.inst.pid != 0:
			m.logf(levelInfo, "main process is now %d (MAINPID), was %d", n.mainPID, m.inst.pid)
			m.adopt(n.mainPID, n.mainPGID)
			if !n.mainPIDChild {
				m.emit(effect{kind: effWatchMain, pid: n.mainPID})
			}
		}
	}
	m.onWatchdogFields(n)
	if v, ok := n.fields["STATUS"]; ok {
		m.status = v
		m.announce("STATUS=" + v)
	}
	if n.fields["STOPPING"] == "1" && m.serving() {
		m.announce("STOPPING=1")
	}
	if n.fields["RELOADING"] == "1" && m.serving() {
		m.reloading = true
		m.announce("RELOADING=1")
	}
	if n.fields["READY"] == "1" {
		switch m.phase {
		case phStarting:
			m.becomeReady()
		case phReplaceStarting:
			// Only the new instance's own READY=1 ends its start: the
			// old one may send one after a reload of its own.
			if n.fromMain && m.inst.pid != 0 {
				m.becomeReady()
			} else {
				m.logf(levelDebug, "READY=1 from pid %d, which is not in the new instance's tree: ignored", n.pid)
			}
		case phRunning, phPostStart:
			m.announce("READY=1") // done reloading
		}
	}
}

// warnNotify logs a bad NOTIFY_SOCKET message, once per run of the main
// process: the service can send them as fast as upshim can read.
func (m *machine) warnNotify(format string, args ...any) {
	if m.notifyWarned {
		return
	}
	m.notifyWarned = true
	m.logf(levelWarn, format+" (further bad messages in this run are not logged)", args...)
}

// Control requests.

// onRequest answers a control request; the answers that must wait for
// the service (stop, restart) are kept until then.
func (m *machine) onRequest(ev event) {
	r := ev.req
	switch r.verb {
	case "status":
		m.reply(r, m.statusText(ev.at, len(r.args) == 1 && r.args[0] == "--json"))
	case "start":
		if m.phase != phDown {
			m.reply(r, "error already "+m.phase.statusName())
			return
		}
		m.restartFromDown()
		m.reply(r, "ok "+m.startedText())
	case "stop":
		switch {
		case m.phase == phDown:
			m.reply(r, "ok already stopped")
		default:
			// A stop under way is not hurried: this one waits for it.
			m.waiting = append(m.waiting, r)
			m.requestStop(intentDown, "asked over --control")
		}
	case "replace":
		m.onReplace(r, ev.strays)
	case "restart":
		switch {
		case m.old != nil:
			m.reply(r, "error replace in progress")
		case m.phase == phDown:
			m.restartFromDown()
			m.reply(r, "ok "+m.startedText())
		case m.then == intentExit:
			// A stop that ends upshim (TERM, ctl exit) is under way: a
			// restart cannot undo it.
			m.reply(r, "error upshim is stopping to exit; not restarting")
		default:
			m.waiting = append(m.waiting, r)
			m.requestStop(intentRestart, "asked over --control")
		}
	case "reload":
		m.reload(r)
	case "signal":
		sig, err := ParseSignal(joinArgs(r.args))
		if err != nil || len(r.args) != 1 {
			m.reply(r, "error want signal SIG")
			return
		}
		pid := m.send(syscall.Signal(sig), m.cfg.SignalGroup, "signal")
		if pid == 0 {
			m.reply(r, "error not running")
			return
		}
		m.reply(r, fmt.Sprintf("ok sent %s to %d", sig, pid))
	case "rotate":
		m.emit(effect{kind: effRotate, req: r})
	case "exit":
		m.reply(r, "ok exiting")
		if m.then != intentNone && m.phase != phDown {
			m.then = intentExit
			return
		}
		m.requestStop(intentExit, "asked over --control")
	default:
		m.reply(r, fmt.Sprintf("error unknown verb %q (want status, start, stop, restart, replace, reload, signal, rotate or exit)", r.verb))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func joinArgs(args []string) string {
	s := ""
	for _, a := range args {
		s += a
	}
	return s
}

// startedText says what a start did.
func (m *machine) startedText() string {
	if m.inst.pid != 0 {
		return fmt.Sprintf("started, pid %d", m.inst.pid)
	}
	return "starting (" + m.phase.statusName() + ")"
}

// onDown is reached when a stop asked over the control socket is over:
// upshim stays up, the service down, until start, restart or exit.
func (m *machine) onDown(at time.Time) {
	m.phase = phDown
	m.announce("STATUS=stopped")
	text := "ok stopped"
	if m.lastEnded {
		text += ", main process " + describeStatus(m.last)
	}
	if m.then == intentRestart {
		m.restartFromDown()
		text = "ok re" + m.startedText()
	} else {
		m.then = intentNone
	}
	for _, r := range m.waiting {
		m.reply(r, text)
	}
	m.waiting = nil
}

// restartFromDown starts the service again after a requested stop. It
// does not count against the respawn limit.
func (m *machine) restartFromDown() {
	m.then, m.killed, m.killHooks, m.sigStop = intentNone, false, false, false
	m.inst.timedOut, m.consecutive = false, 0
	m.next = next{}
	m.beginStart()
}

// statusNow is the service's state as the machine sees it at now.
func (m *machine) statusNow(now time.Time) Status {
	st := Status{
		Name: m.cfg.Name, State: m.phase.statusName(), PID: m.inst.pid, Respawns: m.respawns,
		Ready: m.phase == phRunning || m.phase == phPostStart, ServiceStatus: m.status, LogFile: m.cfg.Log.File,
		Listen: m.sockets,
	}
	if m.cfg.Health.Kind != ProbeNone {
		st.Health, st.FailingStreak, st.LastProbeOutput = m.inst.health, m.inst.streak, m.lastProbe
		if st.Health == "" {
			st.Health = healthStarting
		}
	}
	if m.inst.pid != 0 {
		st.UptimeSeconds = now.Sub(m.inst.started).Round(time.Millisecond).Seconds()
	}
	if o := m.old; o != nil {
		// Both instances: pid is the old one until the replace is over.
		st.PID, st.NewPID, st.UptimeSeconds = o.pid, m.inst.pid, 0
		if o.pid != 0 {
			st.UptimeSeconds = now.Sub(o.started).Round(time.Millisecond).Seconds()
		}
		st.Ready = m.oldServes() || m.phase == phReplaceStopping || m.phase == phReplacePostStop
		if m.cfg.Health.Kind != ProbeNone && o.health != "" && m.oldServes() {
			st.Health, st.FailingStreak = o.health, o.streak
		}
	}
	if m.ranOnce && m.lastEnded {
		code := exitCode(m.last)
		st.LastExit, st.LastExitCode = describeStatus(m.last), &code
	}
	return st
}

// statusText is the answer to `ctl status` (with --json, the JSON object).
// "no" tells ctl to exit 3: a readiness probe can run it as is.
func (m *machine) statusText(now time.Time, asJSON bool) string {
	st := m.statusNow(now)
	if asJSON {
		return "ok " + st.JSON()
	}
	answer := "ok"
	if !st.Ready || st.Health == healthUnhealthy {
		answer = "no"
	}
	text := fmt.Sprintf("%s %s: %s", answer, st.Name, st.State)
	if st.PID != 0 {
		// Rounded to the millisecond the seconds were rounded to: the
		// float does not convert back to a round Duration.
		up := time.Duration(math.Round(st.UptimeSeconds*1e3)) * time.Millisecond
		text += fmt.Sprintf(", pid %d, up %s", st.PID, up)
	}
	if st.NewPID != 0 {
		text += fmt.Sprintf(", new pid %d", st.NewPID)
	}
	text += fmt.Sprintf(", %d respawns", st.Respawns)
	if st.LastExit != "" {
		text += ", last run " + st.LastExit
	}
	if st.ServiceStatus != "" {
		text += fmt.Sprintf(", status %q", st.ServiceStatus)
	}
	if st.Health != "" {
		text += ", health " + st.Health
		if st.FailingStreak > 0 {
			text += fmt.Sprintf(" (%d failing)", st.FailingStreak)
		}
		if st.LastProbeOutput != "" {
			text += fmt.Sprintf(", last probe %q", st.LastProbeOutput)
		}
	}
	if st.LogFile != "" {
		text += ", log " + st.LogFile
	}
	for i, l := range st.Listen {
		sep := ", "
		if i == 0 {
			sep = ", listening on "
		}
		text += fmt.Sprintf("%s%s (fd %d", sep, l.Addr, l.FD)
		if l.Name != "unknown" {
			text += fmt.Sprintf(" %q", l.Name)
		}
		text += ")"
	}
	return text
}
