//go:build linux

package shim

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// ExpectHealth: the first health probe that passes.
	ExpectHealth
)

var expectNames = [...]string{"none", "fork", "daemon", "stop", "notify", "health"}

// Set parses none, fork, daemon, stop, notify or health.
func (e *Expect) Set(s string) error {
	for i, name := range expectNames {
		if s == name {
			*e = Expect(i)
			return nil
		}
	}
	return errors.New("want none, fork, daemon, stop, notify or health")
}

// String names the mode.
func (e Expect) String() string { return expectNames[e] }

// Type names the value in --help.
func (e *Expect) Type() string { return "MODE" }

// forks reports whether the main process is left behind by a launcher.
func (e Expect) forks() bool { return e == ExpectFork || e == ExpectDaemon }

// pidfileWait is how long upshim keeps reading a pidfile that is not
// there yet after the launcher has exited: daemons often write it late.
const pidfileWait = 5 * time.Second

// pidfileRetry spaces the reads of a late pidfile.
const pidfileRetry = 20 * time.Millisecond

// survivor finds the main process after a launcher exited 0: the pid in
// the pidfile, which must be upshim's child, or the one child upshim has
// adopted. retry says the pidfile may still come.
//
// Only upshim's own child may become the main process: it alone can wait
// for it, and nothing else can have taken its pid while it is unreaped.
func (s *Supervisor) survivor() (pid int, retry bool, err error) {
	hook, probe, old, oldGroup := 0, 0, 0, 0
	if s.m.hook != nil {
		hook = s.m.hook.pid
	}
	if o := s.m.old; o != nil {
		// A replace: the old instance's processes are not the new one's.
		old, oldGroup = o.pid, o.pgid
	}
	if s.m.probe != nil {
		probe = s.m.probe.pid
	}
	if s.cfg.PidFile != "" {
		pid, err := readPidfile(s.cfg.PidFile)
		if err != nil {
			return 0, true, fmt.Errorf("--pidfile %s: %v", s.cfg.PidFile, err)
		}
		if pid <= 1 || pid == hook || pid == probe || (old != 0 && pid == old) || s.procs.parent(pid) != s.self {
			// Perhaps a stale pidfile the daemon has yet to rewrite.
			return 0, true, fmt.Errorf("--pidfile %s names pid %d, which is not upshim's child: refused", s.cfg.PidFile, pid)
		}
		return pid, false, nil
	}
	var kids []int
	for _, pid := range s.procs.children() {
		if pid == hook || pid == probe || (old != 0 && pid == old) {
			continue
		}
		if g, err := s.procs.group(pid); oldGroup != 0 && err == nil && g == oldGroup {
			continue
		}
		kids = append(kids, pid)
	}
	switch len(kids) {
	case 1:
		return kids[0], false, nil
	case 0:
		return 0, false, errors.New("the launcher exited 0 and left nothing running")
	}
	return 0, false, fmt.Errorf("the launcher left %d processes (%s); say which one is the service with --pidfile",
		len(kids), joinInts(kids))
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

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
