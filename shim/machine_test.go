//go:build linux

package shim

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/lifecycle.golden from the machine")

// The grid: every state the service can be in, reached by driving the
// machine from its start, crossed with every kind of event. Pids are
// fixed: the main process is 100, a hook 200, a command probe 400,
// anything else 999.
const (
	mainPid   = 100
	hookPid   = 200
	probePid  = 400
	otherPid  = 999
	newPid    = 300
	startTime = 1_000_000
)

var t0 = time.Unix(startTime, 0)

// gridConfig is the configuration every fixture starts from.
func gridConfig() *Config {
	return &Config{
		Name: "svc", Command: []string{"svc"}, ReadyFD: -1,
		Respawn: true, RespawnLimit: RespawnLimit{Count: 10, Interval: 5 * time.Second},
		RespawnDelay: Duration(time.Second), KillSignal: Signal(syscall.SIGTERM),
		KillTimeout: Duration(5 * time.Second), ReloadSignal: Signal(syscall.SIGHUP), WatchdogSignal: Signal(syscall.SIGABRT),
		HookTimeout: Duration(30 * time.Second), StartTimeout: Duration(90 * time.Second),
		ReplaceTimeout: Duration(60 * time.Second),
	}
}

// fixture is a named state and how to reach it.
type fixture struct {
	name  string
	setup func(c *Config)
	steps []event
}

func killedBy(sig syscall.Signal) syscall.WaitStatus { return syscall.WaitStatus(sig) }

func exitOf(pid int, ws syscall.WaitStatus) event {
	return event{kind: evOrphanExit, pid: pid, status: ws} // step finds the role
}

func ctlReq(verb string, args ...string) event {
	return event{kind: evRequest, req: &request{verb: verb, args: args}}
}

func allHooks(c *Config) {
	c.Hooks = [4]string{"pre", "post-start", "pre-stop", "post-stop"}
}

func watchdog(c *Config) { c.Watchdog = Duration(10 * time.Second) }

// probeCmd and probeHTTP set a probe with Docker's defaults but a 3s
// interval and a 2s timeout.
func probeCmd(c *Config) {
	c.Health = HealthProbe{Kind: ProbeCmd, Cmd: "check"}
	c.HealthInterval, c.HealthTimeout, c.HealthRetries = Duration(3*time.Second), Duration(2*time.Second), 3
	c.HealthStartInterval = Duration(time.Second)
}

func probeHTTP(c *Config) {
	probeCmd(c)
	c.Health = HealthProbe{Kind: ProbeHTTP, Addr: "127.0.0.1:80", Host: "127.0.0.1", Path: "/"}
}

// A probe's events carry seq 0 for "the probe in flight" (see build).
var (
	evProbeDue    = event{kind: evDeadline, dl: dlProbe}
	evProbeFailed = event{kind: evProbeResult, final: true, output: "connection refused"}
)

var (
	evStarted     = event{kind: evStart}
	evMainSpawned = event{kind: evSpawned, pid: mainPid}
	evHookSpawned = event{kind: evSpawned, pid: hookPid}
	evTerm        = event{kind: evStopSignal, sig: syscall.SIGTERM}
	evNoneLeft    = event{kind: evReaped, none: true}
)

