//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upwardSocket is a datagram socket standing in for systemd's
// NOTIFY_SOCKET: what upshim announces arrives on it.
type upwardSocket struct {
	t    *testing.T
	path string
	conn *net.UnixConn
}

func listenUpward(t *testing.T) *upwardSocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &upwardSocket{t: t, path: path, conn: conn}
}

// expect reads messages until one contains want, and returns it.
func (u *upwardSocket) expect(want string) string {
	u.t.Helper()
	buf := make([]byte, 4096)
	u.conn.SetReadDeadline(time.Now().Add(waitLimit(u.t)))
	for {
		n, err := u.conn.Read(buf)
		if err != nil {
			u.t.Fatalf("waiting for %q on NOTIFY_SOCKET: %v", want, err)
		}
		if msg := string(buf[:n]); strings.Contains(msg, want) {
			return msg
		}
	}
}

func TestExpectFork(t *testing.T) {
	t.Parallel()
	up := listenUpward(t)
	// The launcher forks the service (which reports its pid) and exits 0.
	r := withNotifySocket(t, up, "--expect", "fork", "--", "sh", "-c", `sh -c 'echo "service $$"; exec sigrecord' & exit 0`)
	pid := strings.Fields(r.line())[1]
	r.line() // sigrecord ready
	up.expect("READY=1")
	// Once adopted, it gets the reload and kill signals.
	r.signal(syscall.SIGHUP)
	r.expect("HUP")
	msg := up.expect("RELOADING=1")
	if !strings.Contains(msg, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", msg)
	}
	r.signal(syscall.SIGTERM)
	up.expect("STOPPING=1")
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	if _, err := os.Stat("/proc/" + pid); err == nil {
		t.Fatalf("service %s still there", pid)
	}
	r.assertNothingLeft()
}

// Whatever the number of forks (a double fork with setsid here, declared
// as one), the survivor is found.
func TestExpectForkCountFree(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"fork", "daemon"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := startShim(t, "-v", "--expect", mode, "--", "sh", "-c",
				`(setsid sh -c 'sleep 0.1; echo "service $$"; exec sleep 300' &) ; exit 0`)
			pid := strings.Fields(r.line())[1]
			waitStderr(t, r, "main process is "+pid)
			r.signal(syscall.SIGTERM)
			if code := r.wait(); code != 143 {
				t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
			}
			r.assertNothingLeft()
		})
	}
}

