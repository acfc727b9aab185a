//go:build linux

package shim

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// procs is everything the Supervisor does to processes. The real one is
// osProcs; the machine's unit tests use a fake that records the calls and
// makes up the results, so that the loop can be tested without processes.
type procs interface {
	// spawn starts argv in a process group of its own; see spawn.
	spawn(name, path string, argv []string, setup *resolvedSetup, foreground bool) (int, error)
	// signal sends sig to pid, or to the group -pid.
	signal(pid int, sig syscall.Signal) error
	// signalTree sends sig to every descendant but those in group spare,
	// and says how many it reached (-1: it cannot tell); pgid is the
	// main process's group, the fallback when /proc cannot list them.
	signalTree(sig syscall.Signal, pgid, spare int) int
	// signalInstance sends sig to one instance's tree: the descendants of
	// main (0: gone) and the members of group pgid, and says how many it
	// reached (-1: it cannot tell); sig 0 only counts them.
	signalInstance(sig syscall.Signal, main, pgid int) int
	// reap collects every child that has ended or stopped; none says no
	// child is left at all.
	reap(buf []exit) (exits []exit, none bool)
	// group is the process group of pid.
	group(pid int) (int, error)
	// children lists upshim's own live children.
	children() []int
	// parent is the parent pid of pid, or 0.
	parent(pid int) int
}

// osProcs is procs on the real kernel.
type osProcs struct{}

func (osProcs) spawn(name, path string, argv []string, setup *resolvedSetup, fg bool) (int, error) {
	return spawn(name, path, argv, setup, fg)
}

func (osProcs) signal(pid int, sig syscall.Signal) error { return unix.Kill(pid, sig) }

func (osProcs) signalTree(sig syscall.Signal, pgid, spare int) int {
	if noChildren() {
		// A subreaper with no child has no descendant either: spare the
		// walk of /proc, the most of what the end of a run costs.
		return 0
	}
	return signalDescendants(sig, pgid, spare)
}

func (osProcs) signalInstance(sig syscall.Signal, main, pgid int) int {
	if noChildren() {
		return 0
	}
	return signalInstance(sig, main, pgid)
}

func (osProcs) reap(buf []exit) ([]exit, bool) { return reap(buf) }

func (osProcs) children() []int {
	var kids []int
	for _, pid := range childrenOf(unix.Getpid()) {
		if procStateOf(pid) != 'Z' {
			kids = append(kids, pid)
		}
	}
	return kids
}

func (osProcs) parent(pid int) int { return parentOf(pid) }

func (osProcs) group(pid int) (int, error) { return unix.Getpgid(pid) }
