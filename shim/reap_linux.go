package shim

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// exit is one child that the reaper collected, or saw stop.
type exit struct {
	pid    int
	status syscall.WaitStatus
}

// reap collects every child that has ended, without blocking, and appends
// them to buf. orphaned reports that upshim has no children left at all
// (wait4 said ECHILD), which is how a stop knows that nothing of the
// service remains.
//
// reap is the only caller of wait4 in upshim, and only the supervisor's
// loop calls it. Because one SIGCHLD can stand for many exits (the kernel
// coalesces them), it empties the queue every time; a SIGCHLD that arrives
// while it runs is kept by the signal channel and causes one more pass.
func reap(buf []exit) (exits []exit, none bool) {
	for {
		var ws unix.WaitStatus
		// WUNTRACED: a main process stopped from the terminal (Ctrl-Z)
		// must stop upshim too, or the shell never gets the terminal back.
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WUNTRACED, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ECHILD:
			return buf, true
		case err != nil || pid <= 0:
			return buf, false
		}
		buf = append(buf, exit{pid: pid, status: syscall.WaitStatus(ws)})
	}
}

// noChildren reports whether upshim has no child at all, dead or alive.
// It only looks (WNOWAIT): the status of a child that has ended stays for
// reap to collect.
func noChildren() bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err == unix.ECHILD
		}
	}
}

// setSubreaper makes orphaned descendants upshim's children, so that their
// exits reach reap and a stop can find every one of them.
func setSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// exitCode turns a wait status into the code a shell would report: the
// exit code, or 128+N for death by signal N.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}

// describeStatus says how a process ended, for messages.
func describeStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exited with status " + itoa(ws.ExitStatus())
	case ws.Signaled() && ws.CoreDump():
		return "was killed by signal " + SignalName(ws.Signal()) + " (core dumped)"
	case ws.Signaled():
		return "was killed by signal " + SignalName(ws.Signal())
	}
	return "ended with wait status " + itoa(int(ws))
}