var fixtures = []fixture{
	{name: "init"},
	{name: "pre-start", setup: allHooks, steps: []event{evStarted, evHookSpawned}},
	{name: "starting (notify)", setup: func(c *Config) { c.Expect = ExpectNotify },
		steps: []event{evStarted, evMainSpawned}},
	{name: "starting (fork)", setup: func(c *Config) { c.Expect = ExpectFork },
		steps: []event{evStarted, evMainSpawned}},
	{name: "awaiting-pidfile", setup: func(c *Config) { c.Expect, c.PidFile = ExpectFork, "pf" },
		steps: []event{evStarted, evMainSpawned, exitOf(mainPid, exited(0)),
			{kind: evNotFound, err: errors.New("--pidfile pf: no such file or directory"), retry: true}}},
	{name: "running", steps: []event{evStarted, evMainSpawned}},
	{name: "running (fork)", setup: func(c *Config) { c.Expect = ExpectFork },
		steps: []event{evStarted, evMainSpawned, exitOf(mainPid, exited(0)), {kind: evFound, pid: newPid, pgid: newPid}}},
	{name: "following", setup: func(c *Config) { c.Expect, c.PidFile = ExpectFork, "pf" },
		steps: []event{evStarted, evMainSpawned, exitOf(mainPid, exited(0)), {kind: evFound, pid: mainPid + 1, pgid: mainPid + 1},
			exitOf(mainPid+1, exited(0)), {kind: evNotFound, err: errors.New("--pidfile pf: no such file or directory"), retry: true}}},
	{name: "post-start", setup: allHooks,
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, evHookSpawned}},
	{name: "post-start-ended", setup: allHooks,
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, evHookSpawned,
			exitOf(mainPid, exited(1))}},
	{name: "backoff", steps: []event{evStarted, evMainSpawned, exitOf(mainPid, exited(1))}},
	{name: "pre-stop", setup: allHooks,
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, evHookSpawned,
			exitOf(hookPid, exited(0)), evTerm, evHookSpawned}},
	{name: "stopping (exit)", steps: []event{evStarted, evMainSpawned, evTerm}},
	{name: "stopping (down)", steps: []event{evStarted, evMainSpawned, ctlReq("stop")}},
	{name: "stopping (restart)", steps: []event{evStarted, evMainSpawned, ctlReq("restart")}},
	{name: "stopping (killed)", steps: []event{evStarted, evMainSpawned, evTerm,
		{kind: evDeadline, dl: dlKill, at: t0.Add(5 * time.Second)}}},
	{name: "post-stop", setup: allHooks,
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, evHookSpawned,
			exitOf(hookPid, exited(0)), exitOf(mainPid, exited(1)), evHookSpawned}},
	{name: "draining", setup: func(c *Config) { c.Respawn = false },
		steps: []event{evStarted, evMainSpawned, exitOf(mainPid, exited(0))}},
	{name: "down", steps: []event{evStarted, evMainSpawned, ctlReq("stop"),
		exitOf(mainPid, killedBy(syscall.SIGTERM)), evNoneLeft}},
	{name: "done", setup: func(c *Config) { c.Respawn = false },
		steps: []event{evStarted, evMainSpawned, exitOf(mainPid, exited(0)), evNoneLeft}},
	{name: "running (watchdog)", setup: watchdog, steps: []event{evStarted, evMainSpawned}},
	{name: "stopping (watchdog)", setup: watchdog, steps: []event{evStarted, evMainSpawned,
		{kind: evDeadline, dl: dlWatchdog}}},
	{name: "starting (notify, watchdog)", setup: func(c *Config) { watchdog(c); c.Expect = ExpectNotify },
		steps: []event{evStarted, evMainSpawned}},
	{name: "running (health)", setup: probeCmd, steps: []event{evStarted, evMainSpawned}},
	{name: "running (command probe)", setup: probeCmd, steps: []event{evStarted, evMainSpawned, evProbeDue,
		{kind: evProbeStarted, pid: probePid}}},
	{name: "running (http probe, 2 failed)", setup: probeHTTP, steps: []event{evStarted, evMainSpawned,
		evProbeDue, evProbeFailed, evProbeDue, evProbeFailed, evProbeDue}},
	{name: "running (unhealthy, action none)", setup: func(c *Config) { probeHTTP(c); c.HealthAction = ActionNone },
		steps: []event{evStarted, evMainSpawned, evProbeDue, {kind: evProbeResult, final: true, ok: true, output: "HTTP/1.1 200 OK"},
			evProbeDue, evProbeFailed, evProbeDue, evProbeFailed, evProbeDue, evProbeFailed}},
	{name: "stopping (unhealthy)", setup: probeHTTP,
		steps: []event{evStarted, evMainSpawned, evProbeDue, {kind: evProbeResult, final: true, ok: true, output: "HTTP/1.1 200 OK"},
			evProbeDue, evProbeFailed, evProbeDue, evProbeFailed, evProbeDue, evProbeFailed}},
	{name: "starting (health)", setup: func(c *Config) { probeHTTP(c); c.Expect = ExpectHealth },
		steps: []event{evStarted, evMainSpawned}},
	{name: "starting (health, probe in flight)", setup: func(c *Config) { probeHTTP(c); c.Expect = ExpectHealth },
		steps: []event{evStarted, evMainSpawned, evProbeDue}},
	{name: "post-start (watchdog, health)", setup: func(c *Config) { allHooks(c); watchdog(c); probeHTTP(c) },
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, evHookSpawned}},

	// A replace: the old instance is the main process 100, the new one 300.
	{name: "replace-pre-start", setup: func(c *Config) { allHooks(c); c.Expect = ExpectNotify },
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, notifyEv("READY=1"),
			evHookSpawned, exitOf(hookPid, exited(0)), ctlReq("replace"), evHookSpawned}},
	{name: "replace-starting (notify)", setup: notifyExpect,
		steps: []event{evStarted, evMainSpawned, notifyEv("READY=1"), ctlReq("replace"), evNewSpawned}},
	{name: "replace-starting (none, health)", setup: probeHTTP,
		steps: []event{evStarted, evMainSpawned, ctlReq("replace"), evNewSpawned}},
	{name: "replace-starting (fork)", setup: func(c *Config) { c.Expect = ExpectFork },
		steps: []event{evStarted, {kind: evSpawned, pid: 150}, exitOf(150, exited(0)), {kind: evFound, pid: mainPid, pgid: mainPid},
			ctlReq("replace"), evNewSpawned}},
	{name: "replace-starting (old ended)", setup: notifyExpect,
		steps: []event{evStarted, evMainSpawned, notifyEv("READY=1"), ctlReq("replace"), evNewSpawned, exitOf(mainPid, exited(1))}},
	{name: "replace-post-start", setup: func(c *Config) { allHooks(c); c.Expect = ExpectNotify },
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, notifyEv("READY=1"),
			evHookSpawned, exitOf(hookPid, exited(0)), ctlReq("replace"), evHookSpawned, exitOf(hookPid, exited(0)),
			evNewSpawned, newReady, evHookSpawned}},
	{name: "replace-stopping", setup: notifyExpect,
		steps: []event{evStarted, evMainSpawned, notifyEv("READY=1"), ctlReq("replace"), evNewSpawned, newReady}},
	{name: "replace-stopping (old reaped, group left)", setup: notifyExpect,
		steps: []event{evStarted, evMainSpawned, notifyEv("READY=1"), ctlReq("replace"), evNewSpawned, newReady,
			exitOf(mainPid, killedBy(syscall.SIGTERM)), evOldGroupLeft}},
	{name: "replace-stopping (stop waiting)", setup: notifyExpect,
		steps: []event{evStarted, evMainSpawned, notifyEv("READY=1"), ctlReq("replace"), evNewSpawned, newReady, ctlReq("stop")}},
	{name: "replace-post-stop", setup: func(c *Config) { allHooks(c); c.Expect = ExpectNotify },
		steps: []event{evStarted, evHookSpawned, exitOf(hookPid, exited(0)), evMainSpawned, notifyEv("READY=1"),
			evHookSpawned, exitOf(hookPid, exited(0)), ctlReq("replace"), evHookSpawned, exitOf(hookPid, exited(0)),
			evNewSpawned, newReady, evHookSpawned, exitOf(hookPid, exited(0)), exitOf(mainPid, killedBy(syscall.SIGTERM)),
			{kind: evReaped}, evHookSpawned}},
}

