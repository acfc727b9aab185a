//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Lifecycle hardening (security review ab2538d). Each test guards one
// (state, event) cell of the lifecycle, named in its doc comment, from
// the outside: real processes, signals and the control socket.

// python3 returns the path of python3, or skips the test.
func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		skipOrFail(t, "no python3: %v", err)
	}
	return p
}

// ctlWithin runs upshim ctl, which must answer within d.
func ctlWithin(t *testing.T, d time.Duration, sock string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, upshimBinary(t), append([]string{"ctl", "--control", sock}, args...)...)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("upshim ctl %s: no answer within %s", strings.Join(args, " "), d)
	}
	return strings.TrimSpace(string(out))
}

// ctlAsync runs upshim ctl in the background; its output comes on the
// channel.
func ctlAsync(t *testing.T, sock string, args ...string) <-chan string {
	out := make(chan string, 1)
	go func() {
		o, _ := ctl(t, sock, args...)
		out <- o
	}()
	return out
}

// receive waits for a ctlAsync answer.
func receive(t *testing.T, r *running, c <-chan string) string {
	t.Helper()
	limit := waitLimit(t)
	select {
	case s := <-c:
		return s
	case <-time.After(limit):
		t.Fatalf("no control answer after %s; stderr:\n%s", limit.Round(time.Second), r.stderr)
	}
	return ""
}

// mainpidScript is the review's mainpid.py: the launcher names its worker
// with MAINPID=, then (once the gate file exists) kills and reaps the
// worker itself and goes on, ignoring TERM. With reapOnTerm the launcher
// instead waits for the worker at once, so that it reaps it when a stop
// kills it.
const mainpidScript = `
import os, socket, time, signal, sys
gate, reap_on_term = sys.argv[1], sys.argv[2] == "1"
pid = os.fork()
if pid == 0:
    time.sleep(1000); os._exit(0)
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"MAINPID=%d\nREADY=1" % pid, os.environ["NOTIFY_SOCKET"])
signal.signal(signal.SIGTERM, lambda *a: None)
print("worker", pid, flush=True)
if not reap_on_term:
    while not os.path.exists(gate): time.sleep(0.01)
    os.kill(pid, 9)
os.waitpid(pid, 0)
print("reaped", flush=True)
time.sleep(1000)
`

