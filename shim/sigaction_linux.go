package shim

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ignoreReserved makes upshim ignore SIGRTMIN (34). The Go runtime reserves
// it (musl's SIGSYNCCALL), installs no handler and lets os/signal neither
// catch nor ignore it, so `kill -RTMIN` would otherwise kill upshim and
// orphan the service. The price: the service starts with 34 ignored, since
// exec keeps SIG_IGN, and 34 is never relayed.
func ignoreReserved() error {
	// struct sigaction starts with the handler on every architecture upshim
	// is built for; SIG_IGN needs no flags, restorer or mask, so a zeroed
	// buffer larger than the kernel's struct does for all of them.
	var act [8]uintptr
	act[0] = 1 // SIG_IGN
	const sigsetSize = 8
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, sigRTMin, uintptr(unsafe.Pointer(&act)), 0, sigsetSize, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
