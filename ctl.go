//go:build linux

// upshim ctl: the client of the control socket.

package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"github.com/upshim/upshim/shim"
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
