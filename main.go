// Command upshim runs one service under a tiny supervisor that gives it
// what an upstart job had: respawn with a limit, signal relay, a stop with
// a kill timeout, and a reaper for everything it leaves behind. It works as
// a container ENTRYPOINT (PID 1), inside a systemd or upstart unit, or by
// hand:
//
//	upshim --respawn-limit 10/5 -- ./naivehttpserver
//
// main.go only turns the command line into a shim.Config; the shim package
// does all process work.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/upshim/upshim/internal/generate"
	"github.com/upshim/upshim/internal/jobfile"
	"github.com/upshim/upshim/shim"
)

// Stamped at build time with -ldflags "-X main.version=… -X main.commit=…
// -X main.date=…"; see the README.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// Exit statuses of upshim itself; every other status is the service's.
const (
	exitOK    = 0
	exitUsage = shim.ExitUsage
)

const usageHead = `Usage:
  upshim [flags] [--] COMMAND [ARG...]
  upshim [flags] --job FILE
  upshim ctl [--control PATH | NAME] VERB [ARG]   (see upshim ctl --help)
  upshim ctl list [--json]
  upshim generate systemd|upstart|dockerfile [flags] [--] COMMAND [ARG...]

Runs COMMAND as a supervised service: relays signals to it, reaps every
process that ends up upshim's child, respawns it if asked, and on SIGTERM or
SIGINT stops it with --kill-signal, then SIGKILL after --kill-timeout.
Flag parsing stops at the first argument that is not a flag.

Durations take Go syntax (500ms, 5s, 2m) or whole seconds (5). Signals take
TERM, SIGTERM or a number.

Flags:
`

