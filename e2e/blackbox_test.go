//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/upshim/upshim/shim"
)

// Every wait in these tests is for an event (a line, a file, a state in
// /proc), bounded by waitLimit. An event that takes milliseconds alone can
// take seconds on a machine whose cores are all busy, so the bound is not a
// guess at how slow the machine is: it is what the run allows.

// noDeadlineWait bounds a wait when the test binary runs without a
// deadline (go test -timeout 0).
const noDeadlineWait = 5 * time.Minute

// deadline bounds one operation that is not a wait for an event of the
// service (a dial, a podman command, a read on a socket that must answer).
const deadline = 20 * time.Second

// cleanupWait bounds how long a cleanup waits for upshim to stop before
// killing it: the test is over, and its result no longer depends on it.
const cleanupWait = 20 * time.Second

// waitLimit is how long a wait that starts now may last: until shortly
// before the test binary's deadline (go test -timeout, 10m by default), so
// that a slow or loaded machine gets all the time the run allows, and a
// wait that fails is still reported by its test, with what it waited for,
// rather than by the timeout's panic. A tenth of the time left, at least
// 5s, is kept for that report and the cleanups.
func waitLimit(t testing.TB) time.Duration {
	dt, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return noDeadlineWait
	}
	end, ok := dt.Deadline()
	if !ok {
		return noDeadlineWait
	}
	left := time.Until(end)
	return max(left-max(left/10, 5*time.Second), time.Second)
}

// running is an upshim started by a test, with its stdout read line by
// line and its stderr kept.
type running struct {
	t      *testing.T
	cmd    *exec.Cmd
	mark   string
	lines  chan string
	stderr *lockedBuffer
	done   chan struct{}
	code   int
}

// lockedBuffer collects stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startShim runs upshim with args. Every process of the run carries a
// unique UPSHIM_TEST_MARK in its environment, so that leftovers can be
// found in /proc afterwards.
func startShim(t *testing.T, args ...string) *running {
	t.Helper()
	return startShimCmd(t, exec.Command(upshimBinary(t), args...))
}

func startShimCmd(t *testing.T, cmd *exec.Cmd) *running {
	t.Helper()
	upshimBinary(t) // cmd may run upshim by name, from PATH
	r := &running{
		t:      t,
		cmd:    cmd,
		mark:   fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()),
		lines:  make(chan string, 1024),
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "UPSHIM_TEST_MARK="+r.mark)
	// A leftover holding upshim's stderr must not hang the test.
	cmd.WaitDelay = cleanupWait
	// upshim's stdout is a pipe of the test's own, not cmd.StdoutPipe:
	// Wait closes that one as soon as upshim has exited, and with it
	// whatever a service that ended at once printed before the test read
	// it.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if cmd.Stderr == nil {
		cmd.Stderr = r.stderr
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		close(read)
	}()
	go func() {
		cmd.Wait()
		r.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
		close(r.done)
		// Once upshim has exited, nothing of its run should hold its
		// stdout; a leftover that does must not hang the test either.
		select {
		case <-read:
		case <-time.After(cleanupWait):
		}
		stdout.Close()
	}()
	t.Cleanup(func() {
		// A test that failed half-way leaves upshim running: stop it as a
		// user would, so that it stops its service too (nginx clears its
		// environment, so killMarked cannot find its workers), then kill.
		select {
		case <-r.done:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(cleanupWait):
				cmd.Process.Kill()
				<-r.done
			}
		}
		killMarked(r.mark)
	})
	return r
}

// startRelaying runs upshim -v with args and waits until it relays every
// signal, which it begins a few milliseconds after the service starts.
func startRelaying(t *testing.T, args ...string) *running {
	t.Helper()
	r := startShim(t, append([]string{"-v"}, args...)...)
	waitStderr(t, r, "relaying every signal")
	return r
}

// line returns the next line the service printed.
func (r *running) line() string {
	r.t.Helper()
	limit := waitLimit(r.t)
	select {
	case l, ok := <-r.lines:
		if !ok {
			r.t.Fatalf("service output ended; upshim stderr:\n%s", r.stderr)
		}
		return l
	case <-time.After(limit):
		r.t.Fatalf("no line from the service after %s; upshim stderr:\n%s", limit.Round(time.Second), r.stderr)
	}
	return ""
}

// expect reads lines until one equals want.
func (r *running) expect(want string) {
	r.t.Helper()
	for {
		if l := r.line(); l == want {
			return
		}
	}
}

// signal sends sig to upshim.
func (r *running) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

