//go:build linux

// upshim generate: an invocation checked, then printed as a systemd unit,
// an upstart job or a Dockerfile.

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/upshim/upshim/internal/generate"
	"github.com/upshim/upshim/shim"
)

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
