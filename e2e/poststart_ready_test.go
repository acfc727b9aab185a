//go:build linux

package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The start is over once post-start is, as upstart's start and systemd's
// ExecStartPost= have it: READY=1 upward and --ready-fd wait for the hook.
// A post-start that waits until the service answers thus makes a
// readiness check of it, which a server that listens a moment after its
// exec needs under a Type=notify unit (TestSystemd/naivehttpserver).
func TestReadyWaitsForPostStart(t *testing.T) {
	t.Parallel()
	up := listenUpward(t)
	dir := t.TempDir()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	cmd := exec.Command(upshimBinary(t), "--ready-fd", "3",
		"--post-start", "touch begun; while [ ! -e go ]; do sleep 0.01; done", "--", "sigrecord")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+up.path)
	cmd.ExtraFiles = []*os.File{readyW}
	r := startShimCmd(t, cmd)
	readyW.Close()
	r.line() // sigrecord is up, and ready as --expect none has it
	eventually(t, func() (bool, string) { return fileExists(filepath.Join(dir, "begun")), "post-start has not begun" })

	// upshim said whatever it says before post-start before spawning it.
	if msg := pending(t, up.conn); strings.Contains(msg, "READY=1") {
		t.Fatalf("READY=1 went upward while post-start runs: %q", msg)
	}
	if readable(t, readyR) {
		t.Fatalf("--ready-fd was written to while post-start runs")
	}

	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	up.expect("READY=1")
	readyR.SetReadDeadline(time.Now().Add(deadline))
	if b, err := io.ReadAll(readyR); string(b) != "\n" {
		t.Fatalf("--ready-fd once post-start was over: %q (%v)", b, err)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
}

// pending returns the datagrams already queued on conn, without waiting.
func pending(t *testing.T, conn syscall.Conn) string {
	t.Helper()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	raw.Read(func(fd uintptr) bool {
		buf := make([]byte, 4096)
		for {
			n, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err != nil {
				return true
			}
			msgs = append(msgs, string(buf[:n]))
		}
	})
	return strings.Join(msgs, " | ")
}

// readable reports whether f has data or its end, without waiting.
func readable(t *testing.T, f *os.File) bool {
	t.Helper()
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	raw.Control(func(fd uintptr) {
		n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}
