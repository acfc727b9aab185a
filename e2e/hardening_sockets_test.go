//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The hardening tests of upshim's sockets: the service's NOTIFY_SOCKET,
// the control socket and its client. Some need a process of another user
// (an attacker, a stranger's socket): that is this test binary, copied
// where upshimtest can run it, and turned by UPSHIM_TEST_HELPER into one
// of the helpers below before any test starts.

func init() {
	helper := os.Getenv("UPSHIM_TEST_HELPER")
	if helper == "" {
		return
	}
	switch helper {
	case "notify-attacker":
		notifyAttacker(os.Getenv("RACE_DIR"), os.Getenv("RACE_TARGET"))
	case "control-attacker":
		controlAttacker(os.Getenv("RACE_SOCKET"), os.Getenv("RACE_TARGET"))
	case "fake-control":
		fakeControl(os.Getenv("RACE_SOCKET"))
	default:
		fmt.Fprintln(os.Stderr, "unknown UPSHIM_TEST_HELPER", helper)
		os.Exit(2)
	}
	os.Exit(0)
}

// notifyAttacker plays the service's user against `--user X --expect
// notify`: as soon as an upshim-notify-* directory appears in dir, it
// tries to rename a link to target over the socket in it, until the
// directory lets it or is gone. It prints "renamed" for every link it got
// in place.
func notifyAttacker(dir, target string) {
	// Non-blocking, and polled: waking up from a blocking read takes
	// longer than the window it races for.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err == nil {
		_, err = unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_ONLYDIR)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "inotify:", err)
		os.Exit(1)
	}
	link := filepath.Join(dir, "link-"+strconv.Itoa(os.Getpid()))
	fmt.Println("ready")
	buf := make([]byte, 64<<10)
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
			off += unix.SizeofInotifyEvent + nameLen
			if !strings.HasPrefix(name, "upshim-notify-") {
				continue
			}
			os.Remove(link)
			os.Symlink(target, link)
			dst := filepath.Join(dir, name, "notify")
			// EACCES until the directory is the attacker's; ENOENT once
			// upshim has removed it. Bounded in time, not in tries: a
			// number of tries is over sooner than upshim, under strace
			// and on a loaded machine, gets to the chown.
			for end := time.Now().Add(helperWait); time.Now().Before(end); {
				err := unix.Rename(link, dst)
				if err == nil {
					fmt.Println("renamed")
				}
				if err == nil || err == unix.ENOENT {
					break
				}
			}
		}
	}
}

// controlAttacker plays a user who can write the control socket's
// directory: whenever a socket is at sock, it renames a link to target
// over it, and prints "renamed". It spins: the window it races for is a
// few system calls wide. The test kills it.
func controlAttacker(sock, target string) {
	link := sock + ".link"
	fmt.Println("ready")
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); {
		var st unix.Stat_t
		if unix.Lstat(sock, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			continue
		}
		os.Symlink(target, link)
		if unix.Rename(link, sock) == nil {
			fmt.Println("renamed")
		}
	}
}

// helperWait bounds a helper's wait for a test that runs it: helpers run
// as another process, without the test's deadline.
const helperWait = time.Minute

// fakeControl is a stranger's socket where an upshim's could be: it prints
// "got LINE" for every request it reads, and answers with a forged status.
func fakeControl(sock string) {
	l, err := net.Listen("unix", sock)
	if err == nil {
		err = os.Chmod(sock, 0o777)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(helperWait))
			if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				fmt.Println("got " + strings.TrimSpace(line))
			}
			c.Write([]byte("ok sleep: running, pid 1, up 9999h\n"))
		}()
	}
}

// testUser returns upshimtest's uid and gid, creating the user if need
// be; it skips the test when not root.
func testUser(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to act as another user")
	}
	if err := ensureTestUser(); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup("upshimtest")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// publicDir makes a directory everyone may enter, removed after the test.
func publicDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "upshim-pub-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// publicCopy copies this test binary where upshimtest can run it, under
// name: a name of TestMain's table (sdnotify) makes it that program. cp
// writes the copy, not the test: a descriptor of the test's open for
// writing would go, for an instant, into every process a parallel test
// forks, and executing the copy then fails with "text file busy".
func publicCopy(t *testing.T, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(publicDir(t, 0o755), name)
	installExecutable(t, self, dst)
	return dst
}

// installExecutable puts an executable copy of src at dst. cp makes it, in
// a process of its own: a file this test binary held open for writing
// would be inherited by every process a parallel test forks meanwhile,
// and running it would fail with "text file busy".
func installExecutable(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v %s", src, dst, err, out)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
}

