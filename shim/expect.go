package shim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Expect says how the main process and its readiness are found, as
// upstart's expect stanza did, without counting forks.
type Expect int

// The ways to find the main process and its readiness.
const (
	// ExpectNone: the process upshim starts is the service, ready once it
	// has been executed.
	ExpectNone Expect = iota
	// ExpectFork: the process upshim starts (the launcher) exits 0 once
	// the service runs; the process it left behind is the service.
	ExpectFork
	// ExpectDaemon is ExpectFork for daemons that fork twice; upshim does
	// not count forks, so the two behave alike.
	ExpectDaemon
	// ExpectStop: the service stops itself with SIGSTOP once ready.
	ExpectStop
	// ExpectNotify: the service sends READY=1 to NOTIFY_SOCKET.
	ExpectNotify
)

var expectNames = [...]string{"none", "fork", "daemon", "stop", "notify"}

// Set parses none, fork, daemon, stop or notify.
func (e *Expect) Set(s string) error {
	for i, name := range expectNames {
		if s == name {
			*e = Expect(i)
			return nil
		}
	}
	return errors.New("want none, fork, daemon, stop or notify")
}

// String names the mode.
func (e Expect) String() string { return expectNames[e] }

// Type names the value in --help.
func (e *Expect) Type() string { return "MODE" }

// forks reports whether the main process is left behind by a launcher.
func (e Expect) forks() bool { return e == ExpectFork || e == ExpectDaemon }

// DefaultStartTimeout is --start-timeout's default.
const DefaultStartTimeout = Duration(90 * time.Second)

// pidfileWait is how long upshim keeps reading a pidfile that is not
// there yet after the launcher has exited: daemons often write it late.
const pidfileWait = 5 * time.Second

// pidfileRetry spaces the reads of a late pidfile.
const pidfileRetry = 20 * time.Millisecond

// becomeReady marks the service ready: the start timeout is over, the
// outer supervisor and --ready-fd hear of it the first time, and
// post-start runs.
func (s *Supervisor) becomeReady() {
	s.disarm()
	s.state = stateRunning
	s.logf(levelDebug, "main process (%d) is ready", s.main)
	s.announce("READY=1")
	s.announce("STATUS=running, main process " + itoa(s.main))
	if s.readyFD != nil {
		if err := writeNoSigpipe(int(s.readyFD.Fd()), []byte{'\n'}); err != nil {
			s.logf(levelWarn, "warning: --ready-fd %d: %v", s.cfg.ReadyFD, err)
		}
		s.readyFD.Close()
		s.readyFD = nil
	}
	if s.hasHook(PostStart) {
		s.runHook(PostStart)
	}
}

// launcherExited handles the end of the launcher of a forking service
// (--expect fork or daemon) before it was ready: exit 0 hands the service
// over to what it left behind; anything else is a failed start.
func (s *Supervisor) launcherExited(e exit) {
	if !e.status.Exited() || e.status.ExitStatus() != 0 {
		s.logf(levelError, "expected a fork, but the launcher (%d) %s", e.pid, describeStatus(e.status))
		s.mainEnded(e)
		return
	}
	s.awaitingPidfile = s.cfg.PidFile != ""
	s.pidfileSince = time.Now()
	s.launcher = e.pid
	s.findForked(e)
}

// findForked looks for the process the launcher left behind, by pidfile
// or as the one child upshim has adopted, and makes it the main process.
func (s *Supervisor) findForked(launcher exit) {
	pid, err, retry := s.survivor()
	switch {
	case err == nil:
		s.awaitingPidfile = false
		s.adoptMain(pid)
		s.logf(levelDebug, "the launcher (%d) exited 0; main process is %d", s.launcher, pid)
		s.becomeReady()
	case retry && time.Since(s.pidfileSince) < s.pidfileWait():
		s.arm(timerStart, pidfileRetry)
	default:
		s.awaitingPidfile = false
		s.logf(levelError, "expected a fork, but %v", err)
		s.startFailed(launcher.status)
	}
}

// pidfileWait is how long a pidfile may keep upshim waiting: pidfileWait,
// or less if --start-timeout is shorter.
func (s *Supervisor) pidfileWait() time.Duration {
	if t := time.Duration(s.cfg.StartTimeout); t > 0 && t < pidfileWait {
		return t
	}
	return pidfileWait
}

// survivor finds the main process after a launcher exited 0. retry says
// the pidfile may still come.
func (s *Supervisor) survivor() (pid int, err error, retry bool) {
	if s.cfg.PidFile != "" {
		pid, err := readPidfile(s.cfg.PidFile)
		if err != nil {
			return 0, fmt.Errorf("--pidfile %s: %v", s.cfg.PidFile, err), true
		}
		if !s.adopted(pid) {
			// Perhaps a stale pidfile the daemon has yet to rewrite.
			return 0, fmt.Errorf("--pidfile %s names pid %d, which is not upshim's child: refused", s.cfg.PidFile, pid), true
		}
		return pid, nil, false
	}
	kids := s.adoptedChildren()
	switch len(kids) {
	case 1:
		return kids[0], nil, false
	case 0:
		return 0, errors.New("the launcher exited 0 and left nothing running"), false
	}
	return 0, fmt.Errorf("the launcher left %d processes (%s); say which one is the service with --pidfile",
		len(kids), joinInts(kids)), false
}

