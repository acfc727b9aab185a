//go:build linux

package shim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/upshim/upshim/logging"
)

// Config is everything the supervisor needs to run one service. It is plain
// data: main.go fills it from flags, Validate checks it, and nothing changes
// it once Run has started.
type Config struct {
	// Name prefixes upshim's messages ("upshim[NAME]: …"). Empty means the
	// base name of Command[0].
	Name string
	// Command is the service's argv; Command[0] is looked up in PATH when it
	// has no slash. It must not be empty.
	Command []string

	// Setup is the service's process setup: directory, environment,
	// credentials, umask, nice, OOM score and limits.
	Setup Setup

	// Hooks holds the four hooks' shell commands, by HookKind; empty ones
	// do not run.
	Hooks [4]string
	// HookTimeout kills a hook still running after it; zero means never.
	HookTimeout Duration

	// Expect says how the main process and its readiness are found; the
	// zero value is ExpectNone.
	Expect Expect
	// PidFile, with a forking Expect, names the main process once the
	// launcher has exited; empty takes the one process it left behind.
	PidFile string
	// StartTimeout turns a start that is not ready by then into a failure;
	// zero waits for ever.
	StartTimeout Duration
	// ReadyFD, when not negative, is a descriptor that gets a newline and
	// is closed when the service is first ready.
	ReadyFD int

	// Log, when Log.File is set, sends the service's and the hooks' output
	// to rotated files instead of upshim's own stdout and stderr.
	Log logging.Config

	// Listen are the sockets upshim binds at start-up and holds for the
	// main process (--listen), in order, after any it was passed itself.
	Listen ListenList
	// ListenBacklog is listen(2)'s backlog; zero asks for the kernel's
	// maximum (net.core.somaxconn).
	ListenBacklog int
	// ListenMode is the mode of unix sockets; DefaultListenMode is the
	// flag's default.
	ListenMode FileMode

	// Watchdog, when not zero, is the interval within which the ready
	// service must send WATCHDOG=1 (systemd's WatchdogSec=).
	Watchdog Duration
	// WatchdogSignal goes to the main process when the watchdog fires;
	// zero means SIGABRT.
	WatchdogSignal Signal

	// Health is the one health probe, if any, and the rest Docker's
	// HEALTHCHECK parameters; main.go sets Docker's defaults.
	Health              HealthProbe
	HealthInterval      Duration
	HealthTimeout       Duration
	HealthRetries       int
	HealthStartPeriod   Duration
	HealthStartInterval Duration
	HealthAction        HealthAction

	// Control, if set, is the path of the control socket (upshim ctl).
	Control string
	// DiscardOutput sends the service's output to /dev/null (upstart's
	// console none).
	DiscardOutput bool

	// Description, StartOn and IgnoredStanzas come from a job file: what
	// generate puts in units, and what upshim reports it leaves to the init.
	Description    string
	StartOn        string
	IgnoredStanzas []string

	// Respawn restarts the service when it ends without being asked to.
	Respawn bool
	// RespawnLimit gives up respawning after Count+1 failures within
	// Interval of the first (upstart's window). The zero value is unlimited;
	// DefaultRespawnLimit is what --respawn-limit defaults to.
	RespawnLimit RespawnLimit
	// RespawnDelay is the wait before each respawn; zero respawns at once.
	RespawnDelay Duration
	// RespawnDelayMax, when set, makes the delay double per consecutive
	// failure up to this value. Zero means a fixed delay.
	RespawnDelayMax Duration
	// NormalExit lists the statuses that end the service without a respawn.
	NormalExit ExitSet
	// Task marks a one-shot job: exit 0 means done.
	Task bool

	// KillSignal is sent on stop; zero means SIGTERM.
	KillSignal Signal
	// KillTimeout is how long the stop waits before SIGKILL to everything
	// left. DefaultKillTimeout is the flag's default; zero kills at once.
	KillTimeout Duration
	// KillMode chooses who gets KillSignal. The zero value is KillGroup.
	KillMode KillMode
	// ReloadSignal is sent to the main process when upshim gets SIGHUP;
	// zero means SIGHUP.
	ReloadSignal Signal
	// Rewrite maps a relayed signal to the one sent; a zero target drops it.
	Rewrite Rewrites
	// SignalGroup relays to the main process's group instead of the process.
	SignalGroup bool

	// ReplaceSignal, when not zero, is a signal upshim takes as ctl replace.
	ReplaceSignal Signal
	// ReplaceTimeout bounds the wait for a replace's new instance to be
	// ready; zero waits for ever. main.go defaults it to StartTimeout.
	ReplaceTimeout Duration

	// Verbosity is 0 by default, -1 for --quiet, 1 for --verbose.
	Verbosity int
}

