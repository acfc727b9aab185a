//go:build linux

// Command upshim runs one service under a tiny supervisor that gives it
// what an upstart job had: respawn with a limit, signal relay, a stop with
// a kill timeout, and a reaper for everything it leaves behind. It works as
// a container ENTRYPOINT (PID 1), inside a systemd or upstart unit, or by
// hand:
//
//	upshim --respawn-limit 10/5 -- ./naivehttpserver
//
// One file per subcommand, as runc lays them out: main.go dispatches and
// says the version; flags.go turns the command line into a shim.Config
// (job.go merges an upstart job into it); ctl.go is `upshim ctl`, the
// control socket's client; generate.go is `upshim generate`. The shim
// package does all process work.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/upshim/upshim/shim"
)

// Stamped at build time with -ldflags "-X main.version=… -X main.commit=…
// -X main.date=…"; see goreleaser.yaml.
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