const usageTail = `
Exit status:
  the service's exit code, or 128+N when signal N killed it; after giving up
  on respawns, that last status (1 if it was 0); the pre-start hook's status
  when it failed; 2 for a usage error; 127 when COMMAND is not found; 126
  when it cannot be executed.
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == shim.SetupArg {
		os.Exit(shim.RunSetupHelper(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and runs the service, returning upshim's exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ctl" {
		return runCtl(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "generate" {
		return runGenerate(args[1:], stdout, stderr)
	}
	cfg, done, err := parseFlags(args, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "upshim: %v\n", err)
		return exitUsage
	}
	if done {
		return exitOK
	}
	return shim.New(cfg, stderr).Run()
}

// parseFlags builds the configuration from the command line. done is true
// when --help or --version has been answered and there is nothing to run.
func parseFlags(args []string, stdout io.Writer) (cfg shim.Config, done bool, err error) {
	fs := pflag.NewFlagSet("upshim", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SortFlags = false
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)

	cfg.RespawnLimit = shim.DefaultRespawnLimit
	cfg.KillTimeout = shim.DefaultKillTimeout
	cfg.HookTimeout = shim.DefaultHookTimeout
	cfg.StartTimeout = shim.DefaultStartTimeout
	killSignal, reloadSignal := shim.Signal(15), shim.Signal(1)
	cfg.WatchdogSignal = shim.Signal(6)
	cfg.HealthInterval, cfg.HealthTimeout = shim.DefaultHealthInterval, shim.DefaultHealthTimeout
	cfg.HealthRetries, cfg.HealthStartInterval = shim.DefaultHealthRetries, shim.DefaultHealthStartInterval
	var verbose, quiet, help, showVersion bool
	var umask shim.Umask
	logSize := shim.MiB(100)
	lc := &cfg.Log
	lc.MaxBackups = 10
	var nice, oomScoreAdj int
	su := &cfg.Setup
	cfg.ListenMode = shim.DefaultListenMode

	var jobPath string
	fs.StringVar(&jobPath, "job", "", "run the upstart job in `FILE` (/etc/init/NAME.conf); flags override its stanzas")
	fs.StringVar(&cfg.Name, "name", "", "service `NAME` in messages (default: base name of COMMAND)")
	fs.StringVarP(&su.Dir, "chdir", "C", "", "working directory `DIR` of the service (default: upshim's)")
	fs.VarP(&su.Env, "env", "e", "set a variable in the service's environment; repeatable")
	fs.StringArrayVar(&su.EnvFiles, "env-file", nil, "read NAME=VALUE lines from `FILE` (# comments, export prefix, quotes); repeatable")
	fs.BoolVar(&su.ClearEnv, "clear-env", false, "start from PATH and TERM only, then apply --env-file and --env")
	fs.StringVarP(&su.User, "user", "u", "", "run as `USER`, with its groups; sets HOME, USER and LOGNAME")
	fs.StringVarP(&su.Group, "group", "g", "", "run with `GROUP` as primary group")
	fs.Var(&umask, "umask", "file mode creation mask, octal (default: upshim's)")
	fs.IntVar(&nice, "nice", 0, "scheduling priority `N`, -20 (highest) to 19 (default: upshim's)")
	fs.IntVar(&oomScoreAdj, "oom-score-adj", 0, "OOM killer score adjustment `N`, -1000 to 1000 (default: upshim's)")
	fs.Var(&su.Limits, "limit", "resource limit (core cpu data fsize memlock msgqueue nice nofile nproc rss rtprio sigpending stack as); SOFT and HARD take a number or unlimited; repeatable")
	fs.StringVar(&cfg.Hooks[shim.PreStart], "pre-start", "", "run `CMD` with /bin/sh -e -c before every start; failure: the service does not run")
	fs.StringVar(&cfg.Hooks[shim.PostStart], "post-start", "", "run `CMD` once the service is ready; failure is logged")
	fs.StringVar(&cfg.Hooks[shim.PreStop], "pre-stop", "", "run `CMD` on a requested stop, before the kill signal")
	fs.StringVar(&cfg.Hooks[shim.PostStop], "post-stop", "", "run `CMD` after every run, with SERVICE_RESULT, EXIT_CODE, EXIT_STATUS and UPSHIM_RESPAWNS set")
	fs.Var(&cfg.HookTimeout, "hook-timeout", "kill a hook still running after this; it counts as failed; 0 never")
	fs.Var(&cfg.Expect, "expect", "how the service is found and known ready: \"none\" (exec), \"fork\" or \"daemon\" (the launcher exits 0, leaving the service), \"stop\" (it stops itself with SIGSTOP), \"notify\" (READY=1 on NOTIFY_SOCKET), \"health\" (the first passing health probe)")
	fs.StringVar(&cfg.PidFile, "pidfile", "", "with --expect fork or daemon: read the main pid from `FILE` (retried briefly); it must be upshim's child")
	fs.Var(&cfg.StartTimeout, "start-timeout", "not ready by then: a failed start; the tree is killed and the respawn policy applies; 0 never")
	fs.IntVar(&cfg.ReadyFD, "ready-fd", -1, "write a newline to descriptor `N` and close it when the service is first ready")
	fs.Var(&cfg.ReplaceSignal, "replace-signal", "a signal upshim takes as upshim ctl replace (USR2, as nginx uses): a new instance, then the old one stops once it is ready")
	fs.Var(&cfg.ReplaceTimeout, "replace-timeout", "a replace's new instance not ready by then is killed and the old one serves on; 0 never (default: --start-timeout)")
	fs.Var(&cfg.Watchdog, "watchdog", "once ready, the service must send WATCHDOG=1 to its NOTIFY_SOCKET within every DUR (systemd's WatchdogSec=; it gets WATCHDOG_USEC and WATCHDOG_PID), or it is killed and restarted; 0 off")
	fs.Var(&cfg.WatchdogSignal, "watchdog-signal", "signal sent to the main process when the watchdog fires; SIGKILL to its tree after --kill-timeout")
	fs.Var(shim.ProbeFlag{Probe: &cfg.Health, Kind: shim.ProbeCmd}, "health-cmd", "health probe: run CMD with /bin/sh -c, like a hook; exit 0 is healthy")
	fs.Var(shim.ProbeFlag{Probe: &cfg.Health, Kind: shim.ProbeHTTP}, "health-http", "health probe: GET an http:// URL; a status of 200 to 399 is healthy; redirects are not followed")
	fs.Var(shim.ProbeFlag{Probe: &cfg.Health, Kind: shim.ProbeTCP}, "health-tcp", "health probe: connect to HOST:PORT; a connection is healthy")
	fs.Var(&cfg.HealthInterval, "health-interval", "wait this long after a probe ends before the next one")
	fs.Var(&cfg.HealthTimeout, "health-timeout", "a probe still running after this has failed (a command probe's group is killed)")
	fs.IntVar(&cfg.HealthRetries, "health-retries", shim.DefaultHealthRetries, "`N` failed probes in a row make the service unhealthy")
	fs.Var(&cfg.HealthStartPeriod, "health-start-period", "failures in this time after each start do not count; a passing probe ends it")
	fs.Var(&cfg.HealthStartInterval, "health-start-interval", "the wait between probes in the start period, and before ready under --expect health")
	fs.Var(&cfg.HealthAction, "health-action", "when unhealthy: \"restart\" (stop without pre-stop, start again; counts as a failure), \"exit\" (stop, upshim exits non-zero) or \"none\" (report only)")
	fs.BoolVar(&cfg.Respawn, "respawn", false, "restart the service when it ends without being asked to (exit 0 too, unless --normal-exit or --task)")
	fs.Var(&cfg.RespawnLimit, "respawn-limit", "give up after COUNT+1 failures within INTERVAL of the first; \"unlimited\" or 0 never gives up; implies --respawn")
	fs.Var(&cfg.RespawnDelay, "respawn-delay", "wait this long before each respawn")
	fs.Var(&cfg.RespawnDelayMax, "respawn-delay-max", "double the delay per consecutive failure up to this; reset after a run that outlived INTERVAL")
	fs.Var(&cfg.NormalExit, "normal-exit", "exit codes and signal names (0,1,TERM) that end the service without respawn; repeatable")
	fs.BoolVar(&cfg.Task, "task", false, "a one-shot job: exit 0 means done")
	fs.StringVar(&lc.File, "log-file", "", "send stdout and stderr of the service and its hooks to `PATH`, rotated")
	fs.Var(&logSize, "log-max-size", "rotate before a file would grow past SIZE (whole MiB: 1M, 512M, 2G)")
	fs.IntVar(&lc.MaxBackups, "log-max-backups", 10, "rotated files kept (0 = all)")
	fs.IntVar(&lc.MaxAgeDays, "log-max-age", 0, "delete rotated files older than `DAYS` (0 = never)")
	fs.BoolVar(&lc.Compress, "log-compress", false, "gzip rotated files")
	fs.BoolVar(&lc.Timestamps, "log-timestamps", false, "prefix each line with its RFC 3339 UTC time, in microseconds")
	fs.StringVar(&lc.StderrFile, "log-stderr", "", "send stderr to its own rotated file at `PATH`")
	fs.BoolVar(&lc.Console, "log-console", false, "also copy every line to upshim's stdout (for docker logs)")
	fs.Var(&killSignal, "kill-signal", "signal sent on stop")
	fs.Var(&cfg.KillTimeout, "kill-timeout", "then SIGKILL to everything left")
	fs.Var(&cfg.KillMode, "kill-mode", "who gets the kill signal: \"group\" (the main process's group), \"process\" (main only) or \"all\" (every descendant)")
	fs.Var(&reloadSignal, "reload-signal", "signal sent to the main process when upshim gets SIGHUP")
	fs.Var(&cfg.Rewrite, "rewrite", "relay signal FROM as TO; TO=0 drops FROM; repeatable")
	fs.BoolVar(&cfg.SignalGroup, "signal-group", false, "relay signals to the main process's group rather than the main process")
	fs.Var(&cfg.Listen, "listen", "bind ADDR once and hold it across respawns; the service gets it as fd 3, 4, … in flag order, with LISTEN_FDS, LISTEN_FDNAMES (NAME, or unknown) and LISTEN_PID; ADDR: HOST:PORT, :PORT, [IPv6]:PORT, a tcp4:, tcp6: or udp: prefix, unix:/PATH, unix:@NAME; repeatable")
	fs.IntVar(&cfg.ListenBacklog, "listen-backlog", 0, "listen(2) backlog `N` of the --listen sockets (default: the kernel's maximum, net.core.somaxconn)")
	fs.Var(&cfg.ListenMode, "listen-mode", "mode of the --listen unix sockets, octal")
	fs.StringVar(&cfg.Control, "control", "", "listen on a unix socket at `PATH` for upshim ctl (mode 0600; root and upshim's user only); auto: NAME.sock in the runtime directory, for upshim ctl NAME")
	fs.BoolVarP(&verbose, "verbose", "v", false, "also report starts, exits, relayed signals and reaped orphans")
	fs.BoolVarP(&quiet, "quiet", "q", false, "report errors only")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.BoolVarP(&help, "help", "h", false, "print this help and exit")

	// Defaults are stated in the help as the contract states them.
	fs.Lookup("respawn-limit").DefValue = shim.DefaultRespawnLimit.String()
	fs.Lookup("kill-timeout").DefValue = shim.DefaultKillTimeout.String()
	fs.Lookup("hook-timeout").DefValue = shim.DefaultHookTimeout.String()
	fs.Lookup("start-timeout").DefValue = shim.DefaultStartTimeout.String()
	fs.Lookup("watchdog-signal").DefValue = "ABRT"
	fs.Lookup("health-interval").DefValue = shim.DefaultHealthInterval.String()
	fs.Lookup("health-timeout").DefValue = shim.DefaultHealthTimeout.String()
	fs.Lookup("health-start-interval").DefValue = shim.DefaultHealthStartInterval.String()
	fs.Lookup("log-max-size").DefValue = "100M"

	if err := fs.Parse(args); err != nil {
		return cfg, false, flagError(err)
	}
	// Given on the command line, not by a job's stanza.
	limitFlag := fs.Changed("respawn-limit")
	switch {
	case help:
		fmt.Fprint(stdout, usageHead+flagUsages(fs)+usageTail)
		return cfg, true, nil
	case showVersion:
		fmt.Fprintln(stdout, versionString())
		return cfg, true, nil
	case jobPath != "" && fs.NArg() > 0:
		return cfg, false, fmt.Errorf("--job %s and a COMMAND are mutually exclusive", jobPath)
	case jobPath != "":
		// Before the flags are turned into the configuration below, so
		// that a stanza counts wherever the flag was not given.
		job, err := jobfile.Parse(jobPath)
		if err != nil {
			return cfg, false, fmt.Errorf("--job %v", err)
		}
		if err := applyJob(&cfg, job, fs); err != nil {
			return cfg, false, fmt.Errorf("--job %s: %v", jobPath, err)
		}
	}
	switch {
	case verbose && quiet:
		return cfg, false, errors.New("--verbose and --quiet are mutually exclusive")
	case verbose:
		cfg.Verbosity = 1
	case quiet:
		cfg.Verbosity = -1
	}
	lc.MaxSizeMiB = int(logSize)
	if lc.File == "" {
		for _, name := range []string{"log-max-size", "log-max-backups", "log-max-age", "log-compress", "log-timestamps", "log-stderr", "log-console"} {
			if fs.Changed(name) {
				return cfg, false, fmt.Errorf("--%s needs --log-file", name)
			}
		}
	}
	if cfg.Health.Kind == shim.ProbeNone {
		for _, name := range []string{"health-interval", "health-timeout", "health-retries", "health-start-period", "health-start-interval", "health-action"} {
			if fs.Changed(name) {
				return cfg, false, fmt.Errorf("--%s needs a probe: --health-cmd, --health-http or --health-tcp", name)
			}
		}
	}
	if fs.Changed("watchdog-signal") && cfg.Watchdog == 0 && cfg.Expect != shim.ExpectNotify {
		return cfg, false, errors.New("--watchdog-signal needs --watchdog, or --expect notify for WATCHDOG=trigger")
	}
	for _, name := range []string{"listen-backlog", "listen-mode"} {
		if fs.Changed(name) && len(cfg.Listen) == 0 {
			return cfg, false, fmt.Errorf("--%s needs --listen", name)
		}
	}
	if fs.Changed("listen-backlog") && cfg.ListenBacklog < 1 {
		return cfg, false, fmt.Errorf("--listen-backlog %d: want 1 or more", cfg.ListenBacklog)
	}
	if lc.MaxBackups < 0 || lc.MaxAgeDays < 0 {
		return cfg, false, errors.New("--log-max-backups and --log-max-age cannot be negative")
	}
	if fs.Changed("umask") {
		su.Umask = &umask
	}
	if fs.Changed("nice") {
		if nice < -20 || nice > 19 {
			return cfg, false, fmt.Errorf("--nice %d: want -20 to 19", nice)
		}
		su.Nice = &nice
	}
	if fs.Changed("oom-score-adj") {
		if oomScoreAdj < -1000 || oomScoreAdj > 1000 {
			return cfg, false, fmt.Errorf("--oom-score-adj %d: want -1000 to 1000", oomScoreAdj)
		}
		su.OOMScoreAdj = &oomScoreAdj
	}
	if cfg.ReadyFD != -1 && cfg.ReadyFD < 3 {
		// 0, 1 and 2 are upshim's own stdio, and would be closed and
		// reused for whatever upshim opens next.
		return cfg, false, fmt.Errorf("--ready-fd %d: want a descriptor of 3 or more (0, 1 and 2 are upshim's stdio), or -1 for none", cfg.ReadyFD)
	}
	if limitFlag {
		cfg.Respawn = true
	}
	cfg.KillSignal, cfg.ReloadSignal = killSignal, reloadSignal
	if !fs.Changed("replace-timeout") {
		cfg.ReplaceTimeout = cfg.StartTimeout
	}
	if jobPath == "" {
		cfg.Command = fs.Args()
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, false, nil
}

// flagError rewrites pflag's errors into upshim's form, naming the flag and
// the bad value: --respawn-limit "10-5": want COUNT/INTERVAL or unlimited.
func flagError(err error) error {
	var invalid *pflag.InvalidValueError
	if errors.As(err, &invalid) {
		return fmt.Errorf("--%s %q: %v", invalid.GetFlag().Name, invalid.GetValue(), invalid.Unwrap())
	}
	var missing *pflag.ValueRequiredError
	if errors.As(err, &missing) {
		return fmt.Errorf("--%s needs a value", missing.GetFlag().Name)
	}
	var unknown *pflag.NotExistError
	if errors.As(err, &unknown) {
		name := unknown.GetSpecifiedName()
		if len(name) == 1 {
			return fmt.Errorf("unknown flag -%s (see upshim --help)", name)
		}
		return fmt.Errorf("unknown flag --%s (see upshim --help)", name)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "upshim: "))
}

// versionString is what --version prints.
func versionString() string {
	s := "upshim " + version
	if commit != "" {
		s += " (" + commit
		if date != "" {
			s += ", " + date
		}
		s += ")"
	}
	return s
}

// flagUsages formats the flag table for --help: one flag per entry, its
// placeholder, and the default when there is one. pflag's own formatter
// adds "[=true|false]" to switches, which no one types.
func flagUsages(fs *pflag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *pflag.Flag) {
		name := "      --" + f.Name
		if f.Shorthand != "" {
			name = "  -" + f.Shorthand + ", --" + f.Name
		}
		placeholder, usage := pflag.UnquoteUsage(f)
		if f.Value.Type() != "bool" {
			name += " " + placeholder
		}
		if f.Value.Type() != "bool" && f.DefValue != "" && f.DefValue != "0s" && f.DefValue != "[]" && f.DefValue != "0" && f.DefValue != "0000" && f.DefValue != "-1" {
			usage += " (default " + f.DefValue + ")"
		}
		b.WriteString(name)
		col := len(name)
		if col >= helpColumn {
			b.WriteByte('\n')
			col = 0
		}
		b.WriteString(strings.Repeat(" ", helpColumn-col))
		col = helpColumn
		for i, word := range strings.Fields(usage) {
			if i > 0 && col+1+len(word) > helpWidth {
				b.WriteString("\n" + strings.Repeat(" ", helpColumn))
				col = helpColumn
			} else if i > 0 {
				b.WriteByte(' ')
				col++
			}
			b.WriteString(word)
			col += len(word)
		}
		b.WriteByte('\n')
	})
	return b.String()
}

// The help's flag table: descriptions start at helpColumn and wrap before
// helpWidth.
const (
	helpColumn = 34
	helpWidth  = 80
)

const ctlUsage = `Usage:
  upshim ctl [--control PATH | NAME] VERB [ARG]
  upshim ctl list [--json]