// Cell (running, the MAINPID= grandchild is reaped by its own parent):
// the main process has ended, as the respawn policy then says; nothing is
// signalled through its pid any more; a stop then finishes.
func TestMainPIDGrandchildReapedByLauncher(t *testing.T) {
	t.Parallel()
	py := python3(t)
	gate := filepath.Join(t.TempDir(), "gate")
	r, sock := startControlled(t, "-v", "--respawn", "--respawn-delay", "60s", "--kill-timeout", "1s",
		"--expect", "notify", "--", py, "-c", mainpidScript, gate, "0")
	worker := strings.Fields(r.line())[1]
	waitStderr(t, r, "main process is now "+worker+" (MAINPID)")
	os.WriteFile(gate, nil, 0o644)
	r.expect("reaped")
	waitStderr(t, r, "main process ("+worker+") ended; its parent, not upshim, reaped it")
	waitStderr(t, r, "respawning in 1m0s")
	if out, ok := ctl(t, sock, "signal", "USR1"); ok || !strings.Contains(out, "not running") {
		t.Fatalf("ctl signal USR1 after the main process ended: %q", out)
	}
	if strings.Contains(r.stderr.String(), "to "+worker) {
		t.Fatalf("a signal went to the stale pid %s:\n%s", worker, r.stderr)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
}

// Cell (stopping, the MAINPID= grandchild dies of the kill signal and its
// own parent reaps it): upshim sees the main process has ended, and the
// stop goes on with what is left.
//
// The kill timeout is long, so that the launcher reaps the worker before
// any SIGKILL, however loaded the machine; once upshim has seen the end,
// a second TERM kills the launcher (which ignores TERM) at once.
func TestStopMainPIDGrandchildReapedByLauncher(t *testing.T) {
	t.Parallel()
	py := python3(t)
	r := startShim(t, "-v", "--kill-mode", "process", "--kill-timeout", "60s",
		"--expect", "notify", "--", py, "-c", mainpidScript, "", "1")
	worker := strings.Fields(r.line())[1]
	waitStderr(t, r, "main process is now "+worker+" (MAINPID)")
	waitStderr(t, r, "relaying every signal")
	r.signal(syscall.SIGTERM)
	r.expect("reaped")
	waitStderr(t, r, "main process ("+worker+") ended")
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
}

// Cell (starting, awaiting the pidfile, the pidfile is a FIFO the service
// holds open): refused as not a regular file, and the loop never blocks
// on it: ctl status answers and SIGTERM stops upshim.
func TestPidfileFIFODoesNotFreeze(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := dir + "/fifo.pid"
	fifod := `rm -f ` + pidfile + `; mkfifo ` + pidfile + `; ( exec 3<>` + pidfile + `; sleep 300 ) & exit 0`
	sock := dir + "/p.sock"
	r := startShim(t, "-v", "--kill-timeout", "2s", "--expect", "fork", "--pidfile", pidfile, "--control", sock, "--", "sh", "-c", fifod)
	waitStderr(t, r, "waiting for --pidfile "+pidfile)
	// upshim waits 5s for a pidfile; meanwhile each status must answer
	// (one the loop does not answer in those 5s, it never will: the FIFO
	// blocks for good), and then TERM must stop it.
	for range 3 {
		if out := ctlWithin(t, 5*time.Second, sock, "status"); !strings.Contains(out, "sh:") {
			t.Fatalf("ctl status: %q; stderr:\n%s", out, r.stderr)
		}
	}
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
	if s := r.stderr.String(); !strings.Contains(s, "got TERM") {
		t.Fatalf("stderr:\n%s", s)
	}
}

// Cell (backoff, respawn: the spawn fails with EMFILE): a failed run under
// the respawn policy, respawned again after the delay, not the end of the
// service with 126.
func TestTransientSpawnFailureRespawns(t *testing.T) {
	t.Parallel()
	upshimBinary(t) // puts upshim on PATH for the shell
	dir := t.TempDir()
	args := `upshim -v --respawn-limit unlimited --respawn-delay 200ms --log-file ` + dir + `/e.log --control ` +
		dir + `/e.sock -- sh -c "sleep 0.1; exit 1"`
	// How many descriptors upshim needs depends on the Go runtime and the
	// kernel: lower the limit from what upshim holds while it runs until
	// upshim still starts but a spawn's pipe no longer fits.
	probe := startShimCmd(t, exec.Command("sh", "-c", `exec `+strings.Replace(args, "sleep 0.1; exit 1", "sleep 300", 1)))
	waitStderr(t, probe, "relaying every signal")
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", probe.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	probe.signal(syscall.SIGTERM)
	probe.wait()
	for limit := len(fds) + 1; limit > len(fds)-4; limit-- {
		os.Remove(dir + "/e.sock")
		r := startShimCmd(t, exec.Command("sh", "-c", fmt.Sprintf("ulimit -n %d; exec %s", limit, args)))
		var spawned bool
		eventually(t, func() (bool, string) {
			select {
			case <-r.done:
				t.Fatalf("ulimit -n %d: upshim exited %d before a spawn failed; stderr:\n%s", limit, r.code, r.stderr)
			default:
			}
			s := r.stderr.String()
			spawned = strings.Contains(s, ") started: sh")
			return spawned || strings.Contains(s, "could not start; respawning in"), "no spawn yet; stderr:\n" + s
		})
		if spawned {
			r.signal(syscall.SIGTERM)
			r.wait()
			continue // the limit leaves room for a spawn: one fewer
		}
		eventually(t, func() (bool, string) {
			select {
			case <-r.done:
				t.Fatalf("upshim exited %d; stderr:\n%s", r.code, r.stderr)
			default:
			}
			n := strings.Count(r.stderr.String(), "could not start; respawning in")
			return n >= 3, fmt.Sprintf("%d failed spawns respawned (ulimit -n %d); stderr:\n%s", n, limit, r.stderr)
		})
		if !strings.Contains(r.stderr.String(), "sh: cannot start: too many open files") {
			t.Fatalf("stderr:\n%s", r.stderr)
		}
		r.signal(syscall.SIGTERM)
		r.wait()
		r.assertNothingLeft()
		return
	}
	t.Fatalf("no descriptor limit from %d down made a spawn fail while upshim ran", len(fds)+1)
}

// svcScript is the review's svc.sh: on TERM it says so, finishes its work
// (here: waits for the gate file), writes "flushed cleanly" and exits 0.
func svcScript(gate, out string) string {
	return `trap 'echo got TERM; while [ ! -e ` + gate + ` ]; do sleep 0.01; done; echo flushed cleanly > ` + out + `; exit 0' TERM; ` +
		`echo started; while :; do sleep 0.05; done`
}

// startSvc runs svc.sh under upshim -v with a control socket and a long
// kill timeout, and waits until it has started.
func startSvc(t *testing.T) (r *running, sock, gate, out string) {
	dir := t.TempDir()
	gate, out = dir+"/gate", dir+"/out"
	r, sock = startControlled(t, "-v", "--kill-timeout", "60s", "--", "sh", "-c", svcScript(gate, out))
	r.expect("started")
	return r, sock, gate, out
}

// exitAnswer reports whether a ctl answer says that upshim exits. The
// answer can be lost as upshim exits (review finding 21, not fixed here):
// then ctl says there was no answer, but never that the service stopped
// and upshim stays.
func exitAnswer(got string) bool {
	return got == "stopped; upshim exits" || strings.Contains(got, "no answer from")
}

// flushed checks that svc.sh finished its work: it was not killed.
func flushed(t *testing.T, r *running, out string) {
	t.Helper()
	b, _ := os.ReadFile(out)
	if string(b) != "flushed cleanly\n" {
		t.Fatalf("the service did not flush (%q); stderr:\n%s", b, r.stderr)
	}
	if s := r.stderr.String(); strings.Contains(s, "got 0") || strings.Contains(s, "SIGKILL") || strings.Contains(s, "killing everything") {
		t.Fatalf("stderr:\n%s", s)
	}
}

// Cell (stopping after ctl stop, ctl stop): the second stop waits for the
// first, and both are answered when it is over; nothing is killed.
func TestCtlStopTwiceWaitsForTheStop(t *testing.T) {
	t.Parallel()
	r, sock, gate, out := startSvc(t)
	first := ctlAsync(t, sock, "stop")
	r.expect("got TERM")
	second := ctlAsync(t, sock, "stop")
	waitStderr(t, r, "a stop is under way, waiting for it")
	os.WriteFile(gate, nil, 0o644)
	for _, c := range []<-chan string{first, second} {
		if got := receive(t, r, c); got != "stopped, main process exited with status 0" {
			t.Fatalf("ctl stop: %q; stderr:\n%s", got, r.stderr)
		}
	}
	flushed(t, r, out)
	ctl(t, sock, "exit") // its answer may be lost as upshim exits (finding 21)
	r.wait()
}

// Cell (stopping after SIGTERM, ctl stop): the stop stays an exit; ctl
// waits for it and hears that upshim exits; nothing is killed.
func TestCtlStopDuringTermStopStaysExit(t *testing.T) {
	t.Parallel()
	r, sock, gate, out := startSvc(t)
	r.signal(syscall.SIGTERM)
	r.expect("got TERM")
	stop := ctlAsync(t, sock, "stop")
	waitStderr(t, r, "a stop is under way, waiting for it")
	os.WriteFile(gate, nil, 0o644)
	if got := receive(t, r, stop); !exitAnswer(got) {
		t.Fatalf("ctl stop: %q; stderr:\n%s", got, r.stderr)
	}
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	flushed(t, r, out)
}

// Cell (stopping after SIGTERM, ctl restart): refused; upshim exits and
// the service does not run again.
func TestCtlRestartDuringTermStopRefused(t *testing.T) {
	t.Parallel()
	r, sock, gate, out := startSvc(t)
	r.signal(syscall.SIGTERM)
	r.expect("got TERM")
	if got, ok := ctl(t, sock, "restart"); ok || !strings.Contains(got, "stopping to exit") {
		t.Fatalf("ctl restart: %q; stderr:\n%s", got, r.stderr)
	}
	os.WriteFile(gate, nil, 0o644)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	flushed(t, r, out)
	for l := range r.lines {
		if l == "started" {
			t.Fatalf("the service was restarted; stderr:\n%s", r.stderr)
		}
	}
}

// Cell (stopping after ctl stop, SIGTERM): the init's TERM makes the stop
// an exit, without killing; ctl hears that upshim exits.
func TestTermDuringCtlStopExits(t *testing.T) {
	t.Parallel()
	r, sock, gate, out := startSvc(t)
	stop := ctlAsync(t, sock, "stop")
	r.expect("got TERM")
	r.signal(syscall.SIGTERM)
	waitStderr(t, r, "got TERM during a stop; upshim exits once it is over")
	os.WriteFile(gate, nil, 0o644)
	if got := receive(t, r, stop); !exitAnswer(got) {
		t.Fatalf("ctl stop: %q; stderr:\n%s", got, r.stderr)
	}
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	flushed(t, r, out)
}

// Cell (down, SIGTERM): upshim exits.
func TestTermWhenDownExits(t *testing.T) {
	t.Parallel()
	r, sock, gate, out := startSvc(t)
	os.WriteFile(gate, nil, 0o644)
	if got := mustCtl(t, sock, "stop"); got != "stopped, main process exited with status 0" {
		t.Fatalf("ctl stop: %q", got)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
	flushed(t, r, out)
}

// Cell (running, SIGTERM, the service has joined upshim's process group):
// the stop signals the main process alone, never upshim's group: neither
// upshim's parent nor upshim itself gets the TERM.
func TestServiceJoiningUpshimGroupSparesIt(t *testing.T) {
	t.Parallel()
	py := python3(t)
	got := filepath.Join(t.TempDir(), "parent-got-term")
	service := py + ` -c 'import os,time; os.setpgid(0, os.getpgid(os.getppid())); print("joined", flush=True); time.sleep(60)'`
	script := `trap 'echo got TERM >> ` + got + `' TERM; upshim -v --kill-timeout 3 -- ` + service + ` & u=$!; echo "upshim $u"; ` +
		`wait $u; st=$?; while kill -0 $u 2>/dev/null; do wait $u; st=$?; done; echo "exited $st"`
	cmd := exec.Command("sh", "-c", script)
	// Its own group, which upshim and the service share: not the test's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := startShimCmd(t, cmd)
	pid, _ := strconv.Atoi(strings.Fields(r.line())[1])
	r.expect("joined")
	waitStderr(t, r, "relaying every signal")
	syscall.Kill(pid, syscall.SIGTERM)
	for l := r.line(); !strings.HasPrefix(l, "exited "); l = r.line() {
	}
	r.wait() // and with it, the whole of upshim's stderr
	if _, err := os.Stat(got); err == nil {
		t.Fatalf("upshim's parent got TERM; stderr:\n%s", r.stderr)
	}
	if s := r.stderr.String(); strings.Contains(s, "killing everything") || !strings.Contains(s, "stop TERM to ") {
		t.Fatalf("stderr:\n%s", s)
	}
	r.assertNothingLeft()
}

// reforkScript re-forks, each time the test creates the next gate file
// (pf.gate1, pf.gate2…): the parent exits 0 right after the fork, and the
// child, once its parent is gone, writes the pidfile late, through a
// rename.
const reforkScript = `
import os, sys, time
pf, gens = sys.argv[1], int(sys.argv[2])
for gen in range(gens):
    while gen > 0 and not os.path.exists(pf + ".gate%d" % gen): time.sleep(0.01)
    parent = os.getpid()
    if os.fork(): os._exit(0)
    while os.getppid() == parent: time.sleep(0.005)
    time.sleep(0.1)
    with open(pf + ".tmp", "w") as f: f.write("%d\n" % os.getpid())
    os.rename(pf + ".tmp", pf)
    print("gen", gen, os.getpid(), flush=True)
time.sleep(300)
`

// Cell (running, a forking service's main process exits 0 and its
// successor writes the pidfile a little later): the pidfile is read again
// until it names the successor, which is followed; nothing is killed.
func TestReforkFollowsLatePidfile(t *testing.T) {
	t.Parallel()
	py := python3(t)
	pidfile := filepath.Join(t.TempDir(), "d.pid")
	r := startShim(t, "-v", "--expect", "fork", "--pidfile", pidfile, "--", py, "-c", reforkScript, pidfile, "5")
	first := strings.Fields(r.line())[2]
	waitStderr(t, r, "main process is "+first)
	for gen := 1; gen < 5; gen++ {
		// Each generation re-forks once upshim follows the one before:
		// one that re-forked before would not be followed, but skipped.
		os.WriteFile(fmt.Sprintf("%s.gate%d", pidfile, gen), nil, 0o644)
		pid := strings.Fields(r.line())[2]
		waitStderr(t, r, "following "+pid)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
	if s := r.stderr.String(); strings.Contains(s, "left 1 process behind") || strings.Contains(s, "no successor") {
		t.Fatalf("stderr:\n%s", s)
	}
	r.assertNothingLeft()
}

// Cell (starting, READY=1 with --ready-fd whose reader has gone): the
// write's SIGPIPE stays upshim's; the service gets no PIPE.
func TestReadyFDReaderGoneNoSigpipe(t *testing.T) {
	t.Parallel()
	readR, readW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	readR.Close()
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := exec.Command(upshimBinary(t), "-v", "--expect", "notify", "--ready-fd", "3", "--", "sh", "-c",
		`while [ ! -e `+gate+` ]; do sleep 0.01; done; sdnotify READY=1; exec sigrecord`)
	cmd.ExtraFiles = []*os.File{readW}
	r := startShimCmd(t, cmd)
	readW.Close()
	// READY=1 comes after upshim relays SIGPIPE, as in the review.
	waitStderr(t, r, "relaying every signal")
	os.WriteFile(gate, nil, 0o644)
	waitStderr(t, r, "is ready")
	r.line() // sigrecord: ready
	r.signal(syscall.SIGTERM)
	for l := r.line(); l != "TERM"; l = r.line() {
		if l == "PIPE" {
			t.Fatalf("the service got PIPE; stderr:\n%s", r.stderr)
		}
	}
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
}

// Cell (starting and running, bad MAINPID= datagrams in a burst): one
// warning per run, not one per datagram.
func TestNotifyBadMainPIDLoggedOnce(t *testing.T) {
	t.Parallel()
	r := startShim(t, "-v", "--expect", "notify", "--", "sh", "-c",
		`i=0; while [ $i -lt 30 ]; do sdnotify MAINPID=1; i=$((i+1)); done; sdnotify READY=1; exec sigrecord`)
	r.line()
	waitStderr(t, r, "is ready") // the datagrams are read in order
	if n := strings.Count(r.stderr.String(), "MAINPID=1 is not one of upshim's descendants"); n != 1 {
		t.Fatalf("%d warnings for 30 bad MAINPID=; stderr:\n%s", n, r.stderr)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Cell (running, ctl status): the uptime is a whole number of
// milliseconds, not a float turned back into a Duration. Below 1s the
// float happens to convert back exactly; above it, about one in twelve
// uptimes did not: status is asked until the uptime passes 2.5s.
func TestStatusUptimeRounded(t *testing.T) {
	t.Parallel()
	r, sock := startControlled(t, "--", "sigrecord")
	r.line()
	up := regexp.MustCompile(`, up ([^,]+),`)
	for end := time.Now().Add(waitLimit(t)); ; {
		out := mustCtl(t, sock, "status")
		m := up.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("status: %q", out)
		}
		d, err := time.ParseDuration(m[1])
		if err != nil || d%time.Millisecond != 0 {
			t.Fatalf("status: uptime %q is not whole milliseconds: %q", m[1], out)
		}
		if d > 2500*time.Millisecond || time.Now().After(end) {
			break
		}
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Cell (running, upshim dies of SIGKILL): the main process dies too, also
// when it was started through the setup helper, as another user.
func TestUpshimKilledTakesServiceAlong(t *testing.T) {
	t.Parallel()
	cases := [][]string{{}, {"--umask", "027"}}
	if os.Geteuid() == 0 {
		if err := ensureTestUser(); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, []string{"--user", "upshimtest", "--nice", "1"})
	}
	for _, flags := range cases {
		r := startShim(t, append(flags, "--", "sh", "-c", "echo ready $$; exec sleep 300")...)
		pid := strings.Fields(r.line())[1]
		r.signal(syscall.SIGKILL)
		r.wait()
		eventually(t, func() (bool, string) {
			st := procState(pid)
			return st == 0 || st == 'Z', fmt.Sprintf("%v: the service (%s) outlived upshim's SIGKILL", flags, pid)
		})
		r.assertNothingLeft()
	}
}