// writeExecutable writes data as an executable at dst, by way of
// installExecutable.
func writeExecutable(t testing.TB, dst string, data []byte) {
	t.Helper()
	if err := os.WriteFile(dst+".data", data, 0o644); err != nil {
		t.Fatal(err)
	}
	installExecutable(t, dst+".data", dst)
}

// helperProc is a helper of init running as upshimtest, with the lines
// it printed.
type helperProc struct {
	mu    sync.Mutex
	lines []string
	ready chan struct{}
}

func (h *helperProc) count(prefix string) (n int, lines []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines {
		if strings.HasPrefix(l, prefix) {
			n++
			lines = append(lines, l)
		}
	}
	return n, lines
}

// startHelperAsTestUser runs the init helper named kind as upshimtest, with
// env, and waits until it says it is ready. The test kills it at the end.
func startHelperAsTestUser(t *testing.T, kind string, env ...string) *helperProc {
	t.Helper()
	uid, gid := testUser(t)
	cmd := exec.Command(publicCopy(t, "upshim-test-helper"))
	cmd.Env = append(os.Environ(), append([]string{"UPSHIM_TEST_HELPER=" + kind}, env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperProc{ready: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(h.ready)
				continue
			}
			h.mu.Lock()
			h.lines = append(h.lines, sc.Text())
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-read
		cmd.Wait()
	})
	limit := waitLimit(t)
	select {
	case <-h.ready:
	case <-read:
		t.Fatalf("helper %s ended before it was ready", kind)
	case <-time.After(limit):
		t.Fatalf("helper %s not ready after %s", kind, limit.Round(time.Second))
	}
	return h
}

// runBounded runs argv (upshim, or a wrapper of it) with env to its end,
// killing it after waitLimit, and returns its exit status and stderr.
func runBounded(t *testing.T, env []string, argv ...string) (int, string) {
	t.Helper()
	limit := waitLimit(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s still running after %s; stderr:\n%s", strings.Join(argv, " "), limit.Round(time.Second), stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// widened returns upshim's command line, under strace when it is there
// so that each of the calls named takes 50 ms longer (they wait before
// they start), and how many starts a race against it should take: a
// window that wide is won at once, a natural one rarely.
func widened(t *testing.T, calls string) (argv []string, starts int) {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Logf("no strace: racing a window a few system calls wide")
		return []string{upshimBinary(t)}, 300
	}
	return []string{strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=" + calls,
		"-e", "inject=" + calls + ":delay_enter=50000", upshimBinary(t)}, 5
}

// ownerAndMode is a file's owner uid and permission bits.
func ownerAndMode(t *testing.T, path string) (int, os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Sys().(*syscall.Stat_t).Uid), st.Mode().Perm()
}

