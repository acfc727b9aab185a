//go:build linux

package e2e

import (
	"bufio"
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

// Real daemons as an upstart user ran them, each forking itself into the
// background: they must serve as soon as upshim says they are ready,
// reload, and leave nothing behind on stop. .ci/run installs them from
// Debian (nginx-light, redis-server, memcached).

// freePort returns a loopback port that nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemonBinary finds a daemon, or skips (fails in CI) without it.
func daemonBinary(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	skipOrFail(t, "%s not installed (Debian package: see .ci/run)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ask sends request to a loopback port once, with no retry: the daemon
// must already be serving, and returns the first line of the answer.
func ask(t *testing.T, port int, request string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitLimit(t))
	if err != nil {
		t.Fatalf("not serving once upshim said it was ready: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitLimit(t)))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("answer to %q: %v", request, err)
	}
	return strings.TrimSpace(line)
}

// startDaemon runs upshim with args and --ready-fd, and returns once upshim
// says the service is ready.
func startDaemon(t *testing.T, args ...string) *running {
	t.Helper()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(upshimBinary(t), append([]string{"-v", "--ready-fd", "3"}, args...)...)
	cmd.ExtraFiles = []*os.File{readyW}
	r := startShimCmd(t, cmd)
	readyW.Close()
	readyR.SetReadDeadline(time.Now().Add(waitLimit(t)))
	if _, err := readyR.Read(make([]byte, 1)); err != nil {
		t.Fatalf("upshim never said ready: %v; stderr:\n%s", err, r.stderr)
	}
	readyR.Close()
	return r
}

// mainPid is the pid upshim says it made the main process. upshim says so
// before it writes --ready-fd, but its stderr reaches the test through a
// copy of its own, which may come later: it is waited for.
func mainPid(t *testing.T, r *running) int {
	t.Helper()
	waitStderr(t, r, "main process is ")
	s := r.stderr.String()
	i := strings.LastIndex(s, "main process is ")
	if i < 0 {
		t.Fatalf("upshim did not say which process is the main one:\n%s", s)
	}
	pid, _ := strconv.Atoi(strings.Fields(s[i+len("main process is "):])[0])
	return pid
}

// stopAndCheck stops upshim and checks that the given processes are gone.
func stopAndCheck(t *testing.T, r *running, pids ...int) {
	t.Helper()
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d (%s) outlived upshim", pid, processName(pid))
		}
	}
	r.assertNothingLeft()
}

// childPids lists the children of pid.
func childPids(pid int) []int {
	var kids []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			kids = append(kids, n)
		}
	}
	return kids
}

// nginx as the seed document's job ran it: daemon on, expect fork, the
// configuration checked by pre-start; a reload keeps the master and
// replaces the workers.
func TestNginx(t *testing.T) {
	t.Parallel()
	nginx := daemonBinary(t, "nginx")
	dir, port := t.TempDir(), freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`daemon on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
worker_processes 2;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	server { listen 127.0.0.1:%[2]d; location / { return 200 "hello from nginx\n"; } }
}
`, dir, port)), 0o644)
	check := fmt.Sprintf("%s -t -q -c %s -p %s", nginx, conf, dir)

	r := startDaemon(t, "--expect", "fork", "--pre-start", check, "--", nginx, "-c", conf, "-p", dir)
	if got := ask(t, port, "GET / HTTP/1.0\r\n\r\n"); !strings.Contains(got, "200") {
		t.Fatalf("nginx answered %q", got)
	}
	master := mainPid(t, r)
	workers := childPids(master)
	if len(workers) != 2 {
		t.Fatalf("master %d has workers %v", master, workers)
	}

	r.signal(syscall.SIGHUP)
	eventually(t, func() (bool, string) {
		now := childPids(master)
		for _, w := range now {
			if w == workers[0] || w == workers[1] {
				return false, fmt.Sprintf("workers %v still there after reload (now %v)", workers, now)
			}
		}
		return len(now) == 2, fmt.Sprintf("workers now %v", now)
	})
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", master)); err != nil {
		t.Fatalf("the master did not survive the reload")
	}
	if got := ask(t, port, "GET / HTTP/1.0\r\n\r\n"); !strings.Contains(got, "200") {
		t.Fatalf("after reload nginx answered %q", got)
	}
	stopAndCheck(t, r, append(childPids(master), master)...)

	// A broken configuration fails pre-start: nginx never runs.
	os.WriteFile(conf, []byte("this is not nginx\n"), 0o644)
	r = startShim(t, "--expect", "fork", "--pre-start", check, "--", nginx, "-c", conf, "-p", dir)
	if code := r.wait(); code != 1 {
		t.Fatalf("exit status %d with a broken configuration; stderr:\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "pre-start hook") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// redis-server --daemonize yes with a pidfile.
func TestRedis(t *testing.T) {
	t.Parallel()
	redis := daemonBinary(t, "redis-server")
	dir, port := t.TempDir(), freePort(t)
	pidfile := filepath.Join(dir, "redis.pid")
	r := startDaemon(t, "--expect", "fork", "--pidfile", pidfile, "--", redis,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--pidfile", pidfile,
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--save", "")
	if got := ask(t, port, "PING\r\n"); got != "+PONG" {
		t.Fatalf("redis answered %q", got)
	}
	pid := mainPid(t, r)
	r.signal(syscall.SIGHUP) // redis ignores it: reloading changes nothing
	if got := ask(t, port, "PING\r\n"); got != "+PONG" || mainPid(t, r) != pid {
		t.Fatalf("after HUP redis answered %q", got)
	}
	stopAndCheck(t, r, pid)
}

// memcached -d with a pidfile.
func TestMemcached(t *testing.T) {
	t.Parallel()
	memcached := daemonBinary(t, "memcached")
	dir, port := t.TempDir(), freePort(t)
	pidfile := filepath.Join(dir, "memcached.pid")
	args := []string{"--expect", "fork", "--pidfile", pidfile, "--", memcached,
		"-d", "-p", strconv.Itoa(port), "-l", "127.0.0.1", "-U", "0", "-P", pidfile}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	r := startDaemon(t, args...)
	if got := ask(t, port, "version\r\n"); !strings.HasPrefix(got, "VERSION ") {
		t.Fatalf("memcached answered %q", got)
	}
	pid := mainPid(t, r)
	r.signal(syscall.SIGHUP)
	if got := ask(t, port, "version\r\n"); !strings.HasPrefix(got, "VERSION ") {
		t.Fatalf("after HUP memcached answered %q", got)
	}
	stopAndCheck(t, r, pid)
}
