//go:build linux

package shim

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// signalNames maps every standard Linux signal number to its name without
// the SIG prefix. Real-time signals are named RTMIN+N when formatted.
var signalNames = [...]string{
	unix.SIGHUP: "HUP", unix.SIGINT: "INT", unix.SIGQUIT: "QUIT", unix.SIGILL: "ILL",
	unix.SIGTRAP: "TRAP", unix.SIGABRT: "ABRT", unix.SIGBUS: "BUS", unix.SIGFPE: "FPE",
	unix.SIGKILL: "KILL", unix.SIGUSR1: "USR1", unix.SIGSEGV: "SEGV", unix.SIGUSR2: "USR2",
	unix.SIGPIPE: "PIPE", unix.SIGALRM: "ALRM", unix.SIGTERM: "TERM", unix.SIGSTKFLT: "STKFLT",
	unix.SIGCHLD: "CHLD", unix.SIGCONT: "CONT", unix.SIGSTOP: "STOP", unix.SIGTSTP: "TSTP",
	unix.SIGTTIN: "TTIN", unix.SIGTTOU: "TTOU", unix.SIGURG: "URG", unix.SIGXCPU: "XCPU",
	unix.SIGXFSZ: "XFSZ", unix.SIGVTALRM: "VTALRM", unix.SIGPROF: "PROF", unix.SIGWINCH: "WINCH",
	unix.SIGIO: "IO", unix.SIGPWR: "PWR", unix.SIGSYS: "SYS",
}

// sigRTMin and sigRTMax bound the real-time signals a process may use. The
// kernel's SIGRTMIN is 32, but glibc reserves 32 and 33 for itself and its
// SIGRTMIN is 34, which is what `kill -l` and every service expect.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// aliases are the other names Linux tools accept for a signal.
var aliases = map[string]syscall.Signal{
	"IOT": unix.SIGABRT, "POLL": unix.SIGIO, "CLD": unix.SIGCHLD,
}

// Signal is a signal number given by name (TERM, SIGTERM, RTMIN+2) or
// number. It is a pflag.Value. The zero value means "no signal", which only
// --rewrite accepts (to drop a signal).
type Signal syscall.Signal

// ParseSignal parses TERM, SIGTERM, term, RTMIN+3 or a number from 1 to 64.
func ParseSignal(s string) (Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(name); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, fmt.Errorf("want a signal number from 1 to %d", sigRTMax)
		}
		return Signal(n), nil
	}
	name = strings.TrimPrefix(name, "SIG")
	for n, known := range signalNames {
		if known != "" && known == name {
			return Signal(n), nil
		}
	}
	if sig, ok := aliases[name]; ok {
		return Signal(sig), nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		if off, ok := rtOffset(rest, '+'); ok && sigRTMin+off <= sigRTMax {
			return Signal(sigRTMin + off), nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok {
		if off, ok := rtOffset(rest, '-'); ok && sigRTMax-off >= sigRTMin {
			return Signal(sigRTMax - off), nil
		}
	}
	return 0, fmt.Errorf("want a signal name (TERM, SIGUSR1) or number")
}

// rtOffset parses the "+N" (or "-N") after RTMIN (RTMAX); empty means 0.
func rtOffset(s string, sign byte) (int, bool) {
	if s == "" {
		return 0, true
	}
	if s[0] != sign {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	return n, err == nil && n >= 0
}

// String returns the name without the SIG prefix, e.g. TERM or RTMIN+2.
func (s Signal) String() string { return SignalName(syscall.Signal(s)) }

// Set parses a signal for pflag.
func (s *Signal) Set(v string) error {
	sig, err := ParseSignal(v)
	if err != nil {
		return err
	}
	*s = sig
	return nil
}

// Type names the value in --help.
func (s *Signal) Type() string { return "SIG" }

// SignalName formats a signal as TERM, RTMIN+2 or, for numbers Linux does
// not use, the number.
func SignalName(sig syscall.Signal) string {
	n := int(sig)
	switch {
	case n > 0 && n < len(signalNames) && signalNames[n] != "":
		return signalNames[n]
	case n == sigRTMin:
		return "RTMIN"
	case n > sigRTMin && n <= sigRTMax:
		return "RTMIN+" + strconv.Itoa(n-sigRTMin)
	}
	return strconv.Itoa(n)
}

// relayable reports whether upshim catches sig and passes it on. SIGKILL
// and SIGSTOP cannot be caught; SIGSEGV, SIGBUS, SIGFPE and SIGILL stay the
// Go runtime's, so that a fault in upshim is reported as one; SIGCHLD is
// the reaper's; SIGURG is the runtime's preemption signal and arrives all
// the time (runc's signals.go makes the same exception); 32 and 33 are
// glibc's and the Go runtime's own real-time signals.
func relayable(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGKILL, unix.SIGSTOP, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
		unix.SIGCHLD, unix.SIGURG, unix.SIGPROF:
		return false
	}
	return sig >= 1 && sig <= sigRTMax && (sig < 32 || sig > sigRTMin)
}

// caughtSignals splits the signals upshim asks os/signal for, apart from
// SIGCHLD, in two. urgent holds those whose default in a Go program would
// kill or stop upshim; they are caught before the service exists. later
// holds the ones the runtime silently drops until asked for; registering
// each one costs a round trip to the runtime's signal thread, so the loop
// registers them one at a time, between events, once the service runs.
//
// SIGHUP and SIGINT that upshim's parent left ignored (nohup, a background
// job of a script) stay ignored, in upshim and so in the service: the Go
// runtime respects an inherited SIG_IGN for these two only, and catching
// them would hand the service the default action instead.
func caughtSignals() (urgent, later []os.Signal) {
	for n := syscall.Signal(1); n <= sigRTMax; n++ {
		switch {
		case !relayable(n), (n == unix.SIGHUP || n == unix.SIGINT) && signal.Ignored(n):
		case fatalToGo(n):
			urgent = append(urgent, n)
		default:
			later = append(later, n)
		}
	}
	return urgent, later
}

// fatalToGo reports whether a Go program that has not called Notify for sig
// dies of it (the runtime exits or throws) or is stopped by it.
func fatalToGo(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGABRT, unix.SIGTRAP,
		unix.SIGSTKFLT, unix.SIGSYS, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return true
	}
	return false
}
