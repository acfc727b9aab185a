//go:build linux

package shim

// The lifecycle machine's vocabulary: the events it is given and the
// effects it returns, both as data (see machine.go).

import (
	"syscall"
	"time"
)

// evKind is the kind of an event.
type evKind int

const (
	evStart         evKind = iota // upshim is ready: the service's first start
	evMainExit                    // the main process ended
	evLauncherExit                // a forking service's launcher ended before it was ready
	evHookExit                    // the running hook ended
	evOrphanExit                  // any other child: something the service left
	evMainVanished                // the main process, not upshim's child, ended (its pidfd said so)
	evMainStopped                 // the main process was stopped by a signal
	evReaped                      // one pass of the reaper is over (none: no child is left)
	evStopSignal                  // SIGTERM or SIGINT
	evReloadSignal                // SIGHUP
	evRelaySignal                 // any other signal upshim catches
	evDeadline                    // an armed deadline passed
	evNotify                      // a message on the service's NOTIFY_SOCKET
	evRequest                     // a control request
	evSpawned                     // result of effSpawnMain or effSpawnHook: the pid
	evSpawnFailed                 // result of effSpawnMain or effSpawnHook: the error
	evFound                       // result of effFindMain: the main process
	evNotFound                    // result of effFindMain: none (yet)
	evProbeExit                   // the command probe in flight ended
	evProbeStarted                // result of effProbe: a command probe's pid
	evProbeResult                 // result of effProbe: its output, or a network probe's whole result
	evOldExit                     // the main process of the instance a replace is replacing ended
	evReplaceSignal               // --replace-signal: a replace, as ctl replace asks for one
)

var evNames = [...]string{"start", "main-exit", "launcher-exit", "hook-exit", "orphan-exit", "main-vanished", "main-stopped",
	"reaped", "stop-signal", "reload-signal", "relay-signal", "deadline", "notify", "request",
	"spawned", "spawn-failed", "found", "not-found", "probe-exit", "probe-started", "probe-result", "old-exit",
	"replace-signal"}

// event is one thing that happened, as data.
type event struct {
	kind       evKind
	at         time.Time
	pid        int
	status     syscall.WaitStatus
	none       bool           // evReaped: wait4 said no child is left
	sig        syscall.Signal // the signal (evStopSignal, evRelaySignal, evMainStopped)
	dl         deadline       // evDeadline
	note       *notification  // evNotify; note.mainPIDOK says whether MAINPID descends from upshim
	req        *request       // evRequest
	err        error          // evSpawnFailed, evNotFound
	code       int            // evSpawnFailed: 126 or 127, or 0 for want of a resource that may come back
	retry      bool           // evNotFound: the pidfile may still come
	fg         bool           // evSpawned (main): it was given the terminal's foreground
	notStarted bool           // (internal) the main process could not be spawned
	pgid       int            // evFound: the main process's group
	seq        int            // evProbeStarted, evProbeResult: the probe's number
	output     string         // evProbeResult: what the probe wrote or saw
	final      bool           // evProbeResult: the whole result (a network probe, a spawn that failed)...
	ok         bool           // ...and whether it passed
	strays     string         // evRequest replace, evReplaceSignal: under --kill-mode all, a process below upshim in no instance's tree
	oldLeft    int            // evReaped during a replace: processes left in the old instance's group (-1: cannot tell)
}

// effKind is the kind of an effect.
type effKind int

const (
	effSpawnMain  effKind = iota // start the main process; answers evSpawned or evSpawnFailed
	effSpawnHook                 // start hook kind with env; answers evSpawned or evSpawnFailed
	effSignal                    // send sig to target
	effArm                       // arm deadline dl after d
	effDisarm                    // disarm deadline slot of dl
	effAnnounce                  // tell the outer supervisor msg (sd_notify)
	effReply                     // answer req with text
	effLog                       // write one message line at level
	effFindMain                  // find a forking service's main process; answers evFound or evNotFound
	effDrainLogs                 // wait until the run's output is in the log file
	effReadyFD                   // write the newline to --ready-fd and close it
	effTerminal                  // give the terminal's foreground back to the main process's group
	effRotate                    // rotate the log files and answer req
	effPokeReaper                // run the reaper once more, even without SIGCHLD
	effWatchMain                 // follow pid, the main process upshim does not parent, by pidfd
	effProbe                     // run health probe seq; answers evProbeStarted and evProbeResult
)

var effNames = [...]string{"spawn-main", "spawn-hook", "signal", "arm", "disarm", "announce", "reply",
	"log", "find-main", "drain-logs", "ready-fd", "terminal", "rotate", "poke-reaper", "watch-main", "probe"}

// target names who a signal goes to.
type target int

const (
	toMain       target = iota // the main process
	toMainGroup                // the main process's group, as it is when the signal goes
	toHookGroup                // the running hook's group
	toTree                     // every descendant, sparing a running hook unless killHooks
	toSelf                     // upshim itself (SIGSTOP after the service's Ctrl-Z)
	toProbeGroup               // the running command probe's group
	toOldMain                  // a replace's old instance: its main process
	toOldGroup                 // ...its group, as it is when the signal goes, or as recorded
	toOldTree                  // ...its tree: its main process's descendants and its group
	toNewTree                  // a replace's new instance: its tree
)

var targetNames = [...]string{"main", "main-group", "hook-group", "tree", "self", "probe-group", "old-main",
	"old-group", "old-tree", "new-tree"}

// effect is one thing the loop must do, as data.
type effect struct {
	kind  effKind
	to    target
	sig   syscall.Signal
	pid   int // effSignal: the main pid or the group's pgid; spare group for toTree
	pgid  int // effSignal to an instance (old or new): its recorded group
	dl    deadline
	d     time.Duration
	hook  HookKind
	env   []string
	msg   string
	level int
	req   *request
	what  string // effSignal: why, for the loop's messages
	seq   int    // effProbe: the probe's number
}

// Message levels: errors always print, --quiet hides info and warnings,
// --verbose adds debug.
const (
	levelError = -1
	levelWarn  = 0
	levelInfo  = 0
	levelDebug = 1
)
