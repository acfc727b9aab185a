//go:build linux

package shim

import (
	"syscall"
	"time"

	"github.com/upshim/upshim/logging"
)

// Every default upshim has, in one place: the flags start from these
// (main's flags.go, which also states them in --help), and Validate fills
// a zero value with them.
const (
	// DefaultKillTimeout is --kill-timeout: upstart's kill timeout.
	DefaultKillTimeout = Duration(5 * time.Second)
	// DefaultKillSignal is --kill-signal, sent on stop.
	DefaultKillSignal = Signal(syscall.SIGTERM)
	// DefaultReloadSignal is --reload-signal, relayed for upshim's SIGHUP.
	DefaultReloadSignal = Signal(syscall.SIGHUP)
	// DefaultWatchdogSignal is --watchdog-signal, systemd's WatchdogSignal=.
	DefaultWatchdogSignal = Signal(syscall.SIGABRT)

	// DefaultStartTimeout is --start-timeout.
	DefaultStartTimeout = Duration(90 * time.Second)
	// DefaultHookTimeout is --hook-timeout.
	DefaultHookTimeout = Duration(30 * time.Second)

	// Docker's HEALTHCHECK defaults: --health-interval, --health-timeout,
	// --health-retries and --health-start-interval.
	DefaultHealthInterval      = Duration(30 * time.Second)
	DefaultHealthTimeout       = Duration(30 * time.Second)
	DefaultHealthRetries       = 3
	DefaultHealthStartInterval = Duration(5 * time.Second)

	// DefaultListenMode is --listen-mode: anyone may connect, as under
	// systemd's SocketMode=.
	DefaultListenMode = FileMode(0o666)

	// DefaultLogMaxSize is --log-max-size and DefaultLogMaxBackups
	// --log-max-backups (their values live in logging, which shim imports).
	DefaultLogMaxSize    = MiB(logging.DefaultMaxSizeMiB)
	DefaultLogMaxBackups = logging.DefaultMaxBackups
)

// DefaultRespawnLimit is --respawn-limit: upstart's 10 respawns within 5s.
var DefaultRespawnLimit = RespawnLimit{Count: 10, Interval: 5 * time.Second}
