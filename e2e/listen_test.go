//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// The tests of --listen: sockets upshim binds once and hands to every
// instance of the service with systemd's socket-activation protocol. The
// service is this test binary, turned by UPSHIM_LISTEN_PROBE into one of
// the probes below before any test starts (see listenProbe).

func init() {
	if mode := os.Getenv("UPSHIM_LISTEN_PROBE"); mode != "" {
		os.Exit(listenProbe(mode, os.Args[1:]))
	}
}

// listenProbe is the service (or hook) of the --listen tests:
//
//	report ROLE THEN  prints one line on what it got (see describeFDs),
//	                  then THEN: "exit", "wait" (for SIGTERM), or
//	                  "gofail" (net.FileListener on fd 3, as a Go service
//	                  does, which sets O_NONBLOCK, then exit 1)
//	serve [N]         accepts on fd 3 (or binds $ADDR without LISTEN_FDS)
//	                  and answers each connection with its pid; with N,
//	                  exits 1 after the Nth connection, a crash
//	gosystemd         takes its sockets with go-systemd's activation
//	                  package, as it is, and answers on each with its name
func listenProbe(mode string, args []string) int {
	switch mode {
	case "report":
		fmt.Println(args[0] + " " + describeFDs())
		switch args[1] {
		case "wait":
			c := make(chan os.Signal, 1)
			signal.Notify(c, syscall.SIGTERM)
			<-c
		case "gofail":
			if _, err := net.FileListener(os.NewFile(3, "listen")); err != nil {
				fmt.Println("FileListener:", err)
			}
			return 1
		}
		return 0
	case "serve":
		crashAfter := 0
		if len(args) > 0 {
			crashAfter, _ = strconv.Atoi(args[0])
		}
		return probeServe(crashAfter)
	case "gosystemd":
		return probeGoSystemd()
	}
	fmt.Fprintln(os.Stderr, "unknown UPSHIM_LISTEN_PROBE", mode)
	return 2
}

// describeFDs says what the process got: its pid, the socket-activation
// variables, any variable meant for upshim that leaked, the descriptors
// it would pass on, and for each above 2 what it is bound to and whether it
// is non-blocking:
//
//	pid=P LISTEN_PID=P LISTEN_FDS=2 LISTEN_FDNAMES=web:unknown leaked= open=0,1,2,3,4 3=127.0.0.1:80,blocking …
func describeFDs() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid=%d", os.Getpid())
	for _, name := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		fmt.Fprintf(&b, " %s=%s", name, os.Getenv(name))
	}
	var leaked []string
	for _, name := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PIDFDID"} {
		if _, ok := os.LookupEnv(name); ok {
			leaked = append(leaked, name)
		}
	}
	fmt.Fprintf(&b, " leaked=%s", strings.Join(leaked, ","))
	// What an exec passes on: the descriptors without close-on-exec
	// (the Go runtime has opened its own by now, close-on-exec).
	var fds []int
	for _, fd := range openFDs() {
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	open := make([]string, len(fds))
	for i, fd := range fds {
		open[i] = strconv.Itoa(fd)
	}
	fmt.Fprintf(&b, " open=%s", strings.Join(open, ","))
	for _, fd := range fds {
		if fd < 3 {
			continue
		}
		what := "not-a-socket"
		if sa, err := unix.Getsockname(fd); err == nil {
			what = sockaddrString(sa)
		}
		blocking := "blocking"
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
			blocking = "nonblock"
		}
		fmt.Fprintf(&b, " %d=%s,%s", fd, what, blocking)
	}
	return b.String()
}

// openFDs lists the process's open descriptors, but the one that reads
// the list.
func openFDs() []int {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	self := int(dir.Fd())
	var fds []int
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd != self {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds
}

// passedOn is the list of descriptors a report says were passed on, less
// those that whoever runs the tests passed to the test binary without
// close-on-exec (a CI runner's, a shell's): upshim inherits and passes
// those on like any program, and they are not the sockets'.
func passedOn(t *testing.T, open string) string {
	t.Helper()
	stray := map[string]bool{}
	for _, fd := range openFDs() {
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC == 0 && fd > 2 {
			stray[strconv.Itoa(fd)] = true
		}
	}
	var out []string
	for _, fd := range strings.Split(open, ",") {
		if !stray[fd] {
			out = append(out, fd)
		}
	}
	return strings.Join(out, ",")
}

func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	case *unix.SockaddrUnix:
		return "unix:" + sa.Name
	}
	return "?"
}

