//go:build linux

package shim

import (
	"syscall"
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