// The service's user, racing upshim's set-up of NOTIFY_SOCKET with a link
// renamed over the socket, never gets root to chown the link's target.
// (It did: the directory was chowned by path before the socket.)
func TestNotifySocketSetupFollowsNoLink(t *testing.T) {
	t.Parallel()
	raceDir := publicDir(t, 0o1777) // as /tmp
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	attacker := startHelperAsTestUser(t, "notify-attacker", "RACE_DIR="+raceDir, "RACE_TARGET="+victim)
	// Between two chowns by path, the window to rename a link in.
	upshim, starts := widened(t, "fchownat,fchown")
	for i := range starts {
		code, stderr := runBounded(t, []string{"TMPDIR=" + raceDir},
			append(upshim, "--user", "upshimtest", "--expect", "notify", "--start-timeout", "1", "--", "true")...)
		if uid, mode := ownerAndMode(t, victim); uid != 0 || mode != 0o600 {
			t.Fatalf("after %d starts, root-only %s is owned by uid %d, mode %04o (upshim exit %d: %s)", i+1, victim, uid, mode, code, stderr)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "secret\n" {
		t.Fatalf("victim: %q, %v", b, err)
	}
	// The race was run: the attacker got its link into upshim's directory,
	// only too late to matter.
	n, _ := attacker.count("renamed")
	if n == 0 {
		t.Fatalf("in %d starts the attacker never got a link in: the race was not tried", starts)
	}
	t.Logf("the attacker got its link in %d times in %d starts", n, starts)
}

// A service running as another user can still use its NOTIFY_SOCKET.
func TestNotifySocketServesOtherUser(t *testing.T) {
	t.Parallel()
	testUser(t)
	sdnotify := publicCopy(t, "sdnotify")
	up := listenUpward(t)
	r := withNotifySocket(t, up, "--user", "upshimtest", "--expect", "notify", "--start-timeout", "10s", "--", "sh", "-c",
		sdnotify+` "STATUS=as $(id -un)" READY=1 && exec sleep 300`)
	up.expect("STATUS=as upshimtest")
	up.expect("READY=1")
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
}

// A user who can write the control socket's directory, racing upshim's
// set-up with a link renamed over the socket, never gets root to chmod the
// link's target. (It did: os.Chmod after bind followed the link.)
func TestControlSocketSetupFollowsNoLink(t *testing.T) {
	t.Parallel()
	dir := publicDir(t, 0o777)
	sock := filepath.Join(dir, "c.sock")
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(target, 0o644)
	attacker := startHelperAsTestUser(t, "control-attacker", "RACE_SOCKET="+sock, "RACE_TARGET="+target)
	// Between bind and a chmod by path, the window to rename a link in.
	upshim, starts := widened(t, "fchmodat,fchmod")
	for i := range starts {
		os.Remove(sock) // the attacker's link, if it won the last round
		code, stderr := runBounded(t, nil, append(upshim, "--control", sock, "--", "true")...)
		if uid, mode := ownerAndMode(t, target); uid != 0 || mode != 0o644 {
			t.Fatalf("after %d starts, %s is mode %04o, uid %d (upshim exit %d: %s)", i+1, target, mode, uid, code, stderr)
		}
		// The attacker may win a round, before upshim looks (its link
		// was left there) or just after bind: upshim then refuses.
		if code != 0 && !strings.Contains(stderr, "--control "+sock+": replaced by something else while upshim set it up") &&
			!strings.Contains(stderr, "--control "+sock+": exists and is not a socket") {
			t.Fatalf("upshim exit %d: %s", code, stderr)
		}
	}
	if n, _ := attacker.count("renamed"); n == 0 {
		t.Fatalf("in %d starts the attacker never replaced the socket: the race was not tried", starts)
	}
}

// upshim ctl talks only to a socket served by root or its own uid: a
// stranger's socket where upshim's should be gets no request, and its
// answer is not believed.
func TestCtlRefusesStrangersSocket(t *testing.T) {
	t.Parallel()
	uid, _ := testUser(t)
	dir := publicDir(t, 0o755)
	if err := os.Chown(dir, uid, -1); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "app.sock")
	fake := startHelperAsTestUser(t, "fake-control", "RACE_SOCKET="+sock)
	cmd := exec.Command(upshimBinary(t), "ctl", "--control", sock, "status")
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("upshim: ctl status: %s: refused: the socket is served by uid %d, not by root or uid 0", sock, uid)
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("ctl status against uid %d's socket: %v, %q; want exit 1 and %q", uid, err, out, want)
	}
	if n, got := fake.count("got "); n != 0 {
		t.Fatalf("the stranger's socket was sent %q", got)
	}
}

// threads is the number of threads of process pid.
func threads(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("no Threads: in /proc/%d/status", pid)
	return 0
}

