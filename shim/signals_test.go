//go:build linux

package shim

import (
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	good := map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, "15": syscall.SIGTERM,
		"HUP": syscall.SIGHUP, "sigusr1": syscall.SIGUSR1, "IOT": syscall.SIGABRT, "POLL": syscall.SIGIO,
		"RTMIN": 34, "RTMIN+2": 36, "SIGRTMIN+30": 64, "RTMAX": 64, "RTMAX-1": 63, "64": 64, "1": 1,
	}
	for in, want := range good {
		got, err := ParseSignal(in)
		if err != nil || syscall.Signal(got) != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "FOO", "SIG", "RTMIN+31", "RTMAX-31", "RTMIN-1", "RTMIN+x"} {
		if got, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %d, want an error", in, got)
		}
	}
}

func TestSignalName(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGTERM: "TERM", syscall.SIGWINCH: "WINCH", 34: "RTMIN", 35: "RTMIN+1", 64: "RTMIN+30", 33: "33",
	} {
		if got := SignalName(sig); got != want {
			t.Errorf("SignalName(%d) = %q, want %q", sig, got, want)
		}
		if parsed, err := ParseSignal(SignalName(sig)); err != nil || syscall.Signal(parsed) != sig {
			if sig != 33 {
				t.Errorf("ParseSignal(SignalName(%d)) = %d, %v", sig, parsed, err)
			}
		}
	}
}

func TestRelayable(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG,
		syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGPROF, 32, 33, 34, 0, 65} {
		if relayable(sig) {
			t.Errorf("relayable(%s) = true", SignalName(sig))
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGTSTP, 35, 64} {
		if !relayable(sig) {
			t.Errorf("relayable(%s) = false", SignalName(sig))
		}
	}
	urgent, later := caughtSignals()
	if len(urgent)+len(later) != 52 {
		t.Errorf("caught %d+%d signals, want 52: 64 less KILL STOP CHLD URG SEGV BUS FPE ILL PROF 32 33 34", len(urgent), len(later))
	}
	for _, sig := range urgent {
		if !fatalToGo(sig.(syscall.Signal)) {
			t.Errorf("%s caught before the service starts, but it is harmless to a Go program", sig)
		}
	}
}