// A launcher that never exits is a failed start after --start-timeout, not
// a hang; the failure counts for the respawn limit.
func TestExpectForkStartTimeout(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--expect", "fork", "--start-timeout", "200ms", "--respawn-limit", "1/60",
		"--post-stop", `echo "post-stop $SERVICE_RESULT"`, "--", "sh", "-c", `echo launcher; exec sleep 300`)
	r.expect("launcher")
	r.expect("post-stop timeout")
	r.expect("launcher")
	r.expect("post-stop start-limit-hit")
	if code := r.wait(); code != 137 {
		t.Fatalf("exit status %d, want 137; stderr:\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "expected a fork, but the launcher is still running after 200ms") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "respawning too fast") {
		t.Fatalf("the timeout did not count for the respawn limit:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}

func TestExpectForkFailures(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--expect", "fork", "--", "sh", "-c", `sleep 300 & sleep 301 & exit 0`)
	if code := r.wait(); code != 1 {
		t.Fatalf("exit status %d", code)
	}
	if !strings.Contains(r.stderr.String(), "the launcher left 2 processes (") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	r.assertNothingLeft()

	r = startShim(t, "--expect", "fork", "--", "sh", "-c", `exit 3`)
	if code := r.wait(); code != 3 {
		t.Fatalf("exit status %d", code)
	}
	if !strings.Contains(r.stderr.String(), "expected a fork, but the launcher (") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// A pidfile written late is waited for; one that names a process upshim
// did not adopt is refused and that process is never signalled.
func TestPidfile(t *testing.T) {
	t.Parallel()
	t.Run("late", func(t *testing.T) {
		t.Parallel()
		pidfile := t.TempDir() + "/d.pid"
		r := startShim(t, "--expect", "fork", "--pidfile", pidfile, "--", "sh", "-c",
			`(sleep 0.3; sh -c 'echo $$ > `+pidfile+`; exec sigrecord') & exit 0`)
		r.line() // ready
		r.signal(syscall.SIGTERM)
		r.expect("TERM")
		if code := r.wait(); code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
		}
	})

	// The start timeout is what the launcher has to exit in, which it
	// must have done for the pidfile to be read at all; it is also how
	// long a refused pidfile is read again (at most 5s) before the start
	// fails.
	t.Run("not a child", func(t *testing.T) {
		t.Parallel()
		pidfile := t.TempDir() + "/d.pid"
		// A hostile pidfile: the test's own sleep, not upshim's child.
		victim := exec.Command("sleep", "300")
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
		os.WriteFile(pidfile, []byte(strconv.Itoa(victim.Process.Pid)+"\n"), 0o644)
		r := startShim(t, "--expect", "fork", "--pidfile", pidfile, "--start-timeout", "2s", "--", "sh", "-c", `sleep 300 & exit 0`)
		if code := r.wait(); code != 1 {
			t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
		}
		if !strings.Contains(r.stderr.String(), fmt.Sprintf("names pid %d, which is not upshim's child: refused", victim.Process.Pid)) {
			t.Fatalf("stderr:\n%s", r.stderr)
		}
		if err := victim.Process.Signal(syscall.Signal(0)); err != nil || procState(strconv.Itoa(victim.Process.Pid)) == 'Z' {
			t.Fatal("upshim signalled a process it did not adopt")
		}
		r.assertNothingLeft()
	})

	// A symbolic link planted at the pidfile is not followed.
	t.Run("symlink", func(t *testing.T) {
		t.Parallel()
		pidfile := t.TempDir() + "/d.pid"
		os.Symlink("/proc/self/stat", pidfile)
		r := startShim(t, "--expect", "fork", "--pidfile", pidfile, "--start-timeout", "2s", "--", "sh", "-c", `sleep 300 & exit 0`)
		if code := r.wait(); code != 1 {
			t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
		}
		if !strings.Contains(r.stderr.String(), "is a symbolic link: refused") {
			t.Fatalf("stderr:\n%s", r.stderr)
		}
		r.assertNothingLeft()
	})
}

// A daemon that re-forks (the new pid in the pidfile, the old one exits 0)
// is followed, not respawned; one killed after adoption is respawned.
func TestDaemonRefork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := dir + "/d.pid"
	// The USR1 trap is set before the pidfile is written, so before upshim
	// adopts the daemon: the USR1 sent once it has finds it handled.
	daemon := `sh -c 'trap "sh -c \"echo \\\$\$ > ` + pidfile + `; echo daemon \\\$\$; exec sleep 300\" & sleep 0.2; exit 0" USR1; echo $$ > ` + pidfile + `; echo "daemon $$"; while :; do sleep 0.05; done' & exit 0`
	r := startShim(t, "-v", "--respawn", "--expect", "fork", "--pidfile", pidfile, "--", "sh", "-c", daemon)
	first := strings.Fields(r.line())[1]
	waitStderr(t, r, "main process is "+first)
	waitStderr(t, r, "relaying every signal")
	r.signal(syscall.SIGUSR1) // upgrade: re-fork
	second := strings.Fields(r.line())[1]
	waitStderr(t, r, "following "+second)
	if strings.Contains(r.stderr.String(), "respawning") {
		t.Fatalf("a re-fork was respawned:\n%s", r.stderr)
	}
	// Killed after adoption: its death comes through the reaper and the
	// launcher runs again.
	pid, _ := strconv.Atoi(second)
	syscall.Kill(pid, syscall.SIGKILL)
	third := strings.Fields(r.line())[1]
	waitStderr(t, r, "was killed by signal KILL; respawning")
	waitStderr(t, r, "main process is "+third)
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
}

func TestExpectStop(t *testing.T) {
	t.Parallel()
	up := listenUpward(t)
	r := withNotifySocket(t, up, "--expect", "stop", "--post-start", "echo post-start", "--", "sh", "-c", `echo stopping; kill -STOP $$; echo continued; exec sigrecord`)
	r.expect("stopping")
	up.expect("READY=1")
	// sigrecord's "ready PID" says it handles TERM.
	for seen := map[string]bool{}; !seen["continued"] || !seen["post-start"] || !seen["ready"]; {
		seen[strings.Fields(r.line())[0]] = true
	}
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
}

// --expect notify: the service gets a NOTIFY_SOCKET of its own (not
// upshim's), is ready on READY=1 and not before, its STATUS= goes upward,
// and --ready-fd gets one newline and is closed at first readiness.
func TestExpectNotify(t *testing.T) {
	t.Parallel()
	up := listenUpward(t)
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	gate := t.TempDir() + "/go"
	cmd := exec.Command(upshimBinary(t), "--expect", "notify", "--ready-fd", "3", "--", "sh", "-c",
		`echo "socket $NOTIFY_SOCKET"; while [ ! -e `+gate+` ]; do sleep 0.01; done; `+
			`sdnotify "STATUS=warming up"; sdnotify READY=1; exec sigrecord`)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+up.path)
	cmd.ExtraFiles = []*os.File{readyW}
	r := startShimCmd(t, cmd)
	readyW.Close()
	ready := make(chan string, 1)
	go func() {
		b := make([]byte, 16)
		n, _ := readyR.Read(b)
		rest, _ := readyR.Read(b[n:]) // EOF: upshim closed it
		ready <- string(b[:n+rest])
	}()
	socket := strings.TrimPrefix(r.line(), "socket ")
	if socket == "" || socket == up.path {
		t.Fatalf("the service's NOTIFY_SOCKET is %q (upshim's is %s)", socket, up.path)
	}
	select {
	case got := <-ready:
		t.Fatalf("--ready-fd got %q before READY=1", got)
	default:
	}
	os.WriteFile(gate, nil, 0o644)
	up.expect("STATUS=warming up")
	up.expect("READY=1")
	select {
	case got := <-ready:
		if got != "\n" {
			t.Fatalf("--ready-fd got %q, want one newline and EOF", got)
		}
	case <-time.After(waitLimit(t)):
		t.Fatal("--ready-fd got nothing")
	}
	r.line() // sigrecord ready
	r.signal(syscall.SIGTERM)
	up.expect("STOPPING=1")
	r.wait()
	if _, err := os.Stat(socket); err == nil {
		t.Errorf("the service's NOTIFY_SOCKET %s outlived upshim", socket)
	}
}

// Never ready: --expect notify without READY=1, --expect stop without a
// stop, each a failed start after --start-timeout that says what was
// expected.
func TestStartTimeoutSaysWhat(t *testing.T) {
	t.Parallel()
	for mode, says := range map[string]string{
		"notify": "expected READY=1 on NOTIFY_SOCKET, but none came after 200ms",
		"stop":   "expected the service to stop itself (SIGSTOP) when ready, but it has not after 200ms",
	} {
		r := startShim(t, "--expect", mode, "--start-timeout", "200ms", "--", "sleep", "300")
		if code := r.wait(); code != 137 {
			t.Fatalf("--expect %s: exit status %d; stderr:\n%s", mode, code, r.stderr)
		}
		if !strings.Contains(r.stderr.String(), says) {
			t.Fatalf("--expect %s: stderr:\n%s", mode, r.stderr)
		}
		r.assertNothingLeft()
	}
}

func TestReadyFDErrors(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--ready-fd", "9", "--", "true")
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "upshim: --ready-fd 9: not an open descriptor") {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	r = startShim(t, "--pidfile", "x.pid", "--", "true")
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "upshim: --pidfile x.pid needs --expect fork or daemon") {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
}

// MAINPID= moves the main process to one of upshim's descendants, here the
// child of a launcher that then exits; one that is not is ignored.
func TestNotifyMainPID(t *testing.T) {
	t.Parallel()
	r := startShim(t, "-v", "--expect", "notify", "--", "sh", "-c",
		`sdnotify MAINPID=1; sigrecord & sdnotify "MAINPID=$!" READY=1; echo "daemon $!"; wait`)
	// sigrecord and the shell print at once: "daemon PID" and "ready PID".
	seen := map[string]string{}
	for len(seen) < 2 {
		f := strings.Fields(r.line())
		seen[f[0]] = f[1]
	}
	pid := seen["daemon"]
	if seen["ready"] != pid {
		t.Fatalf("lines %v", seen)
	}
	waitStderr(t, r, "main process is now "+pid+" (MAINPID)")
	if !strings.Contains(r.stderr.String(), "MAINPID=1 is not one of upshim's descendants: ignored") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
}
