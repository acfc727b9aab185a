//go:build linux

package e2e

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/upshim/upshim/shim"
	"golang.org/x/sys/unix"
)

// The black-box tests run the real upshim binary, built once by
// upshimBinary, against real processes. Helper programs that a shell
// cannot be (sigrecord) are this test binary under another name:
// testscript.Main puts them on PATH for scripts and Go tests alike.
//
// Most tests spend their time waiting for processes, not computing: four
// run at once per CPU rather than go test's one, unless -parallel says
// otherwise (flags are parsed after this, in m.Run).
func TestMain(m *testing.M) {
	if f := flag.Lookup("test.parallel"); f != nil {
		f.Value.Set(strconv.Itoa(4 * runtime.GOMAXPROCS(0)))
	}
	testscript.Main(m, map[string]func(){
		"sigrecord": sigrecordMain,
		"withmask":  withmaskMain,
		"sdnotify":  sdnotifyMain,
		"linegen":   linegenMain,
	})
}

// testVersion is stamped into the binary under test, to check --version.
const testVersion = "v0.0.0-test"

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// upshimBinary builds upshim once per test run, with the version stamped
// the way a release build stamps it, and returns its path. Its directory
// is put at the front of PATH so scripts call it by name.
func upshimBinary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "upshim-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "upshim")
		ldflags := "-X main.version=" + testVersion + " -X main.commit=abc1234 -X main.date=2026-11-29"
		// Built as a release is: static, without cgo (see goreleaser.yaml).
		build := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", builtPath, "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtPath
}

// requireAll reports whether a missing prerequisite must fail the test
// rather than skip it, as it must in CI.
func requireAll() bool { return os.Getenv("UPSHIM_REQUIRE_ALL") == "1" }

// skipOrFail skips the test, unless UPSHIM_REQUIRE_ALL=1 makes the missing
// prerequisite a failure.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireAll() {
		t.Fatalf("UPSHIM_REQUIRE_ALL=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// The scripts run in parallel (testscript runs each in its own directory,
// with t.Parallel), and alongside the other parallel tests.
func TestScript(t *testing.T) {
	t.Parallel()
	upshimBinary(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", os.Getenv("PATH"))
			// The options list of the manual page, which usage_help checks.
			manpage, err := filepath.Abs("../docs/upshim.1.md")
			env.Setenv("MANPAGE", manpage)
			return err
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				if os.Geteuid() != 0 {
					if requireAll() {
						return false, fmt.Errorf("UPSHIM_REQUIRE_ALL=1 but not running as root")
					}
					return false, nil
				}
				return true, ensureTestUser()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": cmdExits,
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				cmdWaitfile(ts, neg, args, waitLimit(t))
			},
			"sig":   cmdSig,
			"lines": cmdLines,
		},
	})
}

var (
	testUserOnce sync.Once
	testUserErr  error
)

// ensureTestUser creates, once, the user upshimtest with the extra
// supplementary group upshimextra, which the credential tests switch to.
// Tests that run in parallel call it at once: one creates, the others wait.
func ensureTestUser() error {
	testUserOnce.Do(func() { testUserErr = createTestUser() })
	return testUserErr
}