// wait waits for upshim to exit and returns its status.
func (r *running) wait() int {
	r.t.Helper()
	limit := waitLimit(r.t)
	select {
	case <-r.done:
		return r.code
	case <-time.After(limit):
		r.t.Fatalf("upshim still running after %s; stderr:\n%s", limit.Round(time.Second), r.stderr)
	}
	return -1
}

// leftovers lists live processes carrying the mark. Zombies have no
// environment left and are not counted.
func leftovers(mark string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && bytes.Contains(env, []byte("UPSHIM_TEST_MARK="+mark+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func killMarked(mark string) {
	for _, pid := range leftovers(mark) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// assertNothingLeft fails if any process of the run is still alive.
func (r *running) assertNothingLeft() {
	r.t.Helper()
	if pids := leftovers(r.mark); len(pids) > 0 {
		var desc []string
		for _, pid := range pids {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			desc = append(desc, fmt.Sprintf("%d %q", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
		r.t.Fatalf("left behind after upshim exited: %s", strings.Join(desc, ", "))
	}
}

// relayed lists the signals every relay test sends, with the name the
// service reports. TERM, INT and HUP are upshim's own.
var relayed = []syscall.Signal{
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT, syscall.SIGWINCH, syscall.SIGALRM,
	syscall.SIGPIPE, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
	syscall.SIGPWR, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.SIGXFSZ,
	syscall.SIGIO, syscall.SIGSYS, syscall.SIGTRAP, syscall.SIGABRT, syscall.SIGSTKFLT,
	35, 40, 64,
}

func signalName(sig syscall.Signal) string { return shim.SignalName(sig) }

func TestRelayEverySignal(t *testing.T) {
	t.Parallel()
	r := startRelaying(t, "--", "sigrecord")
	r.line() // ready
	for _, sig := range relayed {
		r.signal(sig)
		if got, want := r.line(), signalName(sig); got != want {
			t.Fatalf("sent %s, service got %s", want, got)
		}
	}
	// SIGRTMIN is reserved by the Go runtime: upshim ignores it rather than
	// die of it, and does not relay it.
	r.signal(34)
	// upshim itself did not stop on TSTP, TTIN or TTOU: it still relays.
	r.signal(syscall.SIGUSR1)
	r.expect("USR1")
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0 (the service exited 0 on TERM)", code)
	}
	r.assertNothingLeft()
}

func TestRelayRewriteAndDrop(t *testing.T) {
	t.Parallel()
	r := startRelaying(t, "--rewrite", "USR1:USR2", "--rewrite", "SIGWINCH:0", "--rewrite", "QUIT:RTMIN+2", "--", "sigrecord")
	r.line()
	r.signal(syscall.SIGUSR1)
	if got := r.line(); got != "USR2" {
		t.Fatalf("USR1 rewritten to USR2 arrived as %s", got)
	}
	r.signal(syscall.SIGWINCH) // dropped
	r.signal(syscall.SIGQUIT)
	if got := r.line(); got != "RTMIN+2" {
		t.Fatalf("after a dropped WINCH and QUIT→RTMIN+2, service got %s", got)
	}
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	r.wait()
}

func TestReloadOnHUP(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--", "sigrecord")
	r.line()
	r.signal(syscall.SIGHUP)
	r.expect("HUP")
	r.signal(syscall.SIGTERM)
	r.wait()

	r = startShim(t, "--reload-signal", "USR2", "--", "sigrecord")
	r.line()
	r.signal(syscall.SIGHUP)
	if got := r.line(); got != "USR2" {
		t.Fatalf("with --reload-signal USR2, HUP arrived as %s", got)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// The service is a shell that ignores USR1 and runs sigrecord in its
// process group: only --signal-group reaches the grandchild.
func TestSignalGroup(t *testing.T) {
	t.Parallel()
	script := `trap "" USR1; sigrecord & wait`
	r := startRelaying(t, "--signal-group", "--", "sh", "-c", script)
	r.line()
	r.signal(syscall.SIGUSR1)
	r.expect("USR1")
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	r.wait()
	r.assertNothingLeft()

	r = startRelaying(t, "--", "sh", "-c", script)
	r.line()
	r.signal(syscall.SIGUSR1)
	r.signal(syscall.SIGTERM) // the stop (TERM, then CONT) reaches the whole group
	for got := r.line(); got != "TERM"; got = r.line() {
		if got == "USR1" {
			t.Fatalf("without --signal-group the grandchild got USR1")
		}
	}
	r.wait()
}

// A service that ignores TERM is killed at the timeout, not before.
func TestStopKillsAfterTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 700 * time.Millisecond
	r := startShim(t, "--kill-timeout", timeout.String(), "--", "sh", "-c",
		`trap "" TERM; sleep 300 & echo ready; wait`)
	r.expect("ready")
	start := time.Now()
	r.signal(syscall.SIGTERM)
	code := r.wait()
	if elapsed := time.Since(start); elapsed < timeout {
		t.Fatalf("upshim exited %s after TERM, before the %s kill timeout", elapsed, timeout)
	}
	if code != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit status %d, want 137 (killed)", code)
	}
	if !strings.Contains(r.stderr.String(), "still running after 700ms; sending SIGKILL") {
		t.Fatalf("stderr does not say why it killed:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}

// Whatever the kill mode, nothing of the service survives a stop:
// children, grandchildren that called setsid, double-forked daemons.
func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	tree := `sleep 300 & setsid sleep 301 & (setsid sh -c 'sleep 302 & sleep 303' &) ; ` +
		`sh -c 'trap "" TERM; sleep 304' & echo ready; wait`
	for _, mode := range []string{"group", "process", "all"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := startShim(t, "--kill-mode", mode, "--kill-timeout", "500ms", "--", "sh", "-c", tree)
			r.expect("ready")
			r.signal(syscall.SIGTERM)
			r.wait()
			r.assertNothingLeft()
		})
	}
}

// With --kill-mode process only the main process gets the kill signal;
// with group, its group; with all, every descendant. A child in its own
// session that reports the signals it gets shows who got it.
//
// The kill timeout is long, so that no SIGKILL comes before the signals
// are handled, however loaded the machine. Where the child must not get
// the kill signal, a SIGWINCH sent to it after the main process handled
// its TERM is the probe: had the stop sent it TERM, which was sent before,
// it would report TERM first (pending signals are taken lowest first, and
// TERM is 15, WINCH 28). A second TERM then ends the stop at once.
func TestKillModeTargets(t *testing.T) {
	t.Parallel()
	script := `setsid sigrecord & trap 'echo main-got-TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done`
	cases := map[string]bool{"group": false, "process": false, "all": true}
	for mode, sessionGetsTerm := range cases {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := startShim(t, "--kill-mode", mode, "--kill-timeout", "60s", "--", "sh", "-c", script)
			// The shell and sigrecord start at once: either may be first.
			child := 0
			for mainReady := false; !mainReady || child == 0; {
				switch f := strings.Fields(r.line()); {
				case len(f) == 1 && f[0] == "ready":
					mainReady = true
				case len(f) == 2 && f[0] == "ready":
					child, _ = strconv.Atoi(f[1])
				}
			}
			r.signal(syscall.SIGTERM)
			var got []string
			if sessionGetsTerm {
				// Both end on TERM, and with them upshim's stop.
				for l := range r.lines {
					got = append(got, l)
				}
			} else {
				for !slices.Contains(got, "main-got-TERM") {
					got = append(got, r.line())
				}
				if err := syscall.Kill(child, syscall.SIGWINCH); err != nil {
					t.Fatalf("the setsid child %d: %v", child, err)
				}
				for !slices.Contains(got, "WINCH") {
					got = append(got, r.line())
				}
				r.signal(syscall.SIGTERM)
				for l := range r.lines {
					got = append(got, l)
				}
			}
			r.wait()
			joined := strings.Join(got, ",")
			if slices.Contains(got, "TERM") != sessionGetsTerm {
				t.Fatalf("--kill-mode %s: setsid child saw %q", mode, joined)
			}
			if !strings.Contains(joined, "main-got-TERM") {
				t.Fatalf("--kill-mode %s: main process did not get TERM: %q", mode, joined)
			}
			if strings.Contains(r.stderr.String(), "still running after") {
				t.Fatalf("--kill-mode %s: the stop waited for the kill timeout; stderr:\n%s", mode, r.stderr)
			}
			r.assertNothingLeft()
		})
	}
}

// When the service ends by itself, what it left behind gets the kill
// signal and goes with upshim.
func TestServiceEndLeavesNothing(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--", "sh", "-c", `setsid sleep 300 & sleep 301 & echo ready; exit 7`)
	r.expect("ready")
	if code := r.wait(); code != 7 {
		t.Fatalf("exit status %d, want the service's 7", code)
	}
	if !strings.Contains(r.stderr.String(), "left 2 processes behind; sent TERM") {
		t.Fatalf("stderr does not report the leftovers:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}

// Hundreds of orphans exit at once; none stays a zombie and upshim keeps
// answering.
func TestOrphansReaped(t *testing.T) {
	t.Parallel()
	r := startRelaying(t, "--", "sh", "-c",
		`i=0; while [ $i -lt 300 ]; do (sh -c 'exit 0' &); i=$((i+1)); done; echo ready; exec sigrecord`)
	r.expect("ready")
	r.line() // sigrecord ready
	pid := r.cmd.Process.Pid
	eventually(t, func() (bool, string) {
		z := zombiesOf(pid)
		return z == 0, fmt.Sprintf("%d zombies still under upshim", z)
	})
	r.signal(syscall.SIGUSR1)
	r.expect("USR1")
	r.signal(syscall.SIGTERM)
	r.wait()
}

// zombiesOf counts the zombie children of pid.
func zombiesOf(pid int) int {
	n := 0
	for _, child := range childPids(pid) {
		if procState(strconv.Itoa(child)) == 'Z' {
			n++
		}
	}
	return n
}

// A stop during the respawn delay cancels the respawn.
func TestStopDuringRespawnDelay(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--respawn", "--respawn-delay", "30s", "--", "sh", "-c", `echo ran; exit 3`)
	r.expect("ran")
	waitStderr(t, r, "respawning in 30s")
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 3 {
		t.Fatalf("exit status %d, want 3, the last run's", code)
	}
	if !strings.Contains(r.stderr.String(), "respawn cancelled") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	for l := range r.lines {
		t.Fatalf("the service ran again after the stop: %q", l)
	}
}

// waitStderr waits for upshim to write s on stderr.
func waitStderr(t *testing.T, r *running, s string) {
	t.Helper()
	eventually(t, func() (bool, string) {
		return strings.Contains(r.stderr.String(), s), fmt.Sprintf("stderr lacks %q:\n%s", s, r.stderr)
	})
}

// eventually polls cond until it holds, and fails the test with cond's
// message if it does not within waitLimit. It is for states that no
// file, pipe or socket announces (a zombie gone, a process stopped).
func eventually(t testing.TB, cond func() (ok bool, why string)) {
	t.Helper()
	limit := waitLimit(t)
	end := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after %s: %s", limit.Round(time.Second), why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// procState is the state letter of process pid (R, S, T, Z…), or 0.
func procState(pid string) byte {
	stat, _ := os.ReadFile("/proc/" + pid + "/stat")
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 {
		return stat[i+2]
	}
	return 0
}

// The respawn delay is respected: runs are spaced at least by the delay,
// which doubles up to the maximum. Only lower bounds are checked; how fast
// upshim respawns is a benchmark's business. Each run says when it began:
// when the test reads it depends on how soon the test runs.
func TestRespawnDelaySpacing(t *testing.T) {
	t.Parallel()
	runs := t.TempDir() + "/runs"
	r := startShim(t, "--respawn-limit", "10/60", "--respawn-delay", "100ms", "--respawn-delay-max", "400ms",
		"--normal-exit", "0", "--", "sh", "-c", `echo "run $(date +%s%N)"; echo run >> `+runs+`; [ $(wc -l < `+runs+`) -ge 5 ] && exit 0; exit 1`)
	var at []time.Time
	for range 5 {
		f := strings.Fields(r.line())
		ns, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) != 2 || f[0] != "run" || err != nil {
			t.Fatalf("the service said %q", f)
		}
		at = append(at, time.Unix(0, ns))
	}
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}
	for i, min := range want {
		if gap := at[i+1].Sub(at[i]); gap < min {
			t.Errorf("run %d began %s after run %d, before the %s delay", i+2, gap, i+1, min)
		}
	}
}

// A second TERM during a stop kills at once rather than at the timeout.
func TestSecondStopKillsNow(t *testing.T) {
	t.Parallel()
	r := startShim(t, "-v", "--kill-timeout", "60s", "--", "sh", "-c", `trap "" TERM INT; echo ready; while :; do sleep 0.05; done`)
	r.expect("ready")
	r.signal(syscall.SIGTERM)
	waitStderr(t, r, "got TERM; stopping")
	r.signal(syscall.SIGINT)
	if code := r.wait(); code != 137 {
		t.Fatalf("exit status %d, want 137", code)
	}
	if !strings.Contains(r.stderr.String(), "got INT again; killing everything now") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}

// SIGINT stops like SIGTERM.
func TestStopOnINT(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--", "sigrecord")
	r.line()
	r.signal(syscall.SIGINT)
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// The service starts with the signal mask upshim inherited, and with
// SIGINT and SIGHUP still ignored when upshim inherited them ignored.
func TestSignalMaskInherited(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sh", "-c", `trap "" INT HUP; exec withmask "$0" -- grep -E "^Sig(Blk|Ign)" /proc/self/status`,
		upshimBinary(t))
	r := startShimCmd(t, cmd)
	masks := map[string]uint64{}
	for range 2 {
		name, hex, _ := strings.Cut(r.line(), ":")
		v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			t.Fatalf("service reported %s:%s", name, hex)
		}
		masks[name] = v
	}
	r.wait()
	has := func(mask uint64, sig syscall.Signal) bool { return mask&(1<<(uint(sig)-1)) != 0 }
	for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGWINCH} {
		if !has(masks["SigBlk"], sig) {
			t.Errorf("the service does not block %s, which upshim inherited blocked (SigBlk %x)", signalName(sig), masks["SigBlk"])
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if !has(masks["SigIgn"], sig) {
			t.Errorf("the service does not ignore %s, which upshim inherited ignored (SigIgn %x)", signalName(sig), masks["SigIgn"])
		}
	}
}

// startAsPID1 runs upshim as PID 1 of a new PID namespace, as a container
// runtime would, and returns the run (of unshare) and upshim's pid as the
// host sees it.
func startAsPID1(t *testing.T, args ...string) (*running, int) {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		skipOrFail(t, "unshare (util-linux) not installed")
	}
	ns := []string{"--pid", "--fork", "--mount-proc", "--kill-child"}
	if os.Geteuid() != 0 {
		ns = append([]string{"--user", "--map-root-user"}, ns...)
	}
	if out, err := exec.Command(unshare, append(ns, "true")...).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot create a PID namespace here: %v %s", err, out)
	}
	cmd := exec.Command(unshare, append(append(ns, upshimBinary(t)), args...)...)
	r := startShimCmd(t, cmd)
	var pid int
	eventually(t, func() (bool, string) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) == 1 {
			pid, _ = strconv.Atoi(f[0])
		}
		return processName(pid) == "upshim", "upshim did not start under unshare"
	})
	return r, pid
}

// As PID 1 of a namespace upshim reaps every orphan and stops on TERM and
// INT, which a PID 1 gets only for the signals it handles. Not parallel,
// as no test that makes upshim PID 1 is.
func TestPID1(t *testing.T) {
	script := `i=0; while [ $i -lt 200 ]; do (sh -c 'exit 0' &); i=$((i+1)); done
setsid sleep 300 &
n=0; while ps -eo stat= | grep -q '^Z'; do
	n=$((n+1)); [ $n -gt 400 ] && { echo zombies-remain; ps -eo pid,stat,comm; exit 1; }; sleep 0.05
done
echo "nozombies pid=$$ parent=$PPID"
exec sigrecord`
	for _, stop := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(signalName(stop), func(t *testing.T) {
			// A long kill timeout: sigrecord must end of the TERM, not of
			// a SIGKILL that a loaded machine let come first.
			r, pid := startAsPID1(t, "-v", "--kill-timeout", "60s", "--", "sh", "-c", script)
			got := r.line()
			if !strings.HasPrefix(got, "nozombies") || !strings.HasSuffix(got, "parent=1") {
				t.Fatalf("service says %q", got)
			}
			main := strings.TrimPrefix(strings.Fields(got)[1], "pid=") // as the namespace sees it
			r.line()                                                   // sigrecord is ready
			syscall.Kill(pid, stop)
			r.expect("TERM")
			// The setsid sleep is in no group the stop signals: once the
			// main process has exited, a second stop kills it at once
			// rather than at the kill timeout.
			waitStderr(t, r, "main process ("+main+") exited with status 0")
			syscall.Kill(pid, stop)
			if code := r.wait(); code != 0 {
				t.Fatalf("exit status %d, want the service's 0; stderr:\n%s", code, r.stderr)
			}
			r.assertNothingLeft()
		})
	}
}

// A stop during the respawn delay also stops what the ended run left
// behind, which no stop signal has reached yet.
func TestStopDuringDelayStopsLeftovers(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--respawn", "--respawn-delay", "30s", "--kill-timeout", "20s", "--", "sh", "-c",
		`setsid sleep 300 & echo ran; exit 3`)
	r.expect("ran")
	waitStderr(t, r, "respawning in 30s")
	r.signal(syscall.SIGTERM)
	if code := r.wait(); code != 3 {
		t.Fatalf("exit status %d, want 3; stderr:\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "left 1 process behind; sent TERM") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	r.assertNothingLeft()
}
