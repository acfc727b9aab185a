package shim

import (
	"syscall"
	"testing"
)

func TestExitCode(t *testing.T) {
	for ws, want := range map[syscall.WaitStatus]int{
		0: 0, 1 << 8: 1, 255 << 8: 255, 42 << 8: 42,
		syscall.WaitStatus(syscall.SIGTERM): 143, syscall.WaitStatus(syscall.SIGKILL): 137,
		syscall.WaitStatus(syscall.SIGSEGV) | 0x80: 139, // core dumped
	} {
		if got := exitCode(ws); got != want {
			t.Errorf("exitCode(%#x) = %d, want %d", int(ws), got, want)
		}
	}
	if got := describeStatus(syscall.WaitStatus(syscall.SIGSEGV) | 0x80); got != "was killed by signal SEGV (core dumped)" {
		t.Errorf("describeStatus = %q", got)
	}
}