// probeServe answers every connection with its pid, one at a time, on the
// socket it was passed or, without one, on $ADDR, which it binds itself as
// a service without --listen does. With crashAfter, it exits 1 once it has
// answered that many: no connection is left accepted and unanswered.
func probeServe(crashAfter int) int {
	var ln net.Listener
	var err error
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && os.Getenv("LISTEN_FDS") != "" {
		ln, err = net.FileListener(os.NewFile(3, "listen"))
	} else {
		ln, err = net.Listen("tcp", os.Getenv("ADDR"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe serve:", err)
		return 1
	}
	answer := []byte(strconv.Itoa(os.Getpid()) + "\n")
	for n := 1; ; n++ {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe serve:", err)
			return 1
		}
		c.Write(answer)
		c.Close()
		if crashAfter > 0 && n >= crashAfter {
			return 1
		}
	}
}

// probeGoSystemd is a Go service written for systemd, unmodified: it takes
// its listeners from go-systemd's activation package, then answers each
// connection with the name of the socket it came on. It prints what it
// got, and whether the package left LISTEN_* for its children.
func probeGoSystemd() int {
	byName, err := activation.ListenersWithNames()
	if err != nil {
		fmt.Println("activation:", err)
		return 1
	}
	var names []string
	for name, lns := range byName {
		for _, ln := range lns {
			names = append(names, name+"="+ln.Addr().String())
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					io.WriteString(c, name+"\n")
					c.Close()
				}
			}()
		}
	}
	slices.Sort(names)
	fmt.Printf("listeners %s env-left=%q\n", strings.Join(names, " "), os.Getenv("LISTEN_FDS"))
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
	return 0
}