func notifyExpect(c *Config) { c.Expect = ExpectNotify }

var (
	evNewSpawned   = event{kind: evSpawned, pid: newPid}
	evOldGroupLeft = event{kind: evReaped, oldLeft: 1}
	// newReady is READY=1 from the new instance's tree.
	newReady = event{kind: evNotify, note: &notification{pid: newPid, fields: map[string]string{"READY": "1"}, allowed: true, fromMain: true}}
)

// gridEvents is every kind of event, with the values the walk uses.
var gridEvents = []struct {
	name string
	ev   event
}{
	{"start", evStarted},
	{"exit main 0", exitOf(mainPid, exited(0))},
	{"exit main 1", exitOf(mainPid, exited(1))},
	{"exit main KILL", exitOf(mainPid, killedBy(syscall.SIGKILL))},
	{"exit hook 0", exitOf(hookPid, exited(0))},
	{"exit hook 1", exitOf(hookPid, exited(1))},
	{"exit orphan", exitOf(otherPid, exited(0))},
	{"main stopped TSTP", event{kind: evMainStopped, pid: mainPid, sig: syscall.SIGTSTP}},
	{"main stopped STOP", event{kind: evMainStopped, pid: mainPid, sig: syscall.SIGSTOP}},
	{"reaped, some left", event{kind: evReaped}},
	{"reaped, none left", evNoneLeft},
	{"signal TERM", evTerm},
	{"signal HUP", event{kind: evReloadSignal, sig: syscall.SIGHUP}},
	{"signal USR1", event{kind: evRelaySignal, sig: syscall.SIGUSR1}},
	{"signal CONT", event{kind: evRelaySignal, sig: syscall.SIGCONT}},
	{"deadline respawn", event{kind: evDeadline, dl: dlRespawn}},
	{"deadline start", event{kind: evDeadline, dl: dlStart}},
	{"deadline pidfile", event{kind: evDeadline, dl: dlPidfile}},
	{"deadline kill", event{kind: evDeadline, dl: dlKill}},
	{"deadline sweep", event{kind: evDeadline, dl: dlSweep}},
	{"deadline hook", event{kind: evDeadline, dl: dlHook}},
	{"notify READY=1", notifyEv("READY=1")},
	{"notify RELOADING=1", notifyEv("RELOADING=1")},
	{"notify STOPPING=1", notifyEv("STOPPING=1")},
	{"notify STATUS=busy", notifyEv("STATUS=busy")},
	{"notify MAINPID=300", notifyEv("MAINPID=300")},
	{"notify from a stranger", event{kind: evNotify, note: &notification{pid: otherPid, uid: 4242,
		fields: map[string]string{"READY": "1"}}}},
	{"ctl status", ctlReq("status")},
	{"ctl start", ctlReq("start")},
	{"ctl stop", ctlReq("stop")},
	{"ctl restart", ctlReq("restart")},
	{"ctl reload", ctlReq("reload")},
	{"ctl signal USR1", ctlReq("signal", "USR1")},
	{"ctl rotate", ctlReq("rotate")},
	{"ctl exit", ctlReq("exit")},
	{"ctl bogus", ctlReq("bogus")},
	{"spawned 300", event{kind: evSpawned, pid: newPid}},
	{"spawn failed ENOENT", event{kind: evSpawnFailed, err: syscall.ENOENT, code: 127}},
	{"spawn failed EAGAIN", event{kind: evSpawnFailed, err: syscall.EAGAIN}},
	{"found 300", event{kind: evFound, pid: newPid, pgid: newPid}},
	{"not found, retry", event{kind: evNotFound, err: errors.New("--pidfile pf: no such file or directory"), retry: true}},
	{"not found", event{kind: evNotFound, err: errors.New("the launcher exited 0 and left nothing running")}},
	{"deadline watchdog", event{kind: evDeadline, dl: dlWatchdog}},
	{"deadline probe", evProbeDue},
	{"deadline probe-timeout", event{kind: evDeadline, dl: dlProbeTimeout}},
	{"notify WATCHDOG=1", notifyEv("WATCHDOG=1")},
	{"notify WATCHDOG=trigger", notifyEv("WATCHDOG=trigger")},
	{"notify WATCHDOG_USEC=0", notifyEv("WATCHDOG_USEC=0")},
	{"notify WATCHDOG_USEC=2s", notifyEv("WATCHDOG_USEC=2000000")},
	{"notify EXTEND_TIMEOUT..", notifyEv("EXTEND_TIMEOUT_USEC=200000000")},
	{"notify WATCHDOG=1 (tree)", event{kind: evNotify, note: &notification{pid: otherPid, uid: 0,
		fields: map[string]string{"WATCHDOG": "1"}, allowed: true}}},
	{"probe started 400", event{kind: evProbeStarted, pid: probePid}},
	{"exit probe 0", exitOf(probePid, exited(0))},
	{"exit probe 1", exitOf(probePid, exited(1))},
	{"probe output", event{kind: evProbeResult, output: "ok\n"}},
	{"probe passed", event{kind: evProbeResult, final: true, ok: true, output: "HTTP/1.1 200 OK"}},
	{"probe failed", evProbeFailed},
	{"probe result, stale", event{kind: evProbeResult, seq: -1, final: true, output: "late"}},
	{"ctl replace", ctlReq("replace")},
	{"signal replace", event{kind: evReplaceSignal, sig: syscall.SIGUSR2}},
	{"ctl replace, strays", event{kind: evRequest, req: &request{verb: "replace"}, strays: "process 999 (x) is below upshim but in no tree"}},
	{"exit new 0", exitOf(newPid, exited(0))},
	{"exit new 1", exitOf(newPid, exited(1))},
	{"notify READY=1 (old)", event{kind: evNotify, note: &notification{pid: mainPid, fields: map[string]string{"READY": "1"}, allowed: true}}},
	{"reaped, old's group left", evOldGroupLeft},
}

