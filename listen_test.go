package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