// adopted reports whether pid is upshim's child, the only kind of process
// upshim may take as main process: it alone can wait for it, and nothing
// else can have taken its pid while it is unreaped.
func (s *Supervisor) adopted(pid int) bool {
	return pid > 1 && parentOf(pid) == os.Getpid() && (s.hook == nil || pid != s.hook.pid)
}

// adoptedChildren lists upshim's live children other than a running hook.
func (s *Supervisor) adoptedChildren() []int {
	var kids []int
	for _, pid := range childrenOf(os.Getpid()) {
		if (s.hook == nil || pid != s.hook.pid) && procStateOf(pid) != 'Z' {
			kids = append(kids, pid)
		}
	}
	return kids
}

// follow handles a forking service's main process that exited 0 while
// running: a daemon that re-forks or re-execs on upgrade names its new pid
// in the pidfile (or leaves exactly one process behind) and is followed,
// not respawned. A pidfile that is not there yet, or still names the old
// pid, is read again every pidfileRetry for up to pidfileWait, as at
// start-up, while the loop goes on (followAgain). It reports whether it
// found one to follow or waits for one.
func (s *Supervisor) follow(e exit) bool {
	if !s.cfg.Expect.forks() || !e.status.Exited() || e.status.ExitStatus() != 0 || s.stopRequested {
		return false
	}
	pid, err, retry := s.survivor()
	if err != nil {
		if !retry {
			return false
		}
		s.following, s.pidfileSince = &e, time.Now()
		s.arm(timerFollow, pidfileRetry)
		return true
	}
	s.adoptMain(pid)
	s.logf(levelInfo, "main process (%d) exited 0; following %d", e.pid, pid)
	return true
}

// followAgain reads the pidfile again for the successor of the main
// process that exited 0 (s.following). Once the wait is over without one,
// that exit is the end of the run.
func (s *Supervisor) followAgain() {
	e := s.following
	if e == nil || s.state != stateRunning {
		return
	}
	pid, err, retry := s.survivor()
	switch {
	case err == nil:
		s.following = nil
		s.adoptMain(pid)
		s.logf(levelInfo, "main process (%d) exited 0; following %d", e.pid, pid)
	case retry && time.Since(s.pidfileSince) < s.pidfileWait():
		s.arm(timerFollow, pidfileRetry)
	default:
		s.following = nil
		s.logf(levelInfo, "main process (%d) exited 0, and no successor to follow: %v", e.pid, err)
		s.mainGone(*e)
	}
}

// stopFollowing ends a wait for the successor of a main process that
// exited 0: a stop does not wait for it. The exit is the end of the run,
// and finish stops whatever the daemon left.
func (s *Supervisor) stopFollowing() bool {
	e := s.following
	if e == nil {
		return false
	}
	s.following = nil
	s.disarm()
	s.mainGone(*e)
	return true
}

// adoptMain makes pid, one of upshim's descendants that the service
// named or left behind, the main process; the stop signals then go to its
// process group, which a daemon that called setsid has made its own.
func (s *Supervisor) adoptMain(pid int) {
	s.forgetMainFD()
	s.main, s.lastPgrp = pid, pid
	if g, err := unix.Getpgid(pid); err == nil {
		s.lastPgrp = g
	}
}

// startFailed ends a start that never became ready: the tree is killed
// and the failure counts for the respawn limit like any other, as an exit
// with status 1 when the launcher itself exited 0.
func (s *Supervisor) startFailed(ws syscall.WaitStatus) {
	signalDescendants(unix.SIGKILL, s.lastPgrp, s.hookPgid())
	s.main = 0
	s.forgetMainFD()
	if ws.Exited() && ws.ExitStatus() == 0 {
		ws = syscall.WaitStatus(1 << 8)
	}
	s.mainEnded(exit{status: ws})
}

// onStartTimer handles the start timer: a late pidfile to read again, or
// the start timeout.
func (s *Supervisor) onStartTimer() {
	if s.state != stateStarting {
		return
	}
	if s.awaitingPidfile {
		s.findForked(exit{pid: s.launcher})
		return
	}
	what := "the service to be ready"
	switch {
	case s.cfg.Expect.forks() && s.main != 0:
		what = "a fork, but the launcher is still running"
	case s.cfg.Expect == ExpectStop:
		what = "the service to stop itself (SIGSTOP) when ready, but it has not"
	case s.cfg.Expect == ExpectNotify:
		what = "READY=1 on NOTIFY_SOCKET, but none came"
	}
	s.logf(levelError, "expected %s after %s; killing it", what, s.cfg.StartTimeout)
	s.startTimedOut = true
	signalDescendants(unix.SIGKILL, s.lastPgrp, s.hookPgid())
	if s.main == 0 {
		s.startFailed(0)
	}
}

// readPidfile reads a pid from path. The service controls the file, so
// upshim follows no symbolic link, reads nothing but a regular file, and
// reads it with one bounded read(2) outside the runtime's poller: a FIFO
// (or a device) could otherwise block the loop for as long as the service
// likes.
func readPidfile(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if err == unix.ELOOP {
			return 0, errors.New("is a symbolic link: refused")
		}
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, errors.New("is not a regular file: refused")
	}
	buf := make([]byte, 64)
	n, err := unix.Read(fd, buf)
	if err != nil || n < 0 {
		n = 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n])))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("holds %q, not a pid", bytes.TrimSpace(buf[:n]))
	}
	return pid, nil
}

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

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