func notifyEv(field string) event {
	k, v, _ := strings.Cut(field, "=")
	n := &notification{pid: mainPid, uid: 0, fields: map[string]string{k: v}, allowed: true, fromMain: true}
	if k == "MAINPID" {
		n.mainPIDOK, n.mainPID, n.mainPGID = true, newPid, newPid
	}
	return event{kind: evNotify, note: n}
}

// build drives a new machine through f's steps, one second apart.
func (f fixture) build() *machine {
	cfg := gridConfig()
	if f.setup != nil {
		f.setup(cfg)
	}
	m := newMachine(cfg, false)
	at := t0
	for _, ev := range f.steps {
		if ev.at.IsZero() {
			ev.at = at
		}
		m.step(inFlight(m, ev))
		at = at.Add(time.Second)
	}
	return m
}

// inFlight gives a probe's event with seq 0 the number of the probe in
// flight.
func inFlight(m *machine, ev event) event {
	if (ev.kind == evProbeStarted || ev.kind == evProbeResult) && ev.seq == 0 {
		ev.seq = m.probeSeq
	}
	return ev
}

// describe is one cell of the grid: the state after the event, then the
// effects in order.
func describe(m *machine, effs []effect) string {
	var b strings.Builder
	b.WriteString(stateName(m))
	for _, e := range effs {
		b.WriteString("\n      ")
		b.WriteString(e.String())
	}
	return b.String()
}