// Idle control clients cost upshim no thread (each pinned one, and
// 10,000 of them crashed it), and they cannot keep others out: ctl still
// answers while 2,000 stay connected.
func TestControlIdleClientsCostNoThread(t *testing.T) {
	const clients = 2000
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Max < clients+100 {
		skipOrFail(t, "needs %d descriptors (RLIMIT_NOFILE %d)", clients+100, lim.Max)
	}
	// Raising the test binary's own limit (the Go runtime has usually
	// raised it already) changes what every process it starts inherits:
	// only a test that does not need to may run alongside others.
	if lim.Cur >= clients+100 {
		t.Parallel()
	} else {
		old := lim
		lim.Cur = clients + 100
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
	}
	r, sock := startControlled(t, "--", "sleep", "300")
	pid := r.cmd.Process.Pid
	before := threads(t, pid)
	conns := make([]net.Conn, 0, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	end := time.Now().Add(waitLimit(t))
	for len(conns) < clients {
		c, err := net.Dial("unix", sock)
		if errors.Is(err, unix.EAGAIN) && time.Now().Before(end) {
			time.Sleep(time.Millisecond) // the backlog is full: upshim is accepting
			continue
		}
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	if out := mustCtl(t, sock, "status"); !strings.HasPrefix(out, "sleep: running") {
		t.Fatalf("status with %d idle clients: %q", clients, out)
	}
	if n := threads(t, pid); n > before+10 {
		t.Fatalf("upshim went from %d to %d threads with %d idle control clients", before, n, clients)
	}
	// The client idle longest was closed to make room, and told why.
	conns[0].SetReadDeadline(time.Now().Add(waitLimit(t)))
	b, _ := io.ReadAll(conns[0])
	if !strings.HasPrefix(string(b), "error closed: idle") {
		t.Fatalf("the first idle client got %q", b)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// A client gets ControlIdleTimeout (5 s) from connecting to send its
// request, however it trickles it in (a timeout per read let one byte
// every 4 s keep a connection for a minute).
func TestControlIdleClientCutOff(t *testing.T) {
	t.Parallel()
	r, sock := startControlled(t, "--", "sleep", "300")
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	answer := make(chan string, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(waitLimit(t)))
		b, _ := io.ReadAll(c)
		answer <- string(b)
	}()
	// "upshim/1 status\n", one byte a second: complete after 16 s, so
	// that the cut-off at 5 s comes well before, however loaded the
	// machine.
	var got string
	req := "upshim/1 status\n"
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
trickle:
	for i := 0; ; {
		select {
		case got = <-answer:
			break trickle
		case <-tick.C:
			if i < len(req) {
				c.Write([]byte{req[i]})
				i++
			}
		}
	}
	took := time.Since(start)
	if !strings.HasPrefix(got, "error no request line within 5s") || took < 4*time.Second || took > 15*time.Second {
		t.Fatalf("after %s the trickling client got %q", took.Round(time.Millisecond), got)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// ctlBounded is ctl that gives up after d (a dead accept loop made ctl
// hang for good).
func ctlBounded(t *testing.T, d time.Duration, sock string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, upshimBinary(t), append([]string{"ctl", "--control", sock}, args...)...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Sprintf("no answer after %s", d), false
	}
	return strings.TrimSpace(string(out)), err == nil
}

// Running out of descriptors (EMFILE) stops accept only for a while: the
// client idle longest is closed to free one, and once the clients are
// gone ctl works again. (One accept error ended the loop for good.)
func TestControlAcceptSurvivesEMFILE(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "upshim.sock")
	r := startShimCmd(t, exec.Command("sh", "-c", `ulimit -n 20 && exec "$0" "$@"`,
		upshimBinary(t), "--control", sock, "--", "sleep", "300"))
	eventually(t, func() (bool, string) {
		_, ok := ctl(t, sock, "status")
		return ok, "upshim never answered on " + sock
	})
	// More clients than upshim has descriptors; a full backlog makes a
	// connect wait, so each gets a second.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 40 {
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			conns = append(conns, c)
		}
	}
	if out, ok := ctlBounded(t, waitLimit(t), sock, "status"); !ok || !strings.HasPrefix(out, "sleep: running") {
		t.Fatalf("status with %d clients connected, upshim out of descriptors: %q", len(conns), out)
	}
	// Some clients were closed for want of descriptors: EMFILE was hit.
	freed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		b, _ := io.ReadAll(c)
		if strings.HasPrefix(string(b), "error closed: upshim ran out of descriptors") {
			freed++
		}
	}
	if freed == 0 {
		t.Fatalf("none of %d clients was closed for want of descriptors: EMFILE was never hit", len(conns))
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for range 3 {
		if out, ok := ctlBounded(t, waitLimit(t), sock, "status"); !ok || !strings.HasPrefix(out, "sleep: running") {
			t.Fatalf("status after the clients left: %q", out)
		}
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// The answer to ctl exit with the service down is written before upshim
// exits (it was lost 7 times in 20).
func TestControlExitAnswersBeforeExit(t *testing.T) {
	t.Parallel()
	for i := range 30 {
		r, sock := startControlled(t, "--", "sleep", "300")
		if out := mustCtl(t, sock, "stop"); !strings.HasPrefix(out, "stopped") {
			t.Fatalf("round %d: stop answered %q", i, out)
		}
		if out, ok := ctl(t, sock, "exit"); !ok || out != "exiting" {
			t.Fatalf("round %d: exit answered %q (ok %v)", i, out, ok)
		}
		r.wait()
	}
}

// Out of descriptors (ulimit -n), every message names what upshim was
// setting up: at 12, one said only "upshim: too many open files". Below
// about 9 the Go runtime aborts before upshim runs (see docs/limits.md).
func TestOutOfDescriptorsSaysWhat(t *testing.T) {
	t.Parallel()
	for n := 9; n <= 20; n++ {
		dir := t.TempDir()
		code, stderr := runBounded(t, nil, "sh", "-c", `ulimit -n "$1" && shift && exec "$@"`, "sh", strconv.Itoa(n),
			upshimBinary(t), "--control", dir+"/s.sock", "--log-file", dir+"/a.log", "--expect", "notify", "--start-timeout", "5", "--", "true")
		if strings.Contains(stderr, "fatal error: runtime") {
			continue // the runtime's own limit
		}
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			named := false
			for _, what := range []string{"--control " + dir + "/s.sock: ", "--log-file " + dir + "/a.log: ", "NOTIFY_SOCKET: ", "true: "} {
				named = named || strings.Contains(line, what)
			}
			if line != "" && (!named || strings.Contains(line, "<nil>")) {
				t.Errorf("ulimit -n %d: exit %d, a message that names nothing: %q", n, code, line)
			}
		}
	}
}
