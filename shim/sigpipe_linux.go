package shim

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeNoSigpipe writes b to fd, where nobody may read any more (a
// --ready-fd pipe whose reader has gone), without letting the SIGPIPE the
// kernel then raises reach the service. upshim catches SIGPIPE to relay
// it, so a SIGPIPE that upshim's own write raised would be relayed as if
// someone had sent it. send(MSG_NOSIGNAL) exists for sockets only, and
// ignoring SIGPIPE would stop the relay of one that is sent.
//
// A write's SIGPIPE is raised on the writing thread. The write is made on
// a locked thread with SIGPIPE blocked there, so the signal stays pending
// on that thread, where no other thread can take it; sigtimedwait then
// takes it off before the mask is restored. A SIGPIPE sent to upshim with
// kill meanwhile is for the process, and another thread takes it.
func writeNoSigpipe(fd int, b []byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	set.Val[0] = 1 << (13 - 1) // SIGPIPE; element 0 is a word of either size
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	_, err := unix.Write(fd, b)
	if err == unix.EPIPE {
		var zero unix.Timespec
		const sigsetSize = 8 // the kernel's, not Sigset_t's
		for {
			_, _, errno := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), 0,
				uintptr(unsafe.Pointer(&zero)), sigsetSize, 0, 0)
			if errno != unix.EINTR {
				break
			}
		}
	}
	return err
}