// stateName is the phase, with what a stop in progress leads to.
func stateName(m *machine) string {
	s := m.phase.String()
	if m.then != intentNone && m.phase != phDone {
		s += " → " + intentNames[m.then]
	}
	if m.killed {
		s += ", killed"
	}
	if n := len(m.waiting); n > 0 {
		s += fmt.Sprintf(" (%d waiting)", n)
	}
	if m.old != nil {
		s += fmt.Sprintf(" {old %d, new %d}", m.old.pid, m.inst.pid)
	}
	if m.inst.ending != "" {
		s += " [" + m.inst.ending + "]"
	}
	if m.inst.health != "" {
		s += ", " + m.inst.health
		if m.inst.streak > 0 {
			s += fmt.Sprintf(" (%d failing)", m.inst.streak)
		}
	}
	if p := m.probe; p != nil {
		s += fmt.Sprintf(", probe %d in flight", p.seq)
		if p.pid != 0 {
			s += fmt.Sprintf(" (pid %d)", p.pid)
		}
	}
	return s
}

func (e effect) String() string {
	switch e.kind {
	case effSpawnMain:
		return "spawn main"
	case effSpawnHook:
		s := "spawn " + e.hook.String()
		if len(e.env) > 0 {
			s += " " + strings.Join(e.env, " ")
		}
		return s
	case effSignal:
		if e.pgid != 0 {
			return fmt.Sprintf("signal %s %s (%d, group %d)", targetNames[e.to], SignalName(e.sig), e.pid, e.pgid)
		}
		return fmt.Sprintf("signal %s %s (%d)", targetNames[e.to], SignalName(e.sig), e.pid)
	case effArm:
		return fmt.Sprintf("arm %s %s", e.dl, e.d)
	case effDisarm:
		return "disarm " + e.dl.String()
	case effAnnounce:
		return fmt.Sprintf("upward %q", e.msg)
	case effReply:
		return fmt.Sprintf("reply %q", e.msg)
	case effLog:
		level := map[int]string{levelError: "error", levelInfo: "info/warn", levelDebug: "debug"}[e.level]
		return fmt.Sprintf("log %s %q", level, e.msg)
	case effTerminal:
		return fmt.Sprintf("terminal to group %d", e.pid)
	case effWatchMain:
		return fmt.Sprintf("watch-main %d", e.pid)
	case effProbe:
		return fmt.Sprintf("probe %d", e.seq)
	}
	return effNames[e.kind]
}

