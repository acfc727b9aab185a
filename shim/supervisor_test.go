//go:build linux

package shim

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeProcs stands for the kernel: it records what the Supervisor does to
// processes and makes the results up, so that whole lifecycles run in
// microseconds, without processes.
type fakeProcs struct {
	next     int      // the pid the next spawn gets
	calls    []string // what was done, in order
	spawnErr error    // the next spawn fails with this
	kids     []int    // upshim's children, for findMain
}

func (f *fakeProcs) spawn(name, path string, argv []string, setup *resolvedSetup, fg bool) (int, error) {
	if err := f.spawnErr; err != nil {
		f.spawnErr = nil
		f.calls = append(f.calls, "spawn "+argv[len(argv)-1]+" failed")
		return 0, err
	}
	f.next++
	f.calls = append(f.calls, fmt.Sprintf("spawn %s = %d", argv[len(argv)-1], f.next))
	return f.next, nil
}

func (f *fakeProcs) signal(pid int, sig syscall.Signal) error {
	f.calls = append(f.calls, fmt.Sprintf("kill %d %s", pid, SignalName(sig)))
	return nil
}

func (f *fakeProcs) signalTree(sig syscall.Signal, pgid, spare int) int {
	f.calls = append(f.calls, "kill tree "+SignalName(sig))
	return 0
}

func (f *fakeProcs) signalInstance(sig syscall.Signal, main, pgid int) int { return 0 }
func (f *fakeProcs) reap(buf []exit) ([]exit, bool)                        { return buf, false }
func (f *fakeProcs) children() []int                                       { return f.kids }
func (f *fakeProcs) parent(pid int) int                                    { return 1 }
func (f *fakeProcs) group(pid int) (int, error)                            { return pid, nil }

// fakeSupervisor is a Supervisor for cfg on fake processes, started.
func fakeSupervisor(t *testing.T, cfg Config) (*Supervisor, *fakeProcs, *bytes.Buffer) {
	t.Helper()
	cfg.ReadyFD = -1
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	s := New(cfg, &stderr)
	f := &fakeProcs{next: 99}
	s.procs, s.setup, s.path, s.self, s.pgrp = f, &resolvedSetup{}, cfg.Command[0], 1, 1
	t.Cleanup(s.clock.stop)
	s.dispatch(event{kind: evStart, at: time.Now()})
	return s, f, &stderr
}

// exit of pid with ws, as the reaper would hand it over.
func (s *Supervisor) fakeExit(pid int, ws syscall.WaitStatus, none bool) {
	s.dispatch(event{kind: s.m.roleOf(pid), at: time.Now(), pid: pid, status: ws})
	s.dispatch(event{kind: evReaped, at: time.Now(), none: none})
}

func (f *fakeProcs) took(t *testing.T, want ...string) {
	t.Helper()
	if got := strings.Join(f.calls, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	f.calls = nil
}

// The hooks run in upstart's order around a requested stop, one at a time.
func TestFakeHookOrderOnStop(t *testing.T) {
	cfg := Config{Command: []string{"svc"}, Hooks: [4]string{"pre", "post-start", "pre-stop", "post-stop"},
		KillTimeout: Duration(time.Second)}
	s, f, _ := fakeSupervisor(t, cfg)
	f.took(t, "spawn pre = 100")
	s.fakeExit(100, 0, false)
	f.took(t, "spawn svc = 101", "spawn post-start = 102")
	s.fakeExit(102, 0, false)
	f.took(t)
	s.dispatch(event{kind: evStopSignal, at: time.Now(), sig: syscall.SIGTERM})
	f.took(t, "spawn pre-stop = 103")
	s.fakeExit(103, 0, false)
	f.took(t, "kill -101 TERM", "kill -101 CONT")
	s.fakeExit(101, syscall.WaitStatus(syscall.SIGTERM), false)
	f.took(t, "spawn post-stop = 104")
	s.fakeExit(104, 0, true)
	if s.m.phase != phDone || s.m.code != 128+15 {
		t.Fatalf("phase %s, code %d", s.m.phase, s.m.code)
	}
}

// Respawns follow the limit's window; the last failure gives up with the
// service's status.
func TestFakeRespawnLimit(t *testing.T) {
	cfg := Config{Command: []string{"svc"}, Respawn: true, RespawnLimit: RespawnLimit{Count: 2, Interval: time.Minute}}
	s, f, stderr := fakeSupervisor(t, cfg)
	for pid := 100; pid <= 102; pid++ {
		f.took(t, fmt.Sprintf("spawn svc = %d", pid))
		s.fakeExit(pid, syscall.WaitStatus(3<<8), pid == 102)
	}
	f.took(t, "kill tree TERM", "kill tree CONT")
	if s.m.phase != phDone || s.m.code != 3 {
		t.Fatalf("phase %s, code %d; stderr:\n%s", s.m.phase, s.m.code, stderr)
	}
	if !strings.Contains(stderr.String(), "respawning too fast (3 times within 1m0s)") {
		t.Fatalf("stderr:\n%s", stderr)
	}
}

// A stop while a forking service's pidfile is awaited reaches what the
// launcher left, rather than nobody.
func TestFakeStopWhileAwaitingPidfile(t *testing.T) {
	cfg := Config{Command: []string{"launcher"}, Expect: ExpectFork, PidFile: "/nonexistent/pf",
		KillTimeout: Duration(time.Second)}
	s, f, _ := fakeSupervisor(t, cfg)
	f.took(t, "spawn launcher = 100")
	s.fakeExit(100, 0, false)
	if s.m.phase != phAwaitPidfile {
		t.Fatalf("phase %s, want awaiting-pidfile", s.m.phase)
	}
	s.dispatch(event{kind: evStopSignal, at: time.Now(), sig: syscall.SIGTERM})
	f.took(t, "kill tree TERM", "kill tree CONT")
	if s.m.phase != phStopping {
		t.Fatalf("phase %s, want stopping", s.m.phase)
	}
}

// A spawn that fails for want of processes is a failed run under the
// respawn policy; one whose command cannot run ends the service.
func TestFakeSpawnFailures(t *testing.T) {
	cfg := Config{Command: []string{"svc"}, Respawn: true, RespawnLimit: RespawnLimit{Count: 5, Interval: time.Minute}}
	s, f, _ := fakeSupervisor(t, cfg)
	f.took(t, "spawn svc = 100")
	f.spawnErr = syscall.EAGAIN
	s.fakeExit(100, syscall.WaitStatus(1<<8), false)
	f.took(t, "spawn svc failed")
	if s.m.phase != phBackoff || s.clock.purpose[0] != dlRespawn {
		t.Fatalf("phase %s, deadline %s; want a respawn after a delay", s.m.phase, s.clock.purpose[0])
	}
	f.spawnErr = syscall.ENOENT
	s.dispatch(event{kind: evDeadline, at: time.Now(), dl: dlRespawn})
	f.took(t, "spawn svc failed", "kill tree TERM", "kill tree CONT")
	if s.m.phase != phDraining || s.m.code != 127 {
		t.Fatalf("phase %s, code %d", s.m.phase, s.m.code)
	}
}

// A service that joined upshim's process group gets the stop alone:
// upshim never signals its own group.
func TestFakeNeverSignalsOwnGroup(t *testing.T) {
	s, f, _ := fakeSupervisor(t, Config{Command: []string{"svc"}})
	f.took(t, "spawn svc = 100")
	s.pgrp = 100 // the group the main process is in is upshim's
	s.dispatch(event{kind: evStopSignal, at: time.Now(), sig: syscall.SIGTERM})
	f.took(t, "kill 100 TERM", "kill 100 CONT")
}
