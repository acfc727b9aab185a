//go:build linux

package shim

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseHTTPURL(t *testing.T) {
	good := []struct{ url, addr, host, path string }{
		{"http://127.0.0.1:8080/healthz", "127.0.0.1:8080", "127.0.0.1:8080", "/healthz"},
		{"http://localhost/", "localhost:80", "localhost", "/"},
		{"http://localhost", "localhost:80", "localhost", "/"},
		{"http://[::1]:9000/a/b?c=d#frag", "[::1]:9000", "[::1]:9000", "/a/b?c=d"},
		{"http://[::1]", "[::1]:80", "[::1]", "/"},
		{"http://127.0.0.1:81?x", "127.0.0.1:81", "127.0.0.1:81", "/?x"},
	}
	for _, g := range good {
		addr, host, path, err := parseHTTPURL(g.url)
		if err != nil || addr != g.addr || host != g.host || path != g.path {
			t.Errorf("%s: %q %q %q %v, want %q %q %q", g.url, addr, host, path, err, g.addr, g.host, g.path)
		}
	}
	for _, bad := range []string{"https://127.0.0.1/", "127.0.0.1:80", "http://", "http://:80/", "http://::1/",
		"http://127.0.0.1:0/", "http://127.0.0.1:65536/", "http://u:p@127.0.0.1/", "http://127.0.0.1/a b",
		"http://127.0.0.1/\n"} {
		if _, _, _, err := parseHTTPURL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := parseHostPort("127.0.0.1", ""); err == nil {
		t.Error("--health-tcp without a port: no error")
	}
}

// serveOnce answers every connection on a loopback port with answer (or
// holds it without answering when answer is empty) and returns the
// address and the request lines it read.
func serveOnce(t *testing.T, answer string) (string, chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	reqs := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			reqs <- line
			if answer == "" {
				t.Cleanup(func() { c.Close() })
				continue
			}
			c.Write([]byte(answer))
			c.Close()
		}
	}()
	return ln.Addr().String(), reqs
}

// The HTTP probe: 200-399 pass, the rest fail, redirects are not
// followed, a silent server times out, and garbage is refused.
func TestNetProbeHTTP(t *testing.T) {
	cases := []struct {
		answer string
		ok     bool
		out    string
	}{
		{"HTTP/1.1 200 OK\r\n\r\n", true, "HTTP/1.1 200 OK"},
		{"HTTP/1.0 204 No Content\r\n\r\n", true, "HTTP/1.0 204 No Content"},
		{"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n\r\n", true, "HTTP/1.1 302 Found"},
		{"HTTP/1.1 404 Not Found\r\n\r\n", false, "HTTP/1.1 404 Not Found"},
		{"HTTP/1.1 503 Service Unavailable\r\n\r\n", false, "HTTP/1.1 503 Service Unavailable"},
		{"HTTP/1.1 200\r\n\r\n", true, "HTTP/1.1 200"},
		{"SSH-2.0-OpenSSH\r\n", false, "not an HTTP/1 status line"},
		{"HTTP/1.1 2", false, "ended in its status line"},
		{"", false, "i/o timeout"},
	}
	for _, c := range cases {
		addr, reqs := serveOnce(t, c.answer)
		p := HealthProbe{Kind: ProbeHTTP, Addr: addr, Host: addr, Path: "/healthz?x=1"}
		ok, out := netProbe(p, time.Now().Add(300*time.Millisecond))
		if ok != c.ok || !strings.Contains(out, c.out) {
			t.Errorf("answer %q: %v %q, want %v and %q", c.answer, ok, out, c.ok, c.out)
		}
		if req := <-reqs; req != "GET /healthz?x=1 HTTP/1.1\r\n" {
			t.Errorf("request line %q", req)
		}
	}
	// Nothing listening: refused at once.
	addr, _ := serveOnce(t, "x")
	ok, out := netProbe(HealthProbe{Kind: ProbeHTTP, Addr: "127.0.0.1:1", Host: addr, Path: "/"}, time.Now().Add(time.Second))
	if ok || !strings.Contains(out, "refused") {
		t.Errorf("closed port: %v %q", ok, out)
	}
}