// Validate reports the first inconsistency in c as an error naming the flag,
// and fills in the zero values that stand for a default.
func (c *Config) Validate() error {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return errors.New("no COMMAND given (see upshim --help)")
	}
	if c.Name == "" {
		c.Name = baseName(c.Command[0])
	}
	if c.Control == ControlAuto {
		if err := CheckName(c.Name); err != nil {
			return fmt.Errorf("--control auto: the name %q %v, so it cannot name the socket; give another with --name", c.Name, err)
		}
	}
	if c.KillSignal == 0 {
		c.KillSignal = DefaultKillSignal
	}
	if c.ReloadSignal == 0 {
		c.ReloadSignal = DefaultReloadSignal
	}
	if c.WatchdogSignal == 0 {
		c.WatchdogSignal = DefaultWatchdogSignal
	}
	if err := c.validateHealth(); err != nil {
		return err
	}
	if c.ListenBacklog < 0 {
		return fmt.Errorf("--listen-backlog %d: want 1 or more", c.ListenBacklog)
	}
	if c.PidFile != "" && !c.Expect.forks() {
		return fmt.Errorf("--pidfile %s needs --expect fork or daemon", c.PidFile)
	}
	if c.RespawnDelayMax != 0 {
		if c.RespawnDelay == 0 {
			return fmt.Errorf("--respawn-delay-max %s needs a non-zero --respawn-delay to double", c.RespawnDelayMax)
		}
		if c.RespawnDelayMax < c.RespawnDelay {
			return fmt.Errorf("--respawn-delay-max %s is less than --respawn-delay %s", c.RespawnDelayMax, c.RespawnDelay)
		}
	}
	if rs := syscall.Signal(c.ReplaceSignal); rs != 0 {
		switch {
		case rs == syscall.SIGTERM || rs == syscall.SIGINT:
			return fmt.Errorf("--replace-signal %s: %s stops upshim", c.ReplaceSignal, c.ReplaceSignal)
		case rs == syscall.SIGHUP:
			return fmt.Errorf("--replace-signal %s: HUP reloads the service; choose another (USR2, as nginx uses)", c.ReplaceSignal)
		case !relayable(rs):
			return fmt.Errorf("--replace-signal %s: upshim cannot catch %s", c.ReplaceSignal, c.ReplaceSignal)
		}
		if _, ok := c.Rewrite[c.ReplaceSignal]; ok {
			return fmt.Errorf("--replace-signal %s and --rewrite %s: the signal cannot both replace and be relayed", c.ReplaceSignal, c.ReplaceSignal)
		}
	}
	if c.ReplaceTimeout < 0 {
		return fmt.Errorf("--replace-timeout %s: want 0 or more", c.ReplaceTimeout)
	}
	for from := range c.Rewrite {
		switch syscall.Signal(from) {
		case syscall.SIGTERM, syscall.SIGINT:
			return fmt.Errorf("--rewrite %s: %s stops upshim; use --kill-signal to choose what the service gets", from, from)
		case syscall.SIGHUP:
			return fmt.Errorf("--rewrite %s: HUP reloads the service; use --reload-signal", from)
		}
		if !relayable(syscall.Signal(from)) {
			return fmt.Errorf("--rewrite %s: upshim cannot catch or relay %s", from, from)
		}
	}
	return nil
}

func baseName(path string) string {
	path = strings.TrimRight(path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[i+1:]
	}
	if path == "" {
		return "service"
	}
	return path
}

// Duration is a time.Duration that also accepts a bare integer as seconds,
// as upstart's stanzas did. It is a pflag.Value.
type Duration time.Duration

// Set parses "500ms", "2m" or "5" (seconds); negative values are refused.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration parses Go duration syntax or a bare number of seconds.
func ParseDuration(s string) (Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return Duration(time.Duration(n) * time.Second), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, errors.New("want a duration such as 500ms, 5s or 2m, or whole seconds")
	}
	return Duration(v), nil
}

// String formats the duration the way time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Type names the value in --help.
func (d *Duration) Type() string { return "DUR" }

// RespawnLimit is --respawn-limit COUNT/INTERVAL. A zero Count or Interval
// means unlimited, as upstart's `respawn limit 0 5` did.
type RespawnLimit struct {
	Count    int
	Interval time.Duration
}

// Unlimited reports whether the limit never gives up.
func (l RespawnLimit) Unlimited() bool { return l.Count == 0 || l.Interval == 0 }

// Set parses "10/5", "10/500ms" or "unlimited".
func (l *RespawnLimit) Set(s string) error {
	if s == "unlimited" {
		*l = RespawnLimit{}
		return nil
	}
	count, interval, ok := strings.Cut(s, "/")
	if !ok {
		return errors.New("want COUNT/INTERVAL or unlimited")
	}
	n, err := strconv.ParseUint(count, 10, 31)
	if err != nil {
		return errors.New("want COUNT/INTERVAL or unlimited; COUNT is a whole number")
	}
	d, err := ParseDuration(interval)
	if err != nil {
		return errors.New("want COUNT/INTERVAL or unlimited; INTERVAL is seconds or a duration")
	}
	*l = RespawnLimit{Count: int(n), Interval: time.Duration(d)}
	return nil
}

