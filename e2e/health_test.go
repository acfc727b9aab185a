//go:build linux

package e2e

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A service that answers and then hangs while alive is restarted within
// start period + retries × (interval + timeout) + kill timeout (plus a
// margin), without --respawn, with a new pid; post-stop gets
// SERVICE_RESULT=unhealthy, and the new run starts with a fresh streak.
func TestHealthRestartsHungService(t *testing.T) {
	const (
		interval, timeout, retries = 200 * time.Millisecond, 200 * time.Millisecond, 3
		startPeriod, killTimeout   = 300 * time.Millisecond, 300 * time.Millisecond
	)
	bound := startPeriod + retries*(interval+timeout) + killTimeout
	addr, dir := freeAddr(t), t.TempDir()
	r, sock := startControlled(t, "--listen", addr, "--health-http", "http://"+addr+"/healthz",
		"--health-interval", interval.String(), "--health-timeout", timeout.String(),
		"--health-retries", strconv.Itoa(retries), "--health-start-period", startPeriod.String(),
		"--health-start-interval", "100ms", "--kill-timeout", killTimeout.String(),
		"--post-stop", `echo "$SERVICE_RESULT $EXIT_STATUS" >> `+dir+`/results`,
		hangEnv("http:3"), "--", testBinary(t))
	first, _ := r.lineAt("serving ")
	_, hung := r.lineAt("hanging")
	second, back := r.lineAt("serving ")
	if took := back.Sub(hung); took > bound+timingMargin {
		t.Fatalf("restarted %s after it hung, want at most %s + %s", took, bound, timingMargin)
	} else {
		t.Logf("restarted %s after it hung (bound %s)", took.Round(time.Millisecond), bound)
	}
	if first == second {
		t.Fatalf("the same pid serves: %q", second)
	}
	b, _ := os.ReadFile(dir + "/results")
	if string(b) != "unhealthy KILL\n" {
		t.Fatalf("post-stop saw %q, want unhealthy and the SIGKILL of the kill timeout (it ignored TERM)", b)
	}
	st := statusJSON(t, sock)
	if st["respawns"].(float64) != 1 || st["failing_streak"].(float64) != 0 || st["health"] == "unhealthy" {
		t.Fatalf("status after the restart: %v", st)
	}
	if !strings.Contains(r.stderr.String(), "unhealthy (3 consecutive failures)") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// ctl status shows health, the failing streak and the last probe's output
// (text and JSON), and exits 3 while unhealthy; upward, STATUS= says so.
// With --health-action none the service keeps running, and is healthy
// again when the probe passes.
func TestHealthStatus(t *testing.T) {
	up := listenUpward(t)
	t.Setenv("NOTIFY_SOCKET", up.path)
	dir := t.TempDir()
	okFile := dir + "/ok"
	os.WriteFile(okFile, nil, 0o644)
	r, sock := startControlled(t, "--health-cmd", `echo "probe says hi"; test -e `+okFile,
		"--health-interval", "100ms", "--health-timeout", "2s", "--health-retries", "2", "--health-action", "none",
		"--", "sleep", "100")
	up.expect("STATUS=running, main process")
	up.expect(", healthy")
	if out, ok := ctl(t, sock, "status"); !ok || !strings.Contains(out, "health healthy") {
		t.Fatalf("ctl status: %q, %v", out, ok)
	}
	os.Remove(okFile)
	up.expect("STATUS=unhealthy (2 consecutive failures)")
	out, ok := ctl(t, sock, "status")
	want := `health unhealthy (2 failing), last probe "probe says hi\nexited with status 1"`
	if ok || !strings.Contains(out, want) {
		t.Fatalf("ctl status while unhealthy: %q (exit 0: %v), want %q and exit 3", out, ok, want)
	}
	st := statusJSON(t, sock)
	if st["health"] != "unhealthy" || st["failing_streak"].(float64) < 2 || st["last_probe_output"] != "probe says hi\nexited with status 1" {
		t.Fatalf("status --json: %v", st)
	}
	if st["pid"].(float64) == 0 || st["respawns"].(float64) != 0 {
		t.Fatalf("--health-action none restarted the service: %v", st)
	}
	os.WriteFile(okFile, nil, 0o644)
	up.expect(", healthy")
	if out, ok := ctl(t, sock, "status"); !ok || !strings.Contains(out, "health healthy") {
		t.Fatalf("ctl status: %q, %v", out, ok)
	}
	waitStderr(t, r, "healthy again")
}

// A command probe that hangs is killed with its group at the timeout and
// reaped: no process or zombie of it is left, and no two probes ever run
// at once. Each probe checks that every earlier one is gone from /proc.
func TestHealthHangingCommandProbe(t *testing.T) {
	dir := t.TempDir()
	pids := dir + "/pids"
	probe := `for p in $(cat ` + pids + ` 2>/dev/null); do [ -e /proc/$p ] && echo "$p" >> ` + dir + `/overlap; done; ` +
		`sleep 100 & echo "$$ $!" >> ` + pids + `; exec sleep 100`
	r := startShim(t, "--health-cmd", probe, "--health-interval", "50ms", "--health-timeout", "200ms",
		"--health-action", "none", "--", "sleep", "100")
	eventually(t, func() (bool, string) {
		b, _ := os.ReadFile(pids)
		return strings.Count(string(b), "\n") >= 4, "fewer than 4 probes ran: " + string(b)
	})
	if b, err := os.ReadFile(dir + "/overlap"); err == nil {
		t.Fatalf("a probe found earlier ones still there (running or zombie): %s", b)
	}
	if !strings.Contains(r.stderr.String(), "timed out after 200ms") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	r.signal(15)
	r.wait()
	r.assertNothingLeft()
}

// --expect health: the service is ready at the first passing probe, not
// before; post-start and READY=1 wait for it, and until then ctl status
// exits 3.
func TestHealthExpectHealth(t *testing.T) {
	up := listenUpward(t)
	t.Setenv("NOTIFY_SOCKET", up.path)
	dir := t.TempDir()
	sock := dir + "/ctl.sock"
	startShim(t, "--control", sock, "--expect", "health", "--health-cmd", "test -e "+dir+"/up",
		"--health-start-interval", "50ms", "--post-start", "touch "+dir+"/post-start", "--", "sleep", "100")
	eventually(t, func() (bool, string) {
		out, ok := ctl(t, sock, "status")
		return !ok && strings.Contains(out, ": starting, pid "), "ctl status before the first passing probe: " + out
	})
	if _, err := os.Stat(dir + "/post-start"); err == nil {
		t.Fatal("post-start ran before the service was ready")
	}
	os.WriteFile(dir+"/up", nil, 0o644)
	up.expect("READY=1")
	eventually(t, func() (bool, string) {
		_, err := os.Stat(dir + "/post-start")
		return err == nil, "post-start did not run once ready"
	})
	if out, ok := ctl(t, sock, "status"); !ok || !strings.Contains(out, "health healthy") {
		t.Fatalf("ctl status once ready: %q, %v", out, ok)
	}
}

// The HTTP probe is written by hand: net/http (and crypto/tls with it)
// would add about 4 MB and break the 4 MiB budget. Nothing upshim links
// may pull them in.
func TestHealthNoNetHTTP(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		skipOrFail(t, "go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "net/http" || pkg == "crypto/tls" {
			t.Errorf("upshim links %s", pkg)
		}
	}
}