func TestNetProbeTCP(t *testing.T) {
	addr, _ := serveOnce(t, "x")
	if ok, out := netProbe(HealthProbe{Kind: ProbeTCP, Addr: addr}, time.Now().Add(time.Second)); !ok {
		t.Errorf("open port: %q", out)
	}
	if ok, out := netProbe(HealthProbe{Kind: ProbeTCP, Addr: "127.0.0.1:1"}, time.Now().Add(time.Second)); ok {
		t.Errorf("closed port passed: %q", out)
	}
}

// The streak and the start period are the run's own: after a health
// restart the new run's failures in its start period do not count, and
// its streak starts from 0.
func TestHealthStreakAndStartPeriodPerRun(t *testing.T) {
	cfg := gridConfig()
	probeHTTP(cfg)
	cfg.HealthStartPeriod = Duration(10 * time.Second)
	cfg.Respawn, cfg.RespawnDelay = false, 0
	m := newMachine(cfg, false)
	at := t0
	step := func(ev event) []effect {
		at = at.Add(time.Second)
		ev.at = at
		return m.step(inFlight(m, ev))
	}
	fail := func() {
		step(evProbeDue)
		step(evProbeFailed)
	}
	step(evStarted)
	step(event{kind: evSpawned, pid: mainPid})
	for range 4 { // 8 s of the 10 s start period: not counted
		fail()
	}
	if m.inst.streak != 0 || m.inst.health != healthStarting {
		t.Fatalf("in the start period: streak %d, health %s", m.inst.streak, m.inst.health)
	}
	for range 3 {
		fail()
	}
	if m.phase != phStopping || m.inst.ending != "unhealthy" {
		t.Fatalf("after 3 counted failures: %s", stateName(m))
	}
	// The main process dies of the kill signal; no --respawn, and yet it
	// starts again, the failure counted in the window.
	effs := step(exitOf(mainPid, killedBy(syscall.SIGTERM)))
	if m.phase != phStarting || m.window.count != 1 {
		t.Fatalf("after the restart: %s, window %d; effects %v", stateName(m), m.window.count, effs)
	}
	step(event{kind: evSpawned, pid: newPid})
	if m.inst.streak != 0 || m.inst.health != healthStarting || m.inst.ending != "" {
		t.Fatalf("the new run: %s", stateName(m))
	}
	fail()
	if m.inst.streak != 0 {
		t.Fatalf("a failure in the new run's start period counted: %s", stateName(m))
	}
}

// A forking daemon that re-forks keeps its watchdog and its probes: the
// successor gets a full interval, and probing goes on, even if a deadline
// passed while the successor was looked for.
func TestWatchdogAndProbesFollowRefork(t *testing.T) {
	cfg := gridConfig()
	watchdog(cfg)
	probeHTTP(cfg)
	cfg.Expect = ExpectFork
	m := newMachine(cfg, false)
	at := t0
	step := func(ev event) {
		at = at.Add(time.Second)
		ev.at = at
		m.step(inFlight(m, ev))
	}
	step(evStarted)
	step(event{kind: evSpawned, pid: mainPid})
	step(exitOf(mainPid, exited(0))) // the launcher
	step(event{kind: evFound, pid: newPid, pgid: newPid})
	if m.phase != phRunning || m.armed[dlWatchdog.slot()] != dlWatchdog || m.armed[dlProbe.slot()] != dlProbe {
		t.Fatalf("ready: %s, armed %v", stateName(m), m.armed)
	}
	step(exitOf(newPid, exited(0))) // re-forks
	step(event{kind: evNotFound, retry: true, err: errTest})
	if m.phase != phFollowing {
		t.Fatalf("re-fork: %s", stateName(m))
	}
	step(event{kind: evDeadline, dl: dlWatchdog}) // while following: ignored
	step(evProbeDue)                              // likewise
	step(event{kind: evFound, pid: 301, pgid: 301})
	if m.phase != phRunning || m.armed[dlWatchdog.slot()] != dlWatchdog || m.armed[dlProbe.slot()] != dlProbe {
		t.Fatalf("following 301: %s, armed %v", stateName(m), m.armed)
	}
}

var errTest = errors.New("--pidfile pf: no such file or directory")
