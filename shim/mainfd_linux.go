package shim

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// A main process named by MAINPID= may be a grandchild: the child of a
// launcher that is still running. Its parent, not upshim, reaps it, so no
// exit reaches reap, and once reaped its pid may go to any process. upshim
// follows such a main process through a pidfd: signals go through the
// pidfd, which cannot reach another process, and the pidfd becomes
// readable when the process ends, which a goroutine hands to the loop.

// adoptNamed makes pid, which the service named with MAINPID=, the main
// process. It must descend from upshim. Unless it is upshim's own child,
// upshim follows it with a pidfd (watchMain).
func (s *Supervisor) adoptNamed(pid int) error {
	if pid <= 1 || (s.hook != nil && pid == s.hook.pid) {
		return errors.New("is not one of upshim's descendants")
	}
	if parentOf(pid) == os.Getpid() {
		s.adoptMain(pid) // reap sees its end
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ENOSYS {
		return errors.New("is not upshim's child, and this kernel has no pidfd to follow it with (Linux 5.3)")
	}
	// Checked once the pidfd pins the process: the pid cannot have
	// changed hands after this.
	if err != nil || !descends(pid) {
		if err == nil {
			unix.Close(fd)
		}
		return errors.New("is not one of upshim's descendants")
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("pidfd: %v", err)
	}
	s.adoptMain(pid)
	s.watchMain(os.NewFile(uintptr(fd), "pidfd"))
	return nil
}

// watchMain keeps f, a pidfd of the main process, and waits in a goroutine
// for it to become readable, that is, for the process to end. The wait
// sits in the runtime's poller: no thread, no wake-up until then. Closing
// f (forgetMainFD) ends the goroutine without a send.
func (s *Supervisor) watchMain(f *os.File) {
	s.mainFD = f
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	go func() {
		err := rc.Read(func(fd uintptr) bool { return pidfdReadable(int(fd)) })
		if err == nil {
			s.mainGoneC <- f
		}
	}()
}

// forgetMainFD drops the pidfd of the main process, if any: the main
// process is gone, or another one takes its place.
func (s *Supervisor) forgetMainFD() {
	if s.mainFD != nil {
		s.mainFD.Close()
		s.mainFD = nil
	}
}

// onMainFD handles the end of a main process followed by pidfd f.
func (s *Supervisor) onMainFD(f *os.File) {
	if f != s.mainFD {
		return // forgotten since: another main process, or reaped
	}
	// If it had become upshim's child (its launcher exited), reap has
	// its status: collect hands it to onExit, which forgets f.
	s.collect()
	if f != s.mainFD || s.main == 0 {
		return
	}
	pid := s.main
	s.forgetMainFD()
	// Its parent reaped it: its status went there. A stop under way is
	// taken to have ended it; otherwise its end counts as a failure.
	ws := syscall.WaitStatus(1 << 8)
	if s.stopRequested {
		ws = 0
	}
	s.logf(levelInfo, "main process (%d) ended; its parent, not upshim, reaped it, so how it ended is unknown", pid)
	s.onExit(exit{pid: pid, status: ws})
}

// mainAlive reports whether the main process has not ended. Without a
// pidfd the main process is upshim's child, whose pid is pinned until reap
// has collected it.
func (s *Supervisor) mainAlive() bool {
	if s.mainFD == nil {
		return true
	}
	ended := true
	// Not Fd(): it would take the file out of the poller.
	if rc, err := s.mainFD.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { ended = pidfdReadable(int(fd)) })
	}
	return !ended
}

// pidfdReadable reports whether the process of pidfd fd has ended.
func pidfdReadable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || (n > 0 && fds[0].Revents != 0)
	}
}

// pidfdSignal sends sig through pidfd f.
func pidfdSignal(f *os.File, sig syscall.Signal) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); cerr != nil {
		return cerr
	}
	return err
}
