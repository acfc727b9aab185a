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
// readable when the process ends, which a goroutine hands to the loop as
// the event evMainVanished.

// openPidfd pins pid with a pidfd and checks, once it is pinned, that it
// descends from upshim: the pid cannot change hands after that.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ENOSYS {
		return nil, errors.New("is not upshim's child, and this kernel has no pidfd to follow it with (Linux 5.3)")
	}
	if err != nil || !descends(pid) {
		if err == nil {
			unix.Close(fd)
		}
		return nil, errors.New("is not one of upshim's descendants")
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd: %v", err)
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// watchMain keeps f, a pidfd of the main process pid, and waits in a
// goroutine for it to become readable, that is, for the process to end.
// The wait sits in the runtime's poller: no thread, no wake-up until then.
// Closing f (forgetMainFD) ends the goroutine without a send.
func (s *Supervisor) watchMain(f *os.File, pid int) {
	s.forgetMainFD()
	s.mainFD, s.mainFDPid = f, pid
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
		s.mainFD, s.mainFDPid = nil, 0
	}
}

// onMainFD handles the end of a main process followed by pidfd f. If it
// had become upshim's child (its launcher exited), reap has its status;
// otherwise its parent reaped it, and the machine hears that it vanished.
func (s *Supervisor) onMainFD(f *os.File) {
	if f != s.mainFD {
		return // forgotten since: another main process, or reaped
	}
	s.collect()
	if f != s.mainFD {
		return
	}
	pid := s.mainFDPid
	s.forgetMainFD()
	s.dispatch(event{kind: evMainVanished, at: timeNow(), pid: pid})
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
