//go:build linux

package e2e

import (
	"encoding/json"
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

// ctl runs `upshim ctl --control sock ARGS...` and returns its output and
// whether it exited 0.
func ctl(t *testing.T, sock string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(upshimBinary(t), append([]string{"ctl", "--control", sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// mustCtl is ctl that must succeed.
func mustCtl(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, ok := ctl(t, sock, args...)
	if !ok {
		t.Fatalf("upshim ctl %s: %s", strings.Join(args, " "), out)
	}
	return out
}

// startControlled runs upshim with a control socket and waits until it
// answers.
func startControlled(t *testing.T, args ...string) (*running, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "upshim.sock")
	r := startShim(t, append([]string{"--control", sock}, args...)...)
	eventually(t, func() (bool, string) {
		_, ok := ctl(t, sock, "status")
		return ok, "upshim never answered on " + sock
	})
	return r, sock
}

// statusJSON reads ctl status --json.
func statusJSON(t *testing.T, sock string) map[string]any {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(mustCtl(t, sock, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestControlVerbs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, sock := startControlled(t, "-v", "--log-file", dir+"/app.log", "--pre-stop", "echo pre-stop", "--", "sigrecord")
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, mode %v", err, st.Mode())
	}
	waitStderr(t, r, "relaying every signal")

	// status, as text and as JSON with its documented fields
	text := mustCtl(t, sock, "status")
	st := statusJSON(t, sock)
	pid := int(st["pid"].(float64))
	if !strings.HasPrefix(text, "sigrecord: running, pid "+strconv.Itoa(pid)) {
		t.Fatalf("status says %q", text)
	}
	for _, field := range []string{"name", "state", "pid", "uptime_seconds", "respawns", "last_exit", "last_exit_code", "ready", "service_status", "log_file"} {
		if _, ok := st[field]; !ok {
			t.Errorf("status --json lacks %q: %v", field, st)
		}
	}
	if st["state"] != "running" || st["ready"] != true || st["log_file"] != dir+"/app.log" {
		t.Fatalf("status --json: %v", st)
	}

	// reload and signal reach the service
	mustCtl(t, sock, "reload")
	mustCtl(t, sock, "signal", "USR2")
	waitFileHas(t, dir+"/app.log", "\nHUP\n")
	waitFileHas(t, dir+"/app.log", "\nUSR2\n")

	// stop: the whole sequence, then upshim stays up with the service down
	if out := mustCtl(t, sock, "stop"); !strings.HasPrefix(out, "stopped") {
		t.Fatalf("stop answered %q", out)
	}
	waitFileHas(t, dir+"/app.log", "pre-stop\n")
	waitFileHas(t, dir+"/app.log", "TERM\n")
	if st := statusJSON(t, sock); st["state"] != "down" || st["pid"].(float64) != 0 {
		t.Fatalf("after stop: %v", st)
	}
	// status says so, and exits 3 (not ready) for readiness probes.
	cmd := exec.Command(upshimBinary(t), "ctl", "--control", sock, "status")
	out, _ := cmd.Output()
	if cmd.ProcessState.ExitCode() != 3 || !strings.HasPrefix(string(out), "sigrecord: down") {
		t.Fatalf("status while down: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Fatal("the service survived ctl stop")
	}

	// start: a new pid
	mustCtl(t, sock, "start")
	st = statusJSON(t, sock)
	second := int(st["pid"].(float64))
	if second == 0 || second == pid {
		t.Fatalf("after start: %v", st)
	}
	if out, ok := ctl(t, sock, "start"); ok || !strings.Contains(out, "already running") {
		t.Fatalf("a second start: %q", out)
	}

	// restart: a new pid, and no respawn counted
	mustCtl(t, sock, "restart")
	st = statusJSON(t, sock)
	if third := int(st["pid"].(float64)); third == second || third == 0 || st["respawns"].(float64) != 0 {
		t.Fatalf("after restart: %v", st)
	}

	// rotate: a rotated file appears
	mustCtl(t, sock, "rotate")
	if backups, _ := filepath.Glob(dir + "/app-*.log"); len(backups) != 1 {
		t.Fatalf("%d rotated files after ctl rotate", len(backups))
	}

	// exit: stop, exit, and the socket is gone
	mustCtl(t, sock, "exit")
	r.wait()
	if _, err := os.Stat(sock); err == nil {
		t.Fatal("the socket outlived upshim")
	}
	if out, ok := ctl(t, sock, "status"); ok || !strings.Contains(out, "no upshim is listening on "+sock) {
		t.Fatalf("ctl against a gone upshim: %q", out)
	}
}

// Only root and upshim's own user may use the socket.
func TestControlPermissions(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to try the socket as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		skipOrFail(t, "setpriv (util-linux) not installed")
	}
	// The socket's directory must be reachable by nobody for the kernel to
	// let it connect at all; the mode 0600 socket and the peer check stop it.
	dir, _ := os.MkdirTemp("", "upshim-control-")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	sock := dir + "/upshim.sock"
	r := startShim(t, "--control", sock, "--", "sleep", "300")
	eventually(t, func() (bool, string) {
		_, ok := ctl(t, sock, "status")
		return ok, "no answer"
	})
	os.Chmod(sock, 0o666) // let the connection through, to test the peer check
	cmd := exec.Command(setpriv, "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", upshimBinary(t), "ctl", "--control", sock, "stop")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied: uid 65534 may not control this upshim") {
		t.Fatalf("nobody's ctl stop: %v %s", err, out)
	}
	if st := statusJSON(t, sock); st["state"] != "running" {
		t.Fatalf("nobody stopped the service: %v", st)
	}
	mustCtl(t, sock, "exit")
	r.wait()
}

// A stale socket from a dead upshim is replaced; a live one is refused.
func TestControlStaleAndLive(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "upshim.sock")
	// A socket file nobody listens on, as a killed upshim leaves.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	r := startShim(t, "--control", sock, "--", "sleep", "300")
	eventually(t, func() (bool, string) {
		_, ok := ctl(t, sock, "status")
		return ok, "the stale socket was not replaced"
	})
	second := startShim(t, "--control", sock, "--", "sh", "-c", "touch "+sock+".ran")
	if code := second.wait(); code != 2 || !strings.Contains(second.stderr.String(), "--control "+sock+": another upshim is listening there") {
		t.Fatalf("a second upshim on a live socket: exit %d, %s", code, second.stderr)
	}
	if _, err := os.Stat(sock + ".ran"); err == nil {
		t.Fatal("the second upshim ran its service")
	}
	mustCtl(t, sock, "exit")
	r.wait()
}

// Malformed requests on the raw socket get an error line, never a crash.
func TestControlMalformed(t *testing.T) {
	t.Parallel()
	r, sock := startControlled(t, "--", "sleep", "300")
	for _, req := range []string{
		"status\n", "\n", "upshim/2 status\n", "upshim/1\n", "upshim/1 bogus\n", "upshim/1 signal\n",
		"upshim/1 signal NOPE\n", strings.Repeat("x", 5000), "\x00\xff\xfe garbage\n", "",
	} {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(waitLimit(t)))
		conn.Write([]byte(req))
		if req == "" {
			conn.(*net.UnixConn).CloseWrite()
		}
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		conn.Close()
		if !strings.HasPrefix(string(buf[:n]), "error ") {
			t.Errorf("request %q got %q", req[:min(len(req), 40)], buf[:n])
		}
	}
	if st := statusJSON(t, sock); st["state"] != "running" {
		t.Fatalf("after malformed requests: %v", st)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}
