//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The tests of --watchdog and the health probes. The service is this test
// binary, turned by UPSHIM_HANG_SERVICE into one of the services below
// before any test starts (see hangService). Timings are checked against
// upper bounds with a margin for a loaded machine, and against lower
// bounds only where they are the point (nothing is killed early).

func init() {
	if mode := os.Getenv("UPSHIM_HANG_SERVICE"); mode != "" {
		os.Exit(hangService(strings.Split(mode, ":")))
	}
}

// timingMargin is added to every upper bound: two busy cores can delay a
// timer, a spawn and a pipe by this much between them.
const timingMargin = 2 * time.Second

// hangService is a service that works for a while and then hangs while
// alive, as a deadlocked one does:
//
//	http:N          answers N GETs on fd 3 (--listen) with 200, prints
//	                "hanging", then accepts but never answers, and
//	                ignores SIGTERM
//	ping:N:EVERY    sends WATCHDOG=1 N times, EVERY apart, printing
//	                "ping I" after each, then prints "silent" and stays
//	slowready:WAIT  sends READY=1 after WAIT, prints "ready", then pings
//	                every 100ms for ever, printing "alive" after 2s
//	usec:N          sends WATCHDOG_USEC=N, prints "extended", is silent
//	                for 1.2s, and prints "survived"
//	trigger         sends READY=1 and WATCHDOG=trigger, prints "triggered"
//	extend:N        sends EXTEND_TIMEOUT_USEC=N, waits 1.2s, sends READY=1
//	                and prints "ready"
//	gosystemd       go-systemd's daemon package, as it is: prints "enabled
//	                D ERR" from SdWatchdogEnabled, then pings with SdNotify
//	                every D/4 for 3 D, and prints "alive"
//
// Every mode first prints "env WATCHDOG_USEC=… WATCHDOG_PID=… pid=…
// NOTIFY_SOCKET=…" and, on SIGABRT, prints "got ABRT" and lives on until
// the SIGKILL at the kill timeout.
func hangService(args []string) int {
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	abrt := make(chan os.Signal, 1)
	signal.Notify(abrt, syscall.SIGABRT)
	go func() {
		<-abrt
		say("got ABRT")
	}()
	say("env WATCHDOG_USEC=%s WATCHDOG_PID=%s pid=%d NOTIFY_SOCKET=%s", os.Getenv("WATCHDOG_USEC"),
		os.Getenv("WATCHDOG_PID"), os.Getpid(), os.Getenv("NOTIFY_SOCKET"))
	var conn *net.UnixConn
	notify := func(msg string) {
		if conn == nil {
			var err error
			addr := &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"}
			if conn, err = net.DialUnix("unixgram", nil, addr); err != nil {
				say("notify: %v", err)
				os.Exit(1)
			}
		}
		if _, err := conn.Write([]byte(msg)); err != nil {
			say("notify: %v", err)
		}
	}
	n := func(i int) int {
		v, _ := strconv.Atoi(args[i])
		return v
	}
	d := func(i int) time.Duration {
		v, _ := time.ParseDuration(args[i])
		return v
	}
	switch args[0] {
	case "http":
		ln, err := net.FileListener(os.NewFile(3, "listen"))
		if err != nil {
			say("listen: %v", err)
			return 1
		}
		say("serving %d", os.Getpid())
		var held []net.Conn // open, never answered
		for answered := 0; ; {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			if answered == n(1) {
				say("hanging")
				signal.Ignore(syscall.SIGTERM)
				answered++
			}
			if answered > n(1) {
				held = append(held, c)
				continue
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
			c.Close()
			answered++
		}
	case "ping":
		for i := 1; i <= n(1); i++ {
			notify("WATCHDOG=1")
			say("ping %d", i)
			time.Sleep(d(2))
		}
		say("silent")
	case "slowready":
		time.Sleep(d(1))
		notify("READY=1")
		say("ready")
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			notify("WATCHDOG=1")
			if time.Since(start) > 2*time.Second {
				say("alive")
				start = start.Add(time.Hour)
			}
		}
	case "usec":
		notify("WATCHDOG_USEC=" + args[1])
		say("extended")
		time.Sleep(1200 * time.Millisecond)
		say("survived")
	case "gosystemd":
		d, err := daemon.SdWatchdogEnabled(false)
		say("enabled %s %v", d, err)
		for end := time.Now().Add(3 * d); time.Now().Before(end); time.Sleep(d / 4) {
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
		say("alive")
	case "extend":
		notify("EXTEND_TIMEOUT_USEC=" + args[1])
		time.Sleep(1200 * time.Millisecond)
		notify("READY=1")
		say("ready")
	case "trigger":
		notify("READY=1")
		notify("WATCHDOG=trigger")
		say("triggered")
	default:
		say("unknown UPSHIM_HANG_SERVICE %q", args)
		return 2
	}
	select {}
}

// hangEnv is the --env that makes the service the mode.
func hangEnv(mode string) string { return "--env=UPSHIM_HANG_SERVICE=" + mode }

// lineAt reads lines until one starts with prefix, and says when it came.
func (r *running) lineAt(prefix string) (string, time.Time) {
	r.t.Helper()
	for {
		if l := r.line(); strings.HasPrefix(l, prefix) {
			return l, time.Now()
		}
	}
}

// envOf parses a service's env line.
func envOf(t *testing.T, line string) map[string]string {
	t.Helper()
	_, kv := report(t, line)
	return kv
}

// A service that stops pinging gets the watchdog signal within the
// interval (plus a margin), with WATCHDOG_USEC and WATCHDOG_PID (its own
// pid) in its environment; it is killed at the kill timeout, post-stop
// gets SERVICE_RESULT=watchdog, and it is restarted without --respawn.
func TestWatchdogFiresWhenPingsStop(t *testing.T) {
	dir := t.TempDir()
	const interval = time.Second
	r := startShim(t, "--watchdog", interval.String(), "--kill-timeout", "300ms",
		"--post-stop", `echo "$SERVICE_RESULT $EXIT_STATUS" >> `+dir+`/results`,
		hangEnv("ping:8:100ms"), "--", testBinary(t))
	line, _ := r.lineAt("env ")
	env := envOf(t, line)
	if env["WATCHDOG_USEC"] != "1000000" || env["WATCHDOG_PID"] != env["pid"] || env["NOTIFY_SOCKET"] == "" {
		t.Fatalf("the service's environment: %s", line)
	}
	_, silent := r.lineAt("silent")
	_, abrt := r.lineAt("got ABRT")
	if late := abrt.Sub(silent); late > interval+timingMargin {
		t.Fatalf("the watchdog signal came %s after the last ping, want at most %s + %s", late, interval, timingMargin)
	} else {
		t.Logf("watchdog signal %s after the last ping (--watchdog %s)", late.Round(time.Millisecond), interval)
	}
	line, _ = r.lineAt("env ")
	if again := envOf(t, line); again["pid"] == env["pid"] || again["WATCHDOG_PID"] != again["pid"] {
		t.Fatalf("after the watchdog, the service was not started again with its own WATCHDOG_PID: %s", line)
	}
	if !strings.Contains(r.stderr.String(), "watchdog timeout: no WATCHDOG=1 for 1s; sending ABRT to main process ("+env["pid"]+")") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	b, _ := os.ReadFile(dir + "/results")
	if string(b) != "watchdog KILL\n" {
		t.Fatalf("post-stop saw %q, want the watchdog result and the SIGKILL of the kill timeout", b)
	}
}

// A service that takes several watchdog intervals to become ready is not
// killed: the watchdog is armed once it is ready, and then its pings keep
// it alive.
func TestWatchdogNoKillBeforeReady(t *testing.T) {
	r := startShim(t, "--expect", "notify", "--watchdog", "300ms", "--start-timeout", "30s",
		hangEnv("slowready:1500ms"), "--", testBinary(t))
	line, _ := r.lineAt("env ")
	if env := envOf(t, line); env["WATCHDOG_USEC"] != "300000" {
		t.Fatalf("the service's environment: %s", line)
	}
	for {
		l := r.line()
		if l == "got ABRT" || strings.HasPrefix(l, "env ") {
			t.Fatalf("the service was killed or restarted before it was ready (%q); stderr:\n%s", l, r.stderr)
		}
		if l == "alive" {
			break
		}
	}
	if strings.Contains(r.stderr.String(), "watchdog") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// WATCHDOG_USEC= changes the interval for the run: silence longer than
// --watchdog but shorter than the new interval kills nothing. And
// WATCHDOG=trigger kills at once, even without --watchdog.
func TestWatchdogUsecAndTrigger(t *testing.T) {
	r := startShim(t, "--watchdog", "300ms", hangEnv("usec:5000000"), "--", testBinary(t))
	r.lineAt("extended")
	if l := r.line(); l != "survived" {
		t.Fatalf("got %q before the end of the silence; stderr:\n%s", l, r.stderr)
	}

	r = startShim(t, "--expect", "notify", "--kill-timeout", "300ms", hangEnv("trigger"), "--", testBinary(t))
	r.lineAt("got ABRT")
	waitStderr(t, r, "the service sent WATCHDOG=trigger; sending ABRT")
	r.lineAt("env ") // started again
}

// A Go service written for systemd finds its watchdog with go-systemd's
// daemon package, unmodified (it checks WATCHDOG_PID against its own pid),
// and its pings keep it alive.
func TestWatchdogGoSystemd(t *testing.T) {
	r := startShim(t, "--watchdog", "400ms", hangEnv("gosystemd"), "--", testBinary(t))
	if l, _ := r.lineAt("enabled "); l != "enabled 400ms <nil>" {
		t.Fatalf("SdWatchdogEnabled: %q", l)
	}
	if l := r.line(); l != "alive" {
		t.Fatalf("got %q before 3 intervals of pings were over; stderr:\n%s", l, r.stderr)
	}
}

// EXTEND_TIMEOUT_USEC= while starting pushes --start-timeout back.
func TestWatchdogExtendStartTimeout(t *testing.T) {
	up := listenUpward(t)
	t.Setenv("NOTIFY_SOCKET", up.path)
	r := startShim(t, "--expect", "notify", "--start-timeout", "400ms", hangEnv("extend:5000000"), "--", testBinary(t))
	r.lineAt("env ")
	if l := r.line(); l != "ready" {
		t.Fatalf("got %q; stderr:\n%s", l, r.stderr)
	}
	up.expect("READY=1")
	if strings.Contains(r.stderr.String(), "expected READY=1") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// Pings from outside the main process's tree keep nothing alive.
func TestWatchdogHearsOnlyMainTree(t *testing.T) {
	r := startShim(t, "--watchdog", "500ms", "--kill-timeout", "300ms", hangEnv("ping:0:0s"), "--", testBinary(t))
	line, _ := r.lineAt("env ")
	addr := &net.UnixAddr{Name: envOf(t, line)["NOTIFY_SOCKET"], Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				conn.Write([]byte("WATCHDOG=1"))
			}
		}
	}()
	r.lineAt("got ABRT")
	waitStderr(t, r, "not in the main process's tree: ignored")
}

// Watchdog kills count against the respawn limit: upshim gives up.
func TestWatchdogHitsRespawnLimit(t *testing.T) {
	r := startShim(t, "-C", t.TempDir(), "--watchdog", "200ms", "--respawn-limit", "2/60", "--", "sleep", "100")
	if code := r.wait(); code == 0 {
		t.Fatalf("upshim exited 0 after giving up; stderr:\n%s", r.stderr)
	}
	if n := strings.Count(r.stderr.String(), "watchdog timeout"); n != 3 {
		t.Fatalf("%d watchdog timeouts, want 3; stderr:\n%s", n, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "(watchdog); respawning too fast (3 times within 1m0s), stopped") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}

// With WATCHDOG_USEC from systemd (and no WATCHDOG_PID, or upshim's),
// upshim's loop pings upward every half interval; with another pid's, it
// does not.
func TestWatchdogUpward(t *testing.T) {
	up := listenUpward(t)
	t.Setenv("NOTIFY_SOCKET", up.path)
	t.Setenv("WATCHDOG_USEC", "200000")
	r := startShim(t, hangEnv("ping:0:0s"), "--", testBinary(t))
	start := time.Now()
	for range 3 {
		up.expect("WATCHDOG=1")
	}
	if took := time.Since(start); took > 3*100*time.Millisecond+timingMargin {
		t.Fatalf("3 pings took %s at 100ms", took)
	}
	line, _ := r.lineAt("env ")
	if env := envOf(t, line); env["WATCHDOG_USEC"] != "" || env["WATCHDOG_PID"] != "" {
		t.Fatalf("upshim's own watchdog reached the service: %s", line)
	}
}

// bad values of the watchdog and health flags are usage errors.
func TestWatchdogAndHealthBadValues(t *testing.T) {
	t.Parallel()
	bad := map[string][]string{
		"--watchdog":              {"--watchdog", "-1s"},
		"--watchdog-signal":       {"--watchdog", "1s", "--watchdog-signal", "NOPE"},
		"--watchdog-signal needs": {"--watchdog-signal", "TERM"},
		"--expect health":         {"--expect", "health"},
		"--health-tcp one only":   {"--health-cmd", "true", "--health-tcp", "127.0.0.1:1"},
		"--health-http https":     {"--health-http", "https://127.0.0.1/"},
		"--health-http":           {"--health-http", "127.0.0.1:80"},
		"--health-tcp":            {"--health-tcp", "127.0.0.1"},
		"--health-tcp port":       {"--health-tcp", "127.0.0.1:99999"},
		"--health-cmd":            {"--health-cmd", " "},
		"--health-retries":        {"--health-tcp", "127.0.0.1:1", "--health-retries", "-1"},
		"--health-retries 0":      {"--health-tcp", "127.0.0.1:1", "--health-retries", "0"},
		"--health-interval":       {"--health-tcp", "127.0.0.1:1", "--health-interval", "-2s"},
		"--health-interval 0":     {"--health-tcp", "127.0.0.1:1", "--health-interval", "0"},
		"--health-timeout":        {"--health-tcp", "127.0.0.1:1", "--health-timeout", "-1"},
		"--health-start-period":   {"--health-tcp", "127.0.0.1:1", "--health-start-period", "-1s"},
		"--health-start-interval": {"--health-tcp", "127.0.0.1:1", "--health-start-interval", "0s"},
		"--health-action":         {"--health-tcp", "127.0.0.1:1", "--health-action", "reboot"},
		"--health-timeout needs":  {"--health-timeout", "1s"},
	}
	for name, args := range bad {
		r := startShim(t, append(args, "--", "true")...)
		if code := r.wait(); code != 2 {
			t.Errorf("%s: exit status %d, want 2; stderr: %s", name, code, r.stderr)
		}
		flag := strings.Fields(name)[0]
		if !strings.Contains(r.stderr.String(), flag) || strings.Count(r.stderr.String(), "\n") != 1 {
			t.Errorf("%s: want one line naming %s; stderr: %s", name, flag, r.stderr)
		}
	}
}

// generate systemd asks systemd to watch upshim when upshim watches its
// service; generate dockerfile adds no HEALTHCHECK that would probe twice.
func TestWatchdogGenerate(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--watchdog", "10s"}, {"--health-tcp", "127.0.0.1:80"}} {
		out, err := generateOut(t, append([]string{"generate", "systemd"}, append(args, "--", "/bin/sleep", "1")...)...)
		if err != nil || !strings.Contains(out, "\nWatchdogSec=30\n") {
			t.Errorf("generate systemd %s: %v\n%s", args, err, out)
		}
	}
	out, _ := generateOut(t, "generate", "systemd", "--", "/bin/sleep", "1")
	if strings.Contains(out, "Watchdog") {
		t.Errorf("generate systemd without --watchdog or a probe:\n%s", out)
	}
	out, err := generateOut(t, "generate", "dockerfile", "--health-http", "http://127.0.0.1:8080/healthz", "--", "/bin/sleep", "1")
	if err != nil || strings.Contains(out, "\nHEALTHCHECK") || !strings.Contains(out, "no HEALTHCHECK") {
		t.Errorf("generate dockerfile: %v\n%s", err, out)
	}
}

// generateOut runs upshim with args and returns its stdout.
func generateOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r := startShim(t, args...)
	var b strings.Builder
	for l := range r.lines {
		b.WriteString(l + "\n")
	}
	if code := r.wait(); code != 0 {
		return b.String(), fmt.Errorf("exit status %d: %s", code, r.stderr)
	}
	return b.String(), nil
}
