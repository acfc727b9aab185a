//go:build linux

// --job: an upstart job file merged into the configuration.

package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/upshim/upshim/internal/jobfile"
	"github.com/upshim/upshim/shim"
)

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
