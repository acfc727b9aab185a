//go:build linux

// The main command's flags: the command line turned into a shim.Config,
// and the --help text.

package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"github.com/upshim/upshim/internal/jobfile"
	"github.com/upshim/upshim/shim"
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
	killSignal, reloadSignal := shim.DefaultKillSignal, shim.DefaultReloadSignal
	cfg.WatchdogSignal = shim.DefaultWatchdogSignal
	cfg.HealthInterval, cfg.HealthTimeout = shim.DefaultHealthInterval, shim.DefaultHealthTimeout
	cfg.HealthRetries, cfg.HealthStartInterval = shim.DefaultHealthRetries, shim.DefaultHealthStartInterval
	var verbose, quiet, help, showVersion bool
	var umask shim.Umask
	logSize := shim.DefaultLogMaxSize
	lc := &cfg.Log
	lc.MaxBackups = shim.DefaultLogMaxBackups
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
	fs.IntVar(&lc.MaxBackups, "log-max-backups", shim.DefaultLogMaxBackups, "rotated files kept (0 = all)")
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

	// The help states each default as a user would type it (shim/defaults.go).
	fs.Lookup("respawn-limit").DefValue = shim.DefaultRespawnLimit.String()
	fs.Lookup("kill-timeout").DefValue = shim.DefaultKillTimeout.String()
	fs.Lookup("hook-timeout").DefValue = shim.DefaultHookTimeout.String()
	fs.Lookup("start-timeout").DefValue = shim.DefaultStartTimeout.String()
	fs.Lookup("watchdog-signal").DefValue = shim.DefaultWatchdogSignal.String()
	fs.Lookup("health-interval").DefValue = shim.DefaultHealthInterval.String()
	fs.Lookup("health-timeout").DefValue = shim.DefaultHealthTimeout.String()
	fs.Lookup("health-start-interval").DefValue = shim.DefaultHealthStartInterval.String()
	defaultLogSize := shim.DefaultLogMaxSize
	fs.Lookup("log-max-size").DefValue = defaultLogSize.String()

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