// walk is the whole grid as text.
func walk() string {
	var b strings.Builder
	b.WriteString("# The lifecycle grid: every state × every event, as shim/machine.go decides it.\n")
	b.WriteString("# Generated by `go test ./shim -run TestLifecycleGrid -update`; review changes like code.\n")
	b.WriteString("# Each state is reached from the start by the steps shown; the main process is pid 100,\n")
	b.WriteString("# a hook 200, a command probe 400, another process 999; a probe's result is the probe in flight's\n")
	b.WriteString("# but for the stale one. Below each event: the state after it (phase, a stop's intent, [why upshim\n")
	b.WriteString("# ends the run], health and failing streak, the probe in flight), then the effects.\n")
	b.WriteString("# Config: --respawn-limit 10/5 --respawn-delay 1s --kill-timeout 5s, plus what the state says;\n")
	b.WriteString("# --watchdog 10s; a probe with --health-interval 3s --health-timeout 2s --health-start-interval 1s.\n")
	b.WriteString("# A replace: {old OLD, new NEW} are its two instances' main processes (0: gone); the old is 100,\n")
	b.WriteString("# the new 300; --replace-timeout 60s. \"ctl replace, strays\" is a replace under --kill-mode all\n")
	b.WriteString("# where a process below upshim is in no instance's tree (it matters only under kill-mode all).\n")
	for _, f := range fixtures {
		fmt.Fprintf(&b, "\n## %s\n", f.name)
		m := f.build()
		fmt.Fprintf(&b, "state: %s\n", stateName(m))
		for _, ge := range gridEvents {
			m := f.build()
			ev := ge.ev
			if ev.req != nil {
				r := *ev.req
				ev.req = &r
			}
			ev.at = t0.Add(time.Duration(len(f.steps)+1) * time.Second)
			fmt.Fprintf(&b, "  %-24s → %s\n", ge.name, describe(m, m.step(inFlight(m, ev))))
		}
	}
	return b.String()
}

// TestLifecycleGrid walks every state × event and compares the decisions
// with the golden file, which is the lifecycle's design document.
func TestLifecycleGrid(t *testing.T) {
	got := walk()
	const golden = "testdata/lifecycle.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./shim -run TestLifecycleGrid -update)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("the machine no longer decides as %s says, from line %d:\n got: %s\nwant: %s\n(if the change is meant, run with -update and review the diff)",
					golden, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s and the machine differ in length (%d lines, want %d); run with -update and review the diff", golden, len(gl), len(wl))
	}
}

// Every fixture reaches the state its name says.
func TestFixturesReachTheirState(t *testing.T) {
	for _, f := range fixtures {
		got := stateName(f.build())
		name := strings.SplitN(f.name, " (", 2)[0]
		if !strings.HasPrefix(got, name) {
			t.Errorf("fixture %q reaches %q", f.name, got)
		}
	}
}
