//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers of the real-host tests: units under a real systemd
// (realhost_systemd_test.go) and the container example under podman
// (realhost_podman_test.go). Both run their services in network
// namespaces of their own, which the tests reach through getIn.

// buildStatic builds a package of this module into dir/name as a static
// binary, as a FROM scratch image needs it.
func buildStatic(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// needRoot skips (fails under UPSHIM_REQUIRE_ALL=1) unless the test runs
// as root and every command in cmds is installed.
func needRoot(t *testing.T, what string, cmds ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "%s needs root", what)
	}
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil && !fileExists(c) {
			skipOrFail(t, "%s needs %s, which is not installed (see .ci/run)", what, c)
		}
	}
}

// getIn fetches url in the network namespace of pid, once: the service
// must be serving already. It returns the body of a 200 answer.
func getIn(pid int, url string) (string, error) {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialIn(pid, network, addr)
			},
		},
	}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// dialIn connects to addr from the network namespace of pid. The socket
// is made on a thread that joined that namespace; the goroutine ends with
// the thread still locked, so the runtime discards it rather than run
// other goroutines in the wrong namespace.
func dialIn(pid int, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{nil, err}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- result{nil, fmt.Errorf("setns to the network of %d: %v", pid, err)}
			return
		}
		conn, err := net.DialTimeout(network, addr, 5*time.Second)
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// waitFor polls cond every 20 ms until it holds or limit has passed, and
// fails the test with cond's last message then. It is for states that
// only a poll can see (a unit's state, a process gone).
func waitFor(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not after %s: %s", what, limit, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// aliveOf lists the pids that still exist and are not zombies.
func aliveOf(pids []int) []int {
	var alive []int
	for _, pid := range pids {
		if st := procState(fmt.Sprint(pid)); st != 0 && st != 'Z' {
			alive = append(alive, pid)
		}
	}
	return alive
}

// describePids names each pid with its command line, for a message.
func describePids(pids []int) string {
	var d []string
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		d = append(d, fmt.Sprintf("%d %q", pid, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))))
	}
	return strings.Join(d, ", ")
}

// ms shows a duration in milliseconds, for the timings the tests log.
func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
