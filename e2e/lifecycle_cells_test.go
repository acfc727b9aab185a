//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Black-box tests of lifecycle cells that were once undecided: each names
// its (state, event) cell in shim/testdata/lifecycle.golden.

// ppid is the parent pid of pid, from /proc, or 0.
func ppid(pid string) int {
	stat, _ := os.ReadFile("/proc/" + pid + "/stat")
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// withNotifySocket runs upshim with NOTIFY_SOCKET set to the test's own
// upward socket, as systemd with Type=notify would.
func withNotifySocket(t *testing.T, up *upwardSocket, args ...string) *running {
	t.Helper()
	cmd := exec.Command(upshimBinary(t), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+up.path)
	return startShimCmd(t, cmd)
}

// nothingUpward checks that none of the messages already sent upward
// contains what. Call it only after an event that comes after any such
// message would have.
func (u *upwardSocket) nothingUpward(what string) {
	u.t.Helper()
	buf := make([]byte, 4096)
	for {
		u.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, err := u.conn.Read(buf)
		if err != nil {
			return // nothing more is waiting
		}
		if msg := string(buf[:n]); strings.Contains(msg, what) {
			u.t.Fatalf("sent upward: %q", msg)
		}
	}
}

// Cell (awaiting-pidfile, signal TERM): the kill signal reaches what the
// launcher left, at once, not SIGKILL at the kill timeout.
func TestStopWhileAwaitingPidfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := dir + "/d.pid"
	// The daemon would write its pidfile only much later; it reports the
	// signals it gets.
	r := startShim(t, "-v", "--kill-timeout", "30s", "--expect", "fork", "--pidfile", pidfile, "--", "sh", "-c",
		`setsid sh -c 'exec sigrecord' & exit 0`)
	daemon := strings.Fields(r.line())[1] // "ready PID"
	// Once the launcher has exited, the daemon is upshim's (a subreaper's)
	// child, and upshim waits for the pidfile, for 5s.
	waitStderr(t, r, "waiting for --pidfile "+pidfile)
	if ppid(daemon) != r.cmd.Process.Pid {
		t.Fatalf("the daemon %s is not upshim's child", daemon)
	}
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	if strings.Contains(r.stderr.String(), "SIGKILL") {
		t.Fatalf("the stop waited for SIGKILL; stderr:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}

// Cell (backoff, signal HUP): nothing runs, so no reload is made up: no
// RELOADING=1 and READY=1 go upward, and upshim says why.
func TestReloadDuringBackoffRefused(t *testing.T) {
	t.Parallel()
	up := listenUpward(t)
	r := withNotifySocket(t, up, "--respawn", "--respawn-delay", "30s", "--", "sh", "-c", "echo ran; exit 1")
	r.expect("ran")
	up.expect("READY=1")
	waitStderr(t, r, "respawning in 30s")
	up.expect("STATUS=respawning")
	r.signal(syscall.SIGHUP)
	waitStderr(t, r, "reload: the service is backoff; HUP not sent")
	up.nothingUpward("RELOADING=1")
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Cell (running, signal HUP) under --expect notify: the service's own
// RELOADING=1 and READY=1 go upward, and upshim invents none, so a
// service that sends READY=1 only once never leaves its unit reloading.
func TestReloadUnderNotifyInventsNothing(t *testing.T) {
	t.Parallel()
	up := listenUpward(t)
	// The service says it is ready once, then tells of each HUP with a
	// STATUS= only.
	r := withNotifySocket(t, up, "--expect", "notify", "--", "sh", "-c",
		`sdnotify READY=1; trap 'sdnotify STATUS=got-hup' HUP; echo ready; while :; do sleep 0.05; done`)
	r.expect("ready")
	up.expect("READY=1")
	r.signal(syscall.SIGHUP)
	// STATUS= comes after upshim's handling of HUP, in order.
	var seen []string
	buf := make([]byte, 4096)
	up.conn.SetReadDeadline(time.Now().Add(waitLimit(t)))
	for {
		n, err := up.conn.Read(buf)
		if err != nil {
			t.Fatalf("no STATUS=got-hup upward (%v); seen %q; stderr:\n%s", err, seen, r.stderr)
		}
		msg := string(buf[:n])
		seen = append(seen, msg)
		if strings.Contains(msg, "RELOADING=1") {
			t.Fatalf("upshim sent RELOADING=1 upward for the service: %q", seen)
		}
		if strings.Contains(msg, "STATUS=got-hup") {
			break
		}
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}
