package shim

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// descendants lists every live process below upshim, found by walking the
// kernel's per-thread children lists from upshim down. Because upshim is a
// subreaper, an orphan anywhere below it is re-parented to it, so a process
// that called setsid is found as long as it descends from upshim.
//
// It returns nil, false when /proc cannot be trusted: missing, or mounted
// for another PID namespace (unshare --pid without --mount-proc), where its
// pids would name other processes.
func descendants() ([]int, bool) {
	self := os.Getpid()
	if link, err := os.Readlink("/proc/self"); err != nil || link != strconv.Itoa(self) {
		return nil, false
	}
	var found []int
	queue := []int{self}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, child := range childrenOf(pid) {
			if procStateOf(child) != 'Z' { // dead already, only unreaped
				found = append(found, child)
			}
			queue = append(queue, child)
		}
	}
	return found, true
}

// childrenOf reads /proc/PID/task/*/children: each thread has its own list,
// and a re-parented orphan may be on any thread's.
func childrenOf(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// signalDescendants sends sig to every process below upshim, except those
// in process group spare (a hook that must be allowed to finish; 0 spares
// none), and returns how many it signalled, or -1 when it cannot tell.
// Where /proc cannot list them, upshim as PID 1 of a namespace uses
// kill(-1), which reaches all of them (spare included); otherwise it falls
// back to the process group pgid (the main process's), which is all
// upshim can still name, unless it is upshim's own.
func signalDescendants(sig syscall.Signal, pgid, spare int) int {
	pids, ok := descendants()
	if !ok {
		if os.Getpid() == 1 {
			unix.Kill(-1, sig)
		} else if pgid > 1 && pgid != unix.Getpgrp() {
			// Never upshim's own group: a service may have joined it.
			unix.Kill(-pgid, sig)
		}
		return -1
	}
	n := 0
	for _, pid := range pids {
		if spare != 0 {
			if g, err := unix.Getpgid(pid); err == nil && g == spare {
				continue
			}
		}
		if signalDescendant(pid, sig) {
			n++
		}
	}
	return n
}

// signalDescendant sends sig to pid if it is still below upshim. A
// grandchild's pid is not upshim's to hold: its parent may reap it and the
// kernel give the number to an unrelated process between the walk and the
// kill. A pidfd pins the process; checking its ancestry after opening it
// and signalling through it closes that window.
func signalDescendant(pid int, sig syscall.Signal) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ENOSYS {
		return unix.Kill(pid, sig) == nil // before Linux 5.3
	}
	if err != nil {
		return false // gone
	}
	defer unix.Close(fd)
	if !descends(pid) {
		return false
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0) == nil
}

// signalInstance sends sig to one instance of the service, when a replace
// has two alive: the descendants of its main process (0 once it is gone)
// and the members of its process group pgid. A process of the other
// instance is in neither, since each instance has a group of its own. It
// returns how many it reached, or -1 when /proc cannot list them, where
// only the group can be named. Sig 0 counts them.
func signalInstance(sig syscall.Signal, main, pgid int) int {
	own := unix.Getpgrp()
	if _, ok := descendants(); !ok {
		if pgid > 1 && pgid != own {
			unix.Kill(-pgid, sig)
		}
		return -1
	}
	members := instanceMembers(main, pgid, own)
	if sig == unix.SIGKILL {
		// Killed one by one, a parent's children would go to upshim (the
		// subreaper) and out of its tree before their turn, and a child
		// forked meanwhile would never be seen: stop the instance first,
		// until no walk finds a member the last one did not, then kill.
		members = freeze(members, main, pgid, own)
	}
	n := 0
	for _, pid := range members {
		if signalDescendant(pid, sig) {
			n++
		}
	}
	return n
}

// instanceMembers lists the live processes of an instance, judged all
// at once, before any is signalled.
func instanceMembers(main, pgid, own int) []int {
	pids, _ := descendants()
	self := os.Getpid()
	var members []int
	for _, pid := range pids {
		if inInstance(pid, main, pgid, own, self) {
			members = append(members, pid)
		}
	}
	return members
}

// freeze stops every member of an instance with SIGSTOP, and walks again
// once they have stopped, until a walk finds no new one; it returns them
// all. A stopped process cannot fork, and its children stay its own.
func freeze(members []int, main, pgid, own int) []int {
	seen := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		fresh := 0
		for _, pid := range members {
			if !seen[pid] {
				seen[pid] = true
				signalDescendant(pid, unix.SIGSTOP)
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
		// SIGSTOP takes effect when each returns to user space, after a
		// fork under way has put its child in the list.
		for wait := 0; wait < 50 && !allStopped(seen); wait++ {
			time.Sleep(time.Millisecond)
		}
		for _, pid := range instanceMembers(main, pgid, own) {
			if !seen[pid] {
				members = append(members, pid)
			}
		}
	}
	all := make([]int, 0, len(seen))
	for pid := range seen {
		all = append(all, pid)
	}
	return all
}

// allStopped reports whether every process of set is stopped or gone.
func allStopped(set map[int]bool) bool {
	for pid := range set {
		switch procStateOf(pid) {
		case 'T', 't', 'Z', 'X', 0:
		default:
			return false
		}
	}
	return true
}

// inInstance reports whether pid is main, descends from it, or is in its
// group pgid (never upshim's own group own, which a service may join).
func inInstance(pid, main, pgid, own, self int) bool {
	if main != 0 && pid == main {
		return true
	}
	if g, err := unix.Getpgid(pid); err == nil && pgid > 1 && g == pgid && g != own {
		return true
	}
	if main == 0 {
		return false
	}
	for i := 0; pid > 1 && i < 64; i++ {
		pid = parentOf(pid)
		if pid == main {
			return true
		}
		if pid == self {
			return false
		}
	}
	return false
}

// strayFrom names the first process below upshim that is in neither the
// tree of main nor its group pgid, nor in a group spared (a hook's, a
// probe's): under --kill-mode all, a replace could not tell whose it is.
// "" when there is none, or when /proc cannot list them ("" would then
// be wrong: it says so).
func strayFrom(main, pgid int, spared ...int) string {
	pids, ok := descendants()
	if !ok {
		return "/proc cannot list upshim's descendants"
	}
	own, self := unix.Getpgrp(), os.Getpid()
	for _, pid := range pids {
		if inInstance(pid, main, pgid, own, self) {
			continue
		}
		g, err := unix.Getpgid(pid)
		if err != nil {
			continue // gone
		}
		if slices.Contains(spared, g) {
			continue
		}
		return fmt.Sprintf("process %d (%s) is below upshim but in neither the main process's tree nor its group", pid, procName(pid))
	}
	return ""
}

// procName is the command name of pid, for messages.
func procName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// The /proc readers the tree walk and the readiness checks share.

// parentOf reads the parent pid of pid from /proc, or returns 0.
func parentOf(pid int) int {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procStateOf is the state letter of pid (R, S, Z…), or 0.
func procStateOf(pid int) byte {
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 {
		return stat[i+2]
	}
	return 0
}

// descends reports whether pid is below upshim. A MAINPID may be the
// notifying launcher's child, which becomes upshim's own once the launcher
// exits: until then the launcher, not upshim, reaps it.
func descends(pid int) bool {
	self := os.Getpid()
	for i := 0; pid > 1 && i < 64; i++ {
		pid = parentOf(pid)
		if pid == self {
			return true
		}
	}
	return false
}