// String formats the limit as Set accepts it.
func (l RespawnLimit) String() string {
	if l.Unlimited() {
		return "unlimited"
	}
	if l.Interval%time.Second == 0 {
		return fmt.Sprintf("%d/%d", l.Count, l.Interval/time.Second)
	}
	return fmt.Sprintf("%d/%s", l.Count, l.Interval)
}

// Type names the value in --help.
func (l *RespawnLimit) Type() string { return "COUNT/INTERVAL" }

// ExitSet is --normal-exit: exit codes and signals that are a normal end.
// Repeated flags add to it.
type ExitSet struct {
	Codes   [256]bool
	Signals [sigRTMax + 1]bool
	text    []string
}

// Set adds a comma-separated list of codes (0-255) and signal names.
func (e *ExitSet) Set(s string) error {
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if n, err := strconv.Atoi(item); err == nil {
			if n < 0 || n > 255 {
				return fmt.Errorf("exit code %d is not 0-255", n)
			}
			e.Codes[n] = true
			continue
		}
		sig, err := ParseSignal(item)
		if err != nil || item == "" {
			return fmt.Errorf("%q is neither an exit code nor a signal name", item)
		}
		e.Signals[sig] = true
	}
	e.text = append(e.text, s)
	return nil
}

// Contains reports whether the wait status is listed.
func (e *ExitSet) Contains(ws syscall.WaitStatus) bool {
	switch {
	case ws.Exited():
		return e.Codes[ws.ExitStatus()]
	case ws.Signaled():
		return int(ws.Signal()) < len(e.Signals) && e.Signals[ws.Signal()]
	}
	return false
}

// String lists what was set.
func (e *ExitSet) String() string { return strings.Join(e.text, ",") }

// Type names the value in --help.
func (e *ExitSet) Type() string { return "LIST" }

// Rewrites is --rewrite FROM:TO, repeatable. A zero TO drops FROM.
type Rewrites map[Signal]Signal

// Set adds one FROM:TO pair.
func (r *Rewrites) Set(s string) error {
	from, to, ok := strings.Cut(s, ":")
	if !ok {
		return errors.New("want FROM:TO, e.g. USR1:TERM, or FROM:0 to drop")
	}
	f, err := ParseSignal(from)
	if err != nil {
		return fmt.Errorf("FROM: %v", err)
	}
	var t Signal
	if to != "0" {
		if t, err = ParseSignal(to); err != nil {
			return fmt.Errorf("TO: %v", err)
		}
	}
	if *r == nil {
		*r = Rewrites{}
	}
	(*r)[f] = t
	return nil
}

// String lists the pairs.
func (r *Rewrites) String() string {
	var parts []string
	for f, t := range *r {
		parts = append(parts, f.String()+":"+t.String())
	}
	return strings.Join(parts, ",")
}

// Type names the value in --help.
func (r *Rewrites) Type() string { return "FROM:TO" }

// KillMode chooses who gets the kill signal on stop.
type KillMode int

// Kill modes, as --kill-mode names them.
const (
	// KillGroup signals the main process's process group (upstart).
	KillGroup KillMode = iota
	// KillProcess signals the main process only.
	KillProcess
	// KillAll signals every descendant of upshim.
	KillAll
)

var killModeNames = [...]string{KillGroup: "group", KillProcess: "process", KillAll: "all"}

// Set parses group, process or all.
func (m *KillMode) Set(s string) error {
	for i, name := range killModeNames {
		if s == name {
			*m = KillMode(i)
			return nil
		}
	}
	return errors.New("want group, process or all")
}

// String names the mode.
func (m KillMode) String() string { return killModeNames[m] }

// Type names the value in --help.
func (m *KillMode) Type() string { return "MODE" }

// MiB is a size in whole mebibytes, given as 1M, 512M, 2G (or a bare
// number of MiB). It is a pflag.Value.
type MiB int

// Set parses the size.
func (m *MiB) Set(s string) error {
	num, unit := s, 1
	switch {
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		num = s[:len(s)-1]
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		num, unit = s[:len(s)-1], 1024
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > 1<<20/unit {
		return errors.New("want a size in whole MiB, e.g. 1M, 512M or 2G")
	}
	*m = MiB(n * unit)
	return nil
}

// String formats the size as Set takes it.
func (m *MiB) String() string {
	if *m%1024 == 0 && *m > 0 {
		return strconv.Itoa(int(*m)/1024) + "G"
	}
	return strconv.Itoa(int(*m)) + "M"
}

// Type names the value in --help.
func (m *MiB) Type() string { return "SIZE" }
