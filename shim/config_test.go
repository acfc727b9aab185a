//go:build linux

package shim

import (
	"syscall"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	good := map[string]time.Duration{"5": 5 * time.Second, "0": 0, "500ms": 500 * time.Millisecond, "2m": 2 * time.Minute, "1h30m": 90 * time.Minute}
	for in, want := range good {
		d, err := ParseDuration(in)
		if err != nil || time.Duration(d) != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "-1s", "-5", "5x", "soon", "1.5"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %s, want an error", in, d)
		}
	}
}

func TestRespawnLimitSet(t *testing.T) {
	good := map[string]RespawnLimit{
		"10/5":      {10, 5 * time.Second},
		"3/500ms":   {3, 500 * time.Millisecond},
		"unlimited": {},
		"0/5":       {0, 5 * time.Second},
		"5/0":       {5, 0},
	}
	for in, want := range good {
		var l RespawnLimit
		if err := l.Set(in); err != nil || l != want {
			t.Errorf("Set(%q) = %+v, %v; want %+v", in, l, err, want)
		}
	}
	if !(RespawnLimit{0, time.Second}).Unlimited() || !(RespawnLimit{3, 0}).Unlimited() || DefaultRespawnLimit.Unlimited() {
		t.Error("Unlimited is wrong about a zero field")
	}
	if s := DefaultRespawnLimit.String(); s != "10/5" {
		t.Errorf("default limit prints as %q", s)
	}
	for in, want := range map[string]string{
		"10-5":  "want COUNT/INTERVAL or unlimited",
		"x/5":   "want COUNT/INTERVAL or unlimited; COUNT is a whole number",
		"-1/5":  "want COUNT/INTERVAL or unlimited; COUNT is a whole number",
		"3/x":   "want COUNT/INTERVAL or unlimited; INTERVAL is seconds or a duration",
		"":      "want COUNT/INTERVAL or unlimited",
		"10/5/": "want COUNT/INTERVAL or unlimited; INTERVAL is seconds or a duration",
	} {
		var l RespawnLimit
		if err := l.Set(in); err == nil || err.Error() != want {
			t.Errorf("Set(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestExitSet(t *testing.T) {
	var e ExitSet
	if err := e.Set("0,1, TERM"); err != nil {
		t.Fatal(err)
	}
	if err := e.Set("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	exited := func(code int) syscall.WaitStatus { return syscall.WaitStatus(code << 8) }
	killed := func(sig syscall.Signal) syscall.WaitStatus { return syscall.WaitStatus(sig) }
	for ws, want := range map[syscall.WaitStatus]bool{
		exited(0): true, exited(1): true, exited(2): false, exited(15): false,
		killed(syscall.SIGTERM): true, killed(syscall.SIGHUP): true, killed(syscall.SIGKILL): false,
	} {
		if got := e.Contains(ws); got != want {
			t.Errorf("Contains(%#x) = %v, want %v", int(ws), got, want)
		}
	}
	for _, in := range []string{"256", "-1", "FOO", "0,,1"} {
		var bad ExitSet
		if err := bad.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

func TestRewritesAndKillMode(t *testing.T) {
	var r Rewrites
	for _, in := range []string{"USR1:USR2", "WINCH:0", "SIGQUIT:RTMIN+2"} {
		if err := r.Set(in); err != nil {
			t.Fatalf("Set(%q): %v", in, err)
		}
	}
	if r[Signal(syscall.SIGUSR1)] != Signal(syscall.SIGUSR2) || r[Signal(syscall.SIGWINCH)] != 0 || r[Signal(syscall.SIGQUIT)] != 36 {
		t.Errorf("rewrites = %v", r)
	}
	for _, in := range []string{"USR1", "USR1:", ":USR1", "FOO:USR1", "USR1:FOO"} {
		if err := r.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
	var m KillMode
	for in, want := range map[string]KillMode{"group": KillGroup, "process": KillProcess, "all": KillAll} {
		if err := m.Set(in); err != nil || m != want || m.String() != in {
			t.Errorf("KillMode.Set(%q) = %v, %v", in, m, err)
		}
	}
	if err := m.Set("mixed"); err == nil {
		t.Error("KillMode accepted mixed")
	}
}

func TestValidate(t *testing.T) {
	cfg := Config{Command: []string{"/usr/bin/my-server", "-x"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "my-server" || cfg.KillSignal != Signal(syscall.SIGTERM) || cfg.ReloadSignal != Signal(syscall.SIGHUP) {
		t.Errorf("defaults not filled in: %+v", cfg)
	}
	bad := []Config{
		{},
		{Command: []string{""}},
		{Command: []string{"x"}, RespawnDelayMax: Duration(time.Second)},
		{Command: []string{"x"}, RespawnDelay: Duration(2 * time.Second), RespawnDelayMax: Duration(time.Second)},
		{Command: []string{"x"}, Rewrite: Rewrites{Signal(syscall.SIGTERM): 0}},
		{Command: []string{"x"}, Rewrite: Rewrites{Signal(syscall.SIGINT): 10}},
		{Command: []string{"x"}, Rewrite: Rewrites{Signal(syscall.SIGHUP): 10}},
		{Command: []string{"x"}, Rewrite: Rewrites{Signal(syscall.SIGKILL): 10}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d validated: %+v", i, c)
		}
	}
}