// report parses a report line: ROLE key=value….
func report(t *testing.T, line string) (role string, kv map[string]string) {
	t.Helper()
	fields := strings.Fields(line)
	if len(fields) < 2 {
		t.Fatalf("not a report: %q", line)
	}
	kv = map[string]string{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	return fields[0], kv
}

// probeEnv is the --env that makes the service the probe mode.
func probeEnv(mode string) string { return "--env=UPSHIM_LISTEN_PROBE=" + mode }

// testBinary is this test binary, which the probes are.
func testBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// heldAddrs reads the held sockets' addresses from ctl status --json.
func heldAddrs(t *testing.T, sock string) []string {
	t.Helper()
	var addrs []string
	listen, _ := statusJSON(t, sock)["listen"].([]any)
	for _, l := range listen {
		addrs = append(addrs, l.(map[string]any)["addr"].(string))
	}
	return addrs
}

// answer connects to addr and reads the service's one-line answer.
func answer(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The protocol as systemd speaks it: fds 3 and 4 in flag order, blocking
// and inheritable, nothing else open, LISTEN_FDS, LISTEN_FDNAMES, and
// LISTEN_PID equal to the service's own pid; the same through the setup
// helper's other work (--user, --nice, --umask, --limit, --chdir).
func TestListenPassesSocketsAsSystemd(t *testing.T) {
	t.Parallel()
	abstract := fmt.Sprintf("unix:@upshim-test-%d", time.Now().UnixNano())
	for name, extra := range map[string][]string{
		"plain": nil,
		"setup": {"--user", "upshimtest", "--nice", "5", "--umask", "027", "--limit", "nofile=512", "--chdir", "/"},
	} {
		t.Run(name, func(t *testing.T) {
			probe := testBinary(t)
			if extra != nil {
				testUser(t)
				probe = publicCopy(t, "listen-probe")
			}
			args := append([]string{"--listen", "web=127.0.0.1:0", "--listen", abstract + name, probeEnv("report")}, extra...)
			r, sock := startControlled(t, append(args, "--", probe, "service", "wait")...)
			_, got := report(t, r.line())
			addrs := heldAddrs(t, sock)
			want := map[string]string{
				"LISTEN_PID": got["pid"], "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:unknown", "leaked": "",
				"3": addrs[0] + ",blocking",
				"4": abstract + name + ",blocking",
			}
			if open := passedOn(t, got["open"]); open != "0,1,2,3,4" {
				t.Errorf("descriptors passed on: %s, want 0,1,2,3,4", open)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
			if !strings.HasPrefix(addrs[0], "127.0.0.1:") || addrs[0] == "127.0.0.1:0" {
				t.Errorf("ctl status says fd 3 is %q", addrs[0])
			}
			r.signal(syscall.SIGTERM)
			r.wait()
		})
	}
}

// Hooks get neither the sockets nor the variables, and nothing meant for
// upshim (LISTEN_*, WATCHDOG_*, NOTIFY_SOCKET) reaches the service or its
// hooks.
func TestListenHooksGetNoSockets(t *testing.T) {
	t.Parallel()
	probe := testBinary(t)
	cmd := exec.Command(upshimBinary(t), "--listen", "127.0.0.1:0", probeEnv("report"),
		"--pre-start", probe+" pre-start exit", "--post-stop", probe+" post-stop exit",
		"--", probe, "service", "exit")
	// As upshim would find them under systemd: meant for it, not for
	// the service. LISTEN_PID names another process: nothing to adopt.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=/nonexistent/notify", "WATCHDOG_USEC=1000000", "WATCHDOG_PID=1",
		"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=stray", "LISTEN_PIDFDID=42")
	r := startShimCmd(t, cmd)
	for _, role := range []string{"pre-start", "service", "post-stop"} {
		gotRole, got := report(t, r.line())
		if gotRole != role {
			t.Fatalf("report from %s, want %s", gotRole, role)
		}
		if got["leaked"] != "" {
			t.Errorf("%s got %s", role, got["leaked"])
		}
		if role == "service" {
			if passedOn(t, got["open"]) != "0,1,2,3" || got["LISTEN_FDS"] != "1" || got["LISTEN_FDNAMES"] != "unknown" {
				t.Errorf("service: %v", got)
			}
			continue
		}
		if passedOn(t, got["open"]) != "0,1,2" || got["LISTEN_PID"]+got["LISTEN_FDS"]+got["LISTEN_FDNAMES"] != "" {
			t.Errorf("%s got sockets or their variables: %v", role, got)
		}
	}
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
}

// A Go service leaves O_NONBLOCK set on the socket it shares with upshim
// (net.FileListener sets it on the open file description); the next
// instance, which may be written for a blocking accept, gets it blocking
// again.
func TestListenClearsNonblockBeforeEverySpawn(t *testing.T) {
	t.Parallel()
	probe := testBinary(t)
	r := startShim(t, "--listen", "127.0.0.1:0", "--respawn-limit", "unlimited", probeEnv("report"),
		"--", "sh", "-c", `if [ -e "$0" ]; then exec "$1" again wait; fi; : > "$0"; exec "$1" first gofail`,
		filepath.Join(t.TempDir(), "ran"), probe)
	for _, role := range []string{"first", "again"} {
		gotRole, got := report(t, r.line())
		if gotRole != role || !strings.HasSuffix(got["3"], ",blocking") {
			t.Errorf("%s: fd 3 is %q", gotRole, got["3"])
		}
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// waitBound waits until something takes connections on addr, and reads
// the answer.
func waitBound(t *testing.T, addr string) {
	t.Helper()
	eventually(t, func() (bool, string) {
		c, err := net.DialTimeout("tcp", addr, deadline)
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(deadline))
		io.ReadAll(c)
		return true, ""
	})
}

// dialRefused reports whether connecting to addr is refused at once.
func dialRefused(t *testing.T, network, addr string) bool {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 100*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// The socket stays bound, and clients queue in it, through a crash and the
// respawn delay, ctl stop and start, and ctl restart; it closes when
// upshim exits, so that clients are refused at once rather than left
// waiting.
func TestListenHeldThroughRespawnsAndStops(t *testing.T) {
	t.Parallel()
	r, sock := startControlled(t, "--listen", "127.0.0.1:0", "--respawn", "--respawn-delay", "2s", probeEnv("serve"),
		"--", testBinary(t))
	addr := heldAddrs(t, sock)[0]
	pids := map[string]bool{answer(t, "tcp", addr): true}
	// Each client connects while no instance runs, and is answered by
	// the next one.
	queued := func(why string, wake ...string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, deadline)
		if err != nil {
			t.Fatalf("%s: %v", why, err)
		}
		defer c.Close()
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			t.Fatalf("%s: another process could bind %s", why, addr)
		}
		woken := make(chan string, 1)
		go func() {
			out, ok := "", true
			if len(wake) > 0 {
				out, ok = ctl(t, sock, wake...)
			}
			if !ok {
				woken <- out
			}
			close(woken)
		}()
		c.SetDeadline(time.Now().Add(deadline))
		b, err := io.ReadAll(c)
		pid := strings.TrimSpace(string(b))
		if err != nil || pid == "" || pids[pid] {
			t.Fatalf("%s: answer %q, %v (earlier instances %v)", why, pid, err, pids)
		}
		pids[pid] = true
		if out, failed := <-woken; failed {
			t.Fatalf("%s: ctl %v: %s", why, wake, out)
		}
	}
	mustCtl(t, sock, "stop")
	queued("down", "start")
	mustCtl(t, sock, "restart")
	pids[answer(t, "tcp", addr)] = true
	pid, _ := statusJSON(t, sock)["pid"].(float64)
	if pid < 2 {
		t.Fatalf("status says pid %v", pid)
	}
	syscall.Kill(int(pid), syscall.SIGKILL)
	eventually(t, func() (bool, string) {
		st := statusJSON(t, sock)
		return st["state"] == "backoff", fmt.Sprintf("not in backoff: %v", st)
	})
	queued("backoff")
	if len(pids) != 4 {
		t.Fatalf("instances %v, want 4", pids)
	}
	mustCtl(t, sock, "exit")
	r.wait()
	if !dialRefused(t, "tcp", addr) {
		t.Fatalf("%s still takes connections after upshim exited", addr)
	}
}

// When upshim gives up on the service, it lets go of the socket.
func TestListenClosedWhenUpshimGivesUp(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := startShim(t, "--listen", addr, "--respawn-limit", "1/60", probeEnv("serve"), "--", testBinary(t), "1")
	waitBound(t, addr)
	answer(t, "tcp", addr)
	if code := r.wait(); code != 1 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	if !dialRefused(t, "tcp", addr) {
		t.Fatalf("%s still takes connections after upshim gave up", addr)
	}
}

// A malformed address is a usage error naming the flag; one upshim cannot
// bind (in use, absent, forbidden) exits 1 naming it, before anything
// runs.
func TestListenBadAddresses(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"8080", "localhost:8080", "127.0.0.1:99999", "127.0.0.1:http", "::1:8080",
		"[127.0.0.1]:80", "tcp4:[::1]:80", "tcp6:127.0.0.1:80", "unix:", "unix:@", "bad\x01name=:80",
		"unix:/" + strings.Repeat("x", 200)} {
		code, stderr := runUpshim(t, "--listen", bad, "--", "true")
		if code != 2 || !strings.HasPrefix(stderr, fmt.Sprintf("upshim: --listen %q: ", bad)) {
			t.Errorf("--listen %q: exit %d, %q", bad, code, stderr)
		}
	}
	for _, args := range [][]string{{"--listen-backlog", "5"}, {"--listen-mode", "0600"},
		{"--listen", ":0", "--listen-backlog", "0"}, {"--listen", ":0", "--listen-mode", "999"}} {
		if code, stderr := runUpshim(t, append(args, "--", "true")...); code != 2 || !strings.Contains(stderr, args[len(args)-2]) {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	os.WriteFile(dir+"/file", nil, 0o644)
	marker := dir + "/ran"
	for addr, why := range map[string]string{
		taken.Addr().String():   "cannot bind: address already in use",
		"192.0.2.1:8080":        "cannot bind: cannot assign requested address", // TEST-NET-1, on no interface
		"unix:" + dir + "/no/s": "cannot bind: no such file or directory",
		"unix:" + dir + "/file": "exists and is not a socket",
	} {
		code, stderr := runUpshim(t, "--listen", "127.0.0.1:0", "--listen", addr, "--pre-start", "touch "+marker, "--", "true")
		if code != 1 || stderr != fmt.Sprintf("upshim: --listen %s: %s\n", addr, why) {
			t.Errorf("--listen %s: exit %d, %q", addr, code, stderr)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the pre-start hook ran")
	}

	// Forbidden: a port below 1024, for a user who is not root.
	uid, gid := testUser(t)
	upshim := filepath.Join(publicDir(t, 0o755), "upshim")
	installExecutable(t, upshimBinary(t), upshim)
	cmd := exec.Command(upshim, "--listen", "127.0.0.1:80", "--", "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || string(out) != "upshim: --listen 127.0.0.1:80: cannot bind: permission denied\n" {
		t.Errorf("as upshimtest: %v %q", err, out)
	}
}

// A unix socket path is never bound through a link, and never taken from
// a live socket; a stale one (its upshim died) is replaced, with
// --listen-mode whatever upshim's umask.
func TestListenUnixPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target, link := dir+"/target", dir+"/link.sock"
	os.Symlink(target, link)
	code, stderr := runUpshim(t, "--listen", "unix:"+link, "--", "true")
	if code != 1 || !strings.Contains(stderr, "is a symbolic link") {
		t.Errorf("link: exit %d, %q", code, stderr)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("a socket was bound where the link points")
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was removed or replaced")
	}

	live := dir + "/live.sock"
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stderr = runUpshim(t, "--listen", "unix:"+live, "--", "true")
	if code != 1 || !strings.Contains(stderr, "a live socket is there") {
		t.Errorf("live: exit %d, %q", code, stderr)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if c, err := net.Dial("unix", live); err != nil {
		t.Errorf("the live socket no longer answers: %v", err)
	} else {
		c.Close()
	}

	stale := dir + "/stale.sock"
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd) // the file stays, and nobody answers
	for _, mode := range []string{"", "0640"} {
		args := []string{"--listen", "unix:" + stale}
		want := "666"
		if mode != "" {
			args, want = append(args, "--listen-mode", mode), mode[1:]
		}
		// Under umask 077, which would leave 0600: upshim's umask does
		// not count.
		cmd := exec.Command("sh", "-c", `umask 077; exec "$@"`, "sh", upshimBinary(t))
		cmd.Args = append(cmd.Args, append(args, "--", "stat", "-c", "%a %F", stale)...)
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != want+" socket\n" {
			t.Errorf("--listen-mode %q: %v %q, want %s", mode, err, out, want)
		}
	}
}

// ctl status lists the held sockets; generate carries --listen, with a
// unix path made absolute, and a Dockerfile EXPOSEs the ports.
func TestListenStatusAndGenerate(t *testing.T) {
	t.Parallel()
	abstract := fmt.Sprintf("unix:@upshim-status-%d", time.Now().UnixNano())
	r, sock := startControlled(t, "--listen", "web=127.0.0.1:0", "--listen", abstract, "--", "sleep", "300")
	addr := heldAddrs(t, sock)[0]
	text := mustCtl(t, sock, "status")
	if want := fmt.Sprintf(`, listening on %s (fd 3 "web"), %s (fd 4)`, addr, abstract); !strings.HasSuffix(text, want) {
		t.Errorf("status %q lacks %q", text, want)
	}
	mustCtl(t, sock, "exit")
	r.wait()

	gen := func(kind string) string {
		cmd := exec.Command(upshimBinary(t), "generate", kind, "--listen", "web=127.0.0.1:8080", "--listen=unix:rel.sock",
			"--listen", "udp:127.0.0.1:5353", "--listen", "unix:@abs", "--", "/bin/sleep", "1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("generate %s: %v", kind, err)
		}
		return string(out)
	}
	rel := mustAbs(t, "rel.sock")
	if unit := gen("systemd"); !strings.Contains(unit, " --listen web=127.0.0.1:8080 --listen=unix:"+rel+" --listen udp:127.0.0.1:5353 --listen unix:@abs -- /bin/sleep 1\n") {
		t.Errorf("unit:\n%s", unit)
	}
	if job := gen("upstart"); !strings.Contains(job, " --listen web=127.0.0.1:8080 --listen=unix:"+rel+" ") {
		t.Errorf("job:\n%s", job)
	}
	docker := gen("dockerfile")
	if !strings.Contains(docker, "\nEXPOSE 8080 5353/udp\n") || !strings.Contains(docker, `"--listen=unix:rel.sock"`) {
		t.Errorf("dockerfile:\n%s", docker)
	}
}

// A Go service written for systemd takes its sockets with go-systemd's
// activation package, unmodified: it checks LISTEN_PID against its own
// pid, so it works only because LISTEN_PID is the service's pid.
func TestListenGoSystemdActivation(t *testing.T) {
	t.Parallel()
	abstract := fmt.Sprintf("@upshim-gosystemd-%d", time.Now().UnixNano())
	r, sock := startControlled(t, "--listen", "web=127.0.0.1:0", "--listen", "admin=unix:"+abstract,
		probeEnv("gosystemd"), "--", testBinary(t))
	web := heldAddrs(t, sock)[0]
	if l, want := r.line(), fmt.Sprintf("listeners admin=%s web=%s env-left=\"\"", abstract, web); l != want {
		t.Fatalf("the service says %q, want %q", l, want)
	}
	if got := answer(t, "tcp", web); got != "web" {
		t.Errorf("web answered %q", got)
	}
	if got := answer(t, "unix", abstract); got != "admin" {
		t.Errorf("admin answered %q", got)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Started by systemd-socket-activate (as by a .socket unit), upshim adopts
// the socket and its name, ahead of its own --listen ones, and hands both
// on with the service's own LISTEN_PID; nothing meant for upshim
// (NOTIFY_SOCKET, WATCHDOG_*) reaches the service; and a service that
// crashes after every connection loses none of them.
func TestListenPassThroughSocketActivate(t *testing.T) {
	t.Parallel()
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		skipOrFail(t, "systemd-socket-activate not installed (Debian package systemd)")
	}
	probe := testBinary(t)
	start := func(args ...string) (*running, string) {
		t.Helper()
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		// systemd-socket-activate passes on only the variables -E names.
		cmd := exec.Command(activate, append([]string{"-l", addr, "--fdname", "web", "-E", "PATH", "-E", "UPSHIM_TEST_MARK",
			"-E", "NOTIFY_SOCKET=/nonexistent/notify", "-E", "WATCHDOG_USEC=1000000", "-E", "WATCHDOG_PID=1",
			upshimBinary(t)}, args...)...)
		r := startShimCmd(t, cmd)
		// It execs upshim on the first connection, which waits in the
		// socket's backlog for the service.
		waitStderr(t, r, "Listening on "+addr)
		return r, addr
	}

	r, addr := start("--listen", "admin=127.0.0.1:0", probeEnv("report"), "--", probe, "service", "wait")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, got := report(t, r.line())
	want := map[string]string{"LISTEN_PID": got["pid"], "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin", "leaked": "",
		"3": addr + ",blocking"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	if open := passedOn(t, got["open"]); open != "0,1,2,3,4" || !strings.HasPrefix(got["4"], "127.0.0.1:") {
		t.Errorf("descriptors passed on: %s, fd 4 %q", open, got["4"])
	}
	r.signal(syscall.SIGTERM)
	r.wait()

	r, addr = start("--respawn-limit", "unlimited", probeEnv("serve"), "--", probe, "1")
	pids := map[string]bool{}
	for range 5 {
		pids[answer(t, "tcp", addr)] = true // the first starts upshim
	}
	if len(pids) != 5 {
		t.Errorf("answers from %v, want 5 instances", pids)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// crashLoopTally counts what the clients of a crash loop saw.
type crashLoopTally struct {
	ok, refused, reset, other atomic.Int64
	firstOther                atomic.Value // string
}

// crashLoop runs the probe server under upshim, crashing after every
// crashAfter connections, with clients opening new connections for the
// whole run, until upshim has respawned it respawns times. With listen,
// upshim holds the port; without, every instance binds it itself.
func crashLoop(t *testing.T, listen bool, clients, crashAfter, respawns int) *crashLoopTally {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"--respawn-limit", "unlimited", "--env", "ADDR=" + addr, probeEnv("serve")}
	if listen {
		args = append(args, "--listen", addr)
	}
	r := startShim(t, append(args, "--", testBinary(t), strconv.Itoa(crashAfter))...)
	waitBound(t, addr) // refusals before the first start are not the crash loop's
	var tally crashLoopTally
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c, err := net.DialTimeout("tcp", addr, deadline)
				if err == nil {
					c.SetDeadline(time.Now().Add(deadline))
					var b []byte
					if b, err = io.ReadAll(c); err == nil && len(b) == 0 {
						err = io.ErrUnexpectedEOF
					}
					c.Close()
				}
				switch {
				case err == nil:
					tally.ok.Add(1)
				case errors.Is(err, syscall.ECONNREFUSED):
					tally.refused.Add(1)
				case errors.Is(err, syscall.ECONNRESET):
					tally.reset.Add(1)
				default:
					tally.other.Add(1)
					tally.firstOther.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	eventually(t, func() (bool, string) {
		n := strings.Count(r.stderr.String(), "; respawning")
		return n >= respawns, fmt.Sprintf("%d respawns so far", n)
	})
	stop.Store(true)
	wg.Wait()
	r.signal(syscall.SIGTERM)
	r.wait()
	return &tally
}

// Under load, with a service that crashes after every 25 connections, 20
// times: 4 clients opening new connections for the whole run see no
// refusal with --listen. The same run without --listen, where each
// instance binds the port itself, sees refusals: the test can fail.
func TestListenNoRefusalsUnderCrashLoop(t *testing.T) {
	const clients, crashAfter, respawns = 4, 25, 20
	held := crashLoop(t, true, clients, crashAfter, respawns)
	own := crashLoop(t, false, clients, crashAfter, respawns)
	for _, run := range []struct {
		name string
		t    *crashLoopTally
	}{{"--listen", held}, {"without --listen", own}} {
		t.Logf("%-16s %5d answered, %5d refused, %3d reset, %3d other %v", run.name,
			run.t.ok.Load(), run.t.refused.Load(), run.t.reset.Load(), run.t.other.Load(), run.t.firstOther.Load())
	}
	if held.refused.Load() != 0 || held.reset.Load() != 0 || held.other.Load() != 0 {
		t.Errorf("with --listen, clients lost connections: %d refused, %d reset, %d other (%v)",
			held.refused.Load(), held.reset.Load(), held.other.Load(), held.firstOther.Load())
	}
	if held.ok.Load() < crashAfter*respawns {
		t.Errorf("with --listen, only %d connections answered", held.ok.Load())
	}
	if own.refused.Load() == 0 {
		t.Errorf("without --listen, no refusal: the crash loop does not show what --listen prevents")
	}
}

// The README's quick start: the demo server under --listen, crashed over
// and over through /crash while clients keep asking; none is refused. A
// request the dying server had already accepted is reset: no supervisor
// can answer those.
func TestListenDemoServerRefusesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/naivehttpserver", "../examples/naivehttpserver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r, sock := startControlled(t, "--listen", "127.0.0.1:0", "--respawn-limit", "10/5", "--", dir+"/naivehttpserver")
	url := "http://" + heldAddrs(t, sock)[0]
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: deadline}
	get := func(path string) (string, error) {
		resp, err := client.Get(url + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var stop atomic.Bool
	var answered, refused, reset atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_, err := get("/")
				switch {
				case err == nil:
					answered.Add(1)
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
				default:
					reset.Add(1)
				}
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		if body, err := get("/crash"); body != "crashing\n" || err != nil {
			t.Errorf("/crash: %q, %v", body, err)
		}
		waitStderr(t, r, fmt.Sprintf("respawning (%d/10 within 5s)", i))
	}
	body, err := get("/")
	stop.Store(true)
	wg.Wait()
	if !strings.HasPrefix(body, "hello from naivehttpserver") || err != nil {
		t.Errorf("after 5 crashes: %q, %v", body, err)
	}
	t.Logf("%d answered, %d refused, %d reset or cut off", answered.Load(), refused.Load(), reset.Load())
	if refused.Load() != 0 || answered.Load() == 0 {
		t.Errorf("%d answered, %d refused", answered.Load(), refused.Load())
	}
	mustCtl(t, sock, "exit")
	r.wait()
}