func createTestUser() error {
	if exec.Command("id", "upshimtest").Run() == nil {
		return nil
	}
	for _, args := range [][]string{
		{"groupadd", "-f", "upshimextra"},
		{"useradd", "-M", "-d", "/home/upshimtest", "-s", "/bin/sh", "-U", "-G", "upshimextra", "upshimtest"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// cmdExits runs a program and checks its exact exit status, which `exec`
// cannot: exits N PROG [ARG...]. Its output is kept for stdout/stderr.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits STATUS PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdWaitfile waits, up to limit, for a file to exist and, given a
// pattern, to match it: waitfile PATH [REGEXP].
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string, limit time.Duration) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitfile PATH [REGEXP]")
	}
	var re *regexp.Regexp
	if len(args) == 2 {
		re = regexp.MustCompile(args[1])
	}
	path := ts.MkAbs(args[0])
	end := time.Now().Add(limit)
	for {
		b, err := os.ReadFile(path)
		if err == nil && (re == nil || re.Match(b)) {
			return
		}
		if time.Now().After(end) {
			ts.Fatalf("waitfile %s: not there after %s (content %q)", args[0], limit.Round(time.Second), b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cmdSig sends a signal to the pid written in a file: sig SIG PIDFILE.
func cmdSig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sig SIG PIDFILE")
	}
	sig, err := shim.ParseSignal(args[0])
	if err != nil {
		ts.Fatalf("sig: %v", err)
	}
	b, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	ts.Check(err)
	ts.Check(syscall.Kill(pid, syscall.Signal(sig)))
}

// cmdLines checks that a file has exactly N lines: lines N PATH.
func cmdLines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: lines N PATH")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := strings.Count(ts.ReadFile(args[1]), "\n")
	if (got == want) == neg {
		ts.Fatalf("%s has %d lines, want %s%d", args[1], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// sigrecordMain is the helper service for relay tests. It prints "ready",
// then the name of every signal it gets, one per line on stdout. It exits 0
// on SIGTERM unless SIGRECORD_IGNORE_TERM is set.
func sigrecordMain() {
	ignoreTerm := os.Getenv("SIGRECORD_IGNORE_TERM") != ""
	c := make(chan os.Signal, 64)
	for n := 1; n <= 64; n++ {
		switch syscall.Signal(n) {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, 32, 33:
			continue
		}
		signal.Notify(c, syscall.Signal(n))
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "ready %d\n", os.Getpid())
	w.Flush()
	for sig := range c {
		fmt.Fprintln(w, shim.SignalName(sig.(syscall.Signal)))
		w.Flush()
		if sig == syscall.SIGTERM && !ignoreTerm {
			os.Exit(0)
		}
	}
}

// withmaskMain execs its arguments with SIGUSR2 and SIGWINCH blocked, to
// check that upshim passes an inherited mask on: withmask PROG [ARG...].
func withmaskMain() {
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGWINCH} {
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Fprintln(os.Stderr, "withmask:", err)
		os.Exit(1)
	}
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "withmask:", err)
	os.Exit(1)
}

// sdnotifyMain sends its arguments, one message each, to $NOTIFY_SOCKET,
// as systemd-notify would: sdnotify READY=1.
func sdnotifyMain() {
	addr := &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdnotify:", err)
		os.Exit(1)
	}
	for _, msg := range os.Args[1:] {
		if _, err := conn.Write([]byte(msg)); err != nil {
			fmt.Fprintln(os.Stderr, "sdnotify:", err)
			os.Exit(1)
		}
	}
}

// linegenMain writes numbered lines fast: linegen TAG COUNT [WIDTH] writes
// "TAG-out N ...\n" to stdout and, for every third N, "TAG-err N\n" to
// stderr, in writes of random sizes that cut lines anywhere, as a busy
// service would. WIDTH pads the stdout lines (default 100 bytes).
func linegenMain() {
	tag := os.Args[1]
	count, _ := strconv.Atoi(os.Args[2])
	width := 100
	if len(os.Args) > 3 {
		width, _ = strconv.Atoi(os.Args[3])
	}
	rng := rand.New(rand.NewSource(int64(count)))
	var out, errs []byte
	flush := func(f *os.File, b *[]byte, force bool) {
		for len(*b) > 0 && (force || len(*b) > 4096) {
			n := min(len(*b), 1+rng.Intn(8192))
			if _, err := f.Write((*b)[:n]); err != nil {
				os.Exit(3)
			}
			*b = (*b)[n:]
		}
	}
	for i := range count {
		line := fmt.Appendf(nil, "%s-out %08d ", tag, i)
		for len(line) < width-1 {
			line = append(line, '.')
		}
		out = append(out, line...)
		out = append(out, '\n')
		if i%3 == 0 {
			errs = fmt.Appendf(errs, "%s-err %08d\n", tag, i)
		}
		flush(os.Stdout, &out, false)
		flush(os.Stderr, &errs, false)
	}
	flush(os.Stdout, &out, true)
	flush(os.Stderr, &errs, true)
}