Talks to the upshim listening on PATH, or to the one started with
--control auto and --name NAME, whose socket is NAME.sock in the runtime
directory: $RUNTIME_DIRECTORY, else, for a user other than root,
$XDG_RUNTIME_DIR/upshim, then /run/upshim. Without either, PATH is
$UPSHIM_CONTROL, when the first word is a VERB. VERB is status [--json],
start, stop, restart, replace, reload, signal SIG, rotate or exit.
Prints the answer; exits 0 when it is ok, 1 when it is an error, and, for
status, 3 when the service is not ready (so a readiness probe can run it).

list prints a line for every upshim running in those directories: name,
state, pid, uptime, respawns and health; --json prints their status
objects, each with its "control" path.
`

// ctlVerbs are the verbs of the control protocol: with $UPSHIM_CONTROL
// set, a first word that is one of them is a VERB, not a NAME.
var ctlVerbs = map[string]bool{"status": true, "start": true, "stop": true, "restart": true, "replace": true,
	"reload": true, "signal": true, "rotate": true, "exit": true}

// runCtl is `upshim ctl`: one request to a running upshim, or the list of
// them.
func runCtl(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("upshim ctl", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	path := fs.String("control", "", "")
	help := fs.BoolP("help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "upshim: ctl: %v\n", flagError(err))
		return exitUsage
	}
	if *help {
		fmt.Fprint(stdout, ctlUsage)
		return exitOK
	}
	words := fs.Args()
	env := os.Getenv("UPSHIM_CONTROL")
	switch {
	case len(words) == 0:
		fmt.Fprint(stderr, "upshim: ctl: no VERB given\n"+ctlUsage)
		return exitUsage
	case words[0] == "list":
		asJSON := len(words) == 2 && words[1] == "--json"
		if fs.Changed("control") || (len(words) > 1 && !asJSON) {
			fmt.Fprintln(stderr, "upshim: ctl: want list or list --json (list reads the runtime directory, not --control)")
			return exitUsage
		}
		return shim.CtlList(stdout, stderr, asJSON)
	case *path == shim.ControlAuto:
		fmt.Fprintln(stderr, "upshim: ctl: --control auto is upshim's; name the upshim instead: upshim ctl NAME VERB")
		return exitUsage
	case fs.Changed("control"):
	case env != "" && ctlVerbs[words[0]]:
		*path = env
	case len(words) == 1 && !ctlVerbs[words[0]]:
		fmt.Fprintf(stderr, "upshim: ctl: no VERB given after NAME %q\n", words[0])
		return exitUsage
	case len(words) == 1:
		fmt.Fprintf(stderr, "upshim: ctl %s: no NAME or --control PATH given, and UPSHIM_CONTROL is not set\n", words[0])
		return exitUsage
	default:
		name := words[0]
		if err := shim.CheckName(name); err != nil {
			fmt.Fprintf(stderr, "upshim: ctl: NAME %q %v\n", name, err)
			return exitUsage
		}
		found, err := shim.FindControl(name)
		if err != nil {
			fmt.Fprintf(stderr, "upshim: ctl %s: %v\n", words[1], err)
			return shim.CtlError
		}
		*path, words = found, words[1:]
	}
	answer, code := shim.Ctl(*path, words[0], words[1:]...)
	if code == shim.CtlError {
		fmt.Fprintf(stderr, "upshim: ctl %s: %s\n", words[0], answer)
		return code
	}
	fmt.Fprintln(stdout, answer)
	return code
}

// applyJob sets what an upstart job says, wherever the command line did
// not say otherwise. Upstart's own rules stand: respawn limit alone does
// not enable respawn, and console log writes /var/log/upstart/NAME.log.
func applyJob(cfg *shim.Config, job *jobfile.Job, fs *pflag.FlagSet) error {
	unset := func(flag string) bool { return !fs.Changed(flag) }
	set := func(flag string, value string) error {
		if value == "" || !unset(flag) {
			return nil
		}
		if err := fs.Set(flag, value); err != nil {
			return fmt.Errorf("%s %q: %v", strings.ReplaceAll(flag, "-", " "), value, err)
		}
		return nil
	}
	cfg.Command = jobCommand(job.Main)
	for kind, p := range []jobfile.Process{job.PreStart, job.PostStart, job.PreStop, job.PostStop} {
		name := shim.HookKind(kind).String()
		if p.Set() && unset(name) {
			cfg.Hooks[kind] = p.Exec + p.Script
		}
	}
	if unset("name") {
		cfg.Name = job.Name
	}
	if job.Respawn && unset("respawn") {
		cfg.Respawn = true
	}
	errs := []error{
		set("respawn-limit", job.RespawnLimit),
		set("expect", job.Expect),
		set("kill-signal", job.KillSignal),
		set("kill-timeout", job.KillTimeout),
		set("reload-signal", job.ReloadSignal),
		set("chdir", job.Chdir),
		set("user", job.Setuid),
		set("group", job.Setgid),
		set("umask", job.Umask),
	}
	if len(job.NormalExit) > 0 && unset("normal-exit") {
		errs = append(errs, cfg.NormalExit.Set(strings.Join(job.NormalExit, ",")))
	}
	if job.Task && unset("task") {
		cfg.Task = true
	}
	if job.Nice != "" && unset("nice") {
		n, err := strconv.Atoi(job.Nice)
		if err != nil || n < -20 || n > 19 {
			return fmt.Errorf("nice %q: want -20 to 19", job.Nice)
		}
		cfg.Setup.Nice = &n
	}
	if job.OOMScore != "" && unset("oom-score-adj") {
		n := -1000 // never
		if job.OOMScore != "never" {
			n, _ = strconv.Atoi(job.OOMScore)
		}
		if n < -1000 || n > 1000 {
			return fmt.Errorf("oom score %q: want -1000 to 1000 or never", job.OOMScore)
		}
		cfg.Setup.OOMScoreAdj = &n
	}
	if len(job.Limits) > 0 && unset("limit") {
		for _, l := range job.Limits {
			if err := cfg.Setup.Limits.Set(l); err != nil {
				return fmt.Errorf("limit %s: %v", l, err)
			}
		}
	}
	// The job's env comes first; --env given on the command line wins.
	cfg.Setup.Env = append(shim.EnvList(job.Env), cfg.Setup.Env...)
	switch job.Console {
	case "log":
		if unset("log-file") {
			// Written as root, as upstart did, in root's directory.
			cfg.Log.File = "/var/log/upstart/" + job.Name + ".log"
			cfg.Log.InitOwned = true
		}
	case "none":
		if unset("log-file") {
			cfg.DiscardOutput = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cfg.Description = job.Description
	cfg.StartOn = job.StartOn
	cfg.IgnoredStanzas = job.Ignored
	return nil
}

// jobCommand is the argv that runs a job's main process as upstart ran
// it: an exec line with shell metacharacters through sh -e -c, one
// without split at blanks, a script with sh -e.
func jobCommand(p jobfile.Process) []string {
	switch {
	case p.Script != "":
		return []string{"/bin/sh", "-e", "-c", p.Script}
	case jobfile.NeedsShell(p.Exec):
		return []string{"/bin/sh", "-e", "-c", "exec " + p.Exec}
	}
	return strings.Fields(p.Exec)
}

// pathFlags take a path that a unit or job must hold absolute: the init
// runs it from another directory.
var pathFlags = map[string]bool{"job": true, "chdir": true, "C": true, "env-file": true, "pidfile": true,
	"log-file": true, "log-stderr": true, "control": true}

// runGenerate is `upshim generate KIND [flags] -- COMMAND`: it checks the
// invocation as upshim would run it, then prints it wrapped for KIND.
func runGenerate(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "systemd" && args[0] != "upstart" && args[0] != "dockerfile") {
		fmt.Fprintln(stderr, "upshim: generate: want systemd, upstart or dockerfile, then the flags and COMMAND to run")
		return exitUsage
	}
	kind, rest := args[0], args[1:]
	cfg, done, err := parseFlags(rest, io.Discard)
	if err != nil {
		fmt.Fprintf(stderr, "upshim: %v\n", err)
		return exitUsage
	}
	if done {
		fmt.Fprintln(stderr, "upshim: generate: --help and --version print, they do not run")
		return exitUsage
	}
	flags, command := splitInvocation(rest, cfg)
	inContainer := kind == "dockerfile"
	for i := 0; i < len(flags); i++ {
		name, value, inline := strings.Cut(strings.TrimLeft(flags[i], "-"), "=")
		abs := absPath
		if name == "listen" {
			// Only the path of a unix: address.
			abs = func(v string) string { return shim.AbsUnixPath(v, absPath) }
		} else if !pathFlags[name] || (name == "control" && cfg.Control == shim.ControlAuto) {
			continue
		}
		if inContainer {
			continue
		}
		if inline {
			flags[i] = flags[i][:len(flags[i])-len(value)] + abs(value)
		} else if i+1 < len(flags) {
			flags[i+1] = abs(flags[i+1])
			i++
		}
	}
	if len(command) > 0 && !inContainer {
		command[0] = absCommand(command[0])
	}
	argv := flags
	if len(command) > 0 {
		argv = append(append(argv, "--"), command...)
	}
	self, err := os.Executable()
	if err != nil {
		self = "/usr/bin/upshim"
	}
	inv := generate.Invocation{
		Upshim: self, Args: argv, Name: cfg.Name, Description: cfg.Description, StartOn: cfg.StartOn,
		KillTimeout: time.Duration(cfg.KillTimeout), HookTimeout: time.Duration(cfg.HookTimeout),
		StartTimeout: time.Duration(cfg.StartTimeout), PreStart: cfg.Hooks[shim.PreStart] != "",
		PreStop: cfg.Hooks[shim.PreStop] != "", PostStop: cfg.Hooks[shim.PostStop] != "", Version: version,
		RuntimeDirectory: cfg.Control == shim.ControlAuto,
		ReplaceSignal:    replaceSignalName(cfg.ReplaceSignal),
		Watchdog:         cfg.Watchdog > 0 || cfg.Health.Kind != shim.ProbeNone, Health: cfg.Health.Kind != shim.ProbeNone,
	}
	for _, l := range cfg.Listen {
		if p := shim.ExposedPort(l.Spec); p != "" {
			inv.Expose = append(inv.Expose, p)
		}
	}
	if err := inv.Check(kind); err != nil {
		fmt.Fprintf(stderr, "upshim: generate %s: %v\n", kind, valueSource(err, flags))
		return exitUsage
	}
	switch kind {
	case "systemd":
		fmt.Fprint(stdout, generate.Systemd(inv))
	case "upstart":
		fmt.Fprint(stdout, generate.Upstart(inv))
	default:
		fmt.Fprint(stdout, generate.Dockerfile(inv))
	}
	return exitOK
}

// replaceSignalName is --replace-signal's name without SIG, "" when unset.
func replaceSignalName(sig shim.Signal) string {
	if sig == 0 {
		return ""
	}
	return strings.TrimPrefix(sig.String(), "SIG")
}

// valueSource rewrites a value generate refused to name where it came
// from: --name, the job file, or COMMAND.
func valueSource(err error, flags []string) error {
	var bad *generate.ValueError
	if !errors.As(err, &bad) {
		return err
	}
	job, fromJob := flagValue(flags, "job")
	name, given := flagValue(flags, "name")
	what, note, hint := bad.Field, "", ""
	switch {
	case bad.Field == "name" && given && name == bad.Value:
		what = "--name"
	case bad.Field == "name" && fromJob:
		what = "--job " + job + ": the job's name"
	case bad.Field == "name":
		what, note = "the name", " (from COMMAND; --name sets another)"
	case bad.Field == "description" || bad.Field == "start on":
		what = "--job " + job + ": " + bad.Field
	case bad.Field == "upshim":
		what = "upshim's own path"
	case bad.Field == "argument":
		hint = "; generate systemd and dockerfile escape it"
	}
	return fmt.Errorf("%s %q%s: %s%s", what, bad.Value, note, bad.Why, hint)
}

// flagValue finds --name VALUE or --name=VALUE in upshim's flags.
func flagValue(flags []string, name string) (string, bool) {
	for i, f := range flags {
		if f == "--"+name && i+1 < len(flags) {
			return flags[i+1], true
		}
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// splitInvocation separates upshim's flags from the command in args, as
// parseFlags read them; a job brings its own command.
func splitInvocation(args []string, cfg shim.Config) (flags, command []string) {
	n := len(cfg.Command)
	for _, a := range args {
		if a == "--job" || strings.HasPrefix(a, "--job=") {
			n = 0
		}
	}
	flags = append([]string(nil), args[:len(args)-n]...)
	if len(flags) > 0 && flags[len(flags)-1] == "--" {
		flags = flags[:len(flags)-1]
	}
	return flags, append([]string(nil), args[len(args)-n:]...)
}

// absPath makes a path absolute against the current directory.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// absCommand finds the command as upshim would, and gives its absolute
// path; one it cannot find stays as it is.
func absCommand(name string) string {
	if strings.Contains(name, "/") {
		return absPath(name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return absPath(p)
	}
	return name
}
