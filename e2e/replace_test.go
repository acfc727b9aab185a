//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests of graceful replace (ctl replace, --replace-signal): a new
// instance beside the old one, on the same held socket, and the old one
// stopped once the new one is ready. The service is this test binary,
// turned by UPSHIM_REPLACE_SERVICE into replaceService; the file that
// variable names holds the mode of the next instance to start, so that
// one command line gives instances that behave differently.

func init() {
	if f := os.Getenv("UPSHIM_REPLACE_SERVICE"); f != "" {
		os.Exit(replaceService(f))
	}
}

// replaceService is the service. It reads its mode from modeFile:
//
//	ready       answers each connection on fd 3 with its pid, sends
//	            READY=1, and on SIGTERM stops accepting, finishes what it
//	            accepted and exits 0
//	slow        ready, but READY=1 comes after 1.5s
//	fail        exits 1 after 100ms, never ready, never accepting
//	never       never ready and never accepting; leaves a child of its
//	            own session (its tree) that prints "child PID"
//	ignoreterm  ready, and ignores SIGTERM
//	usr1ready   ready, and sends READY=1 again on each SIGUSR1
//	warm        ready, but accepts nothing for its first second
//	stray       ready, after leaving a process of its own session that
//	            upshim adopts: in no instance's tree
//
// It prints "instance PID MODE" first.
func replaceService(modeFile string) int {
	b, _ := os.ReadFile(modeFile)
	mode := strings.TrimSpace(string(b))
	pid := os.Getpid()
	fmt.Printf("instance %d %s\n", pid, mode)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	switch mode {
	case "fail":
		time.Sleep(100 * time.Millisecond)
		return 1
	case "never":
		child := exec.Command("sleep", "1000")
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := child.Start(); err == nil {
			fmt.Printf("child %d\n", child.Process.Pid)
		}
		<-term
		return 0
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
	case "warm":
		time.Sleep(time.Second) // warming up: accepts nothing yet
	case "stray":
		exec.Command("sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 &").Run()
	}
	ln, err := net.FileListener(os.NewFile(3, "listen"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "replace service:", err)
		return 1
	}
	answer := []byte(strconv.Itoa(pid) + "\n")
	var busy sync.WaitGroup
	// busy counts the accept in progress too: a connection Accept returns
	// after SIGTERM is still answered before the instance exits.
	busy.Add(1)
	go func() {
		defer busy.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write(answer)
			c.Close()
		}
	}()
	if mode == "slow" {
		time.Sleep(1500 * time.Millisecond)
	}
	notify("READY=1")
	if mode == "usr1ready" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				notify("READY=1")
			}
		}()
	}
	if mode == "ignoreterm" {
		select {}
	}
	<-term
	ln.Close()
	busy.Wait()
	return 0
}

// notify sends msg to $NOTIFY_SOCKET.
func notify(msg string) {
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		return
	}
	c.Write([]byte(msg))
	c.Close()
}

// replaceRig is an upshim running the replace service on a held port.
type replaceRig struct {
	t    *testing.T
	r    *running
	sock string
	addr string
	mode string // the mode file
}

// startReplaceRig starts the service in mode first under --expect notify
// and --listen, with args added, and waits until it answers.
func startReplaceRig(t *testing.T, first string, args ...string) *replaceRig {
	t.Helper()
	rig := &replaceRig{t: t, mode: filepath.Join(t.TempDir(), "mode")}
	rig.next(first)
	all := append([]string{"--listen", "127.0.0.1:0", "--expect", "notify", "--kill-timeout", "3s",
		"--env", "UPSHIM_REPLACE_SERVICE=" + rig.mode}, args...)
	rig.r, rig.sock = startControlled(t, append(all, "--", testBinary(t))...)
	rig.addr = heldAddrs(t, rig.sock)[0]
	eventually(t, func() (bool, string) {
		st := statusJSON(t, rig.sock)
		return st["state"] == "running", fmt.Sprintf("not running: %v", st)
	})
	return rig
}

// next sets the mode of the next instance.
func (rig *replaceRig) next(mode string) {
	if err := os.WriteFile(rig.mode, []byte(mode), 0o644); err != nil {
		rig.t.Fatal(err)
	}
}

// pid is the main process ctl status names.
func (rig *replaceRig) pid() int {
	pid, _ := statusJSON(rig.t, rig.sock)["pid"].(float64)
	return int(pid)
}

// load runs clients that open connections to addr until stopped, and
// counts what they see.
type load struct {
	stop                      atomic.Bool
	wg                        sync.WaitGroup
	ok, refused, reset, other atomic.Int64
	firstOther                atomic.Value
	mu                        sync.Mutex
	pids                      map[string]int
	slowest                   atomic.Int64 // nanoseconds, connect to answer
}

func startLoad(addr string, clients int) *load {
	l := &load{pids: map[string]int{}}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stop.Load() {
				began := time.Now()
				c, err := net.DialTimeout("tcp", addr, deadline)
				var b []byte
				if err == nil {
					c.SetDeadline(time.Now().Add(deadline))
					if b, err = io.ReadAll(c); err == nil && len(b) == 0 {
						err = io.ErrUnexpectedEOF
					}
					c.Close()
				}
				if took := int64(time.Since(began)); err == nil && took > l.slowest.Load() {
					l.slowest.Store(took) // racy max: good enough for a figure
				}
				switch {
				case err == nil:
					l.ok.Add(1)
					l.mu.Lock()
					l.pids[strings.TrimSpace(string(b))]++
					l.mu.Unlock()
				case errors.Is(err, syscall.ECONNREFUSED):
					l.refused.Add(1)
				case errors.Is(err, syscall.ECONNRESET):
					l.reset.Add(1)
				default:
					l.other.Add(1)
					l.firstOther.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	return l
}

// end stops the clients and fails the test if any connection failed.
func (l *load) end(t *testing.T) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	t.Logf("%d answered, %d refused, %d reset, %d other %v; answers by pid %v", l.ok.Load(), l.refused.Load(),
		l.reset.Load(), l.other.Load(), l.firstOther.Load(), l.pids)
	if l.refused.Load() != 0 || l.reset.Load() != 0 || l.other.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("clients lost connections: %d answered, %d refused, %d reset, %d other (%v)",
			l.ok.Load(), l.refused.Load(), l.reset.Load(), l.other.Load(), l.firstOther.Load())
	}
}

// Under load, 5 replaces in a row: every client connection is answered,
// by the old instance or the new one, none refused or reset; each answer
// names both pids, and the old one is gone when it comes.
func TestReplaceUnderLoadRefusesNothing(t *testing.T) {
	rig := startReplaceRig(t, "ready")
	l := startLoad(rig.addr, 4)
	pids := []int{rig.pid()}
	for i := range 5 {
		time.Sleep(50 * time.Millisecond) // some load on each instance
		out := mustCtl(t, rig.sock, "replace")
		var from, to int
		if _, err := fmt.Sscanf(out, "replaced %d %d", &from, &to); err != nil || from != pids[i] || to == from {
			t.Fatalf("replace %d: %q (old pid %d)", i+1, out, pids[i])
		}
		if syscall.Kill(from, 0) == nil {
			t.Errorf("replace %d answered while the old pid %d is alive", i+1, from)
		}
		if got := rig.pid(); got != to {
			t.Fatalf("after replace %d, status names pid %d, want %d", i+1, got, to)
		}
		pids = append(pids, to)
	}
	time.Sleep(50 * time.Millisecond)
	l.end(t)
	for pid := range l.pids {
		n, _ := strconv.Atoi(pid)
		if !containsInt(pids, n) {
			t.Errorf("an answer came from pid %s, not one of the instances %v", pid, pids)
		}
	}
	if st := statusJSON(t, rig.sock); st["respawns"].(float64) != 0 {
		t.Errorf("replaces counted as respawns: %v", st)
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
	rig.r.assertNothingLeft()
}

func containsInt(s []int, n int) bool {
	for _, v := range s {
		if v == n {
			return true
		}
	}
	return false
}

// A new instance that exits before it is ready, or is never ready, is
// killed with its tree; the old one serves throughout, no connection is
// lost, the answer says why, and three failures in a row do not count in
// the respawn window (--respawn-limit 1/60 would give up after two).
func TestReplaceFailureKeepsOldServing(t *testing.T) {
	rig := startReplaceRig(t, "ready", "--replace-timeout", "1s", "--respawn-limit", "1/60")
	old := rig.pid()
	l := startLoad(rig.addr, 4)
	for _, c := range []struct{ mode, why string }{
		{"fail", "replace failed: the new main process ("},
		{"never", "replace failed: expected READY=1 on NOTIFY_SOCKET, but none came after 1s"},
		{"fail", "exited with status 1"},
	} {
		rig.next(c.mode)
		out, ok := ctl(t, rig.sock, "replace")
		if ok || !strings.Contains(out, c.why) || !strings.Contains(out, fmt.Sprintf("main process %d keeps serving", old)) {
			t.Errorf("%s: ctl replace: ok=%v %q", c.mode, ok, out)
		}
		if got := rig.pid(); got != old {
			t.Fatalf("%s: status names pid %d, want the old %d", c.mode, got, old)
		}
	}
	// The never-ready instance's child, in a session of its own, went
	// with its tree.
	var child int
	for child == 0 {
		select {
		case line := <-rig.r.lines:
			fmt.Sscanf(line, "child %d", &child)
		case <-time.After(deadline):
			t.Fatal("the never-ready instance printed no child")
		}
	}
	eventually(t, func() (bool, string) {
		return syscall.Kill(child, 0) != nil, fmt.Sprintf("the failed instance's child %d is still alive", child)
	})
	time.Sleep(50 * time.Millisecond)
	l.end(t)
	st := statusJSON(t, rig.sock)
	if st["state"] != "running" || st["respawns"].(float64) != 0 {
		t.Errorf("after failed replaces: %v", st)
	}
	// And it can still be replaced.
	rig.next("ready")
	if out := mustCtl(t, rig.sock, "replace"); !strings.HasPrefix(out, fmt.Sprintf("replaced %d ", old)) {
		t.Errorf("ctl replace: %q", out)
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
	rig.r.assertNothingLeft()
}

// An old instance that ignores the kill signal gets SIGKILL at
// --kill-timeout, to its own tree only: the new one serves on.
func TestReplaceOldIgnoringTermIsKilled(t *testing.T) {
	rig := startReplaceRig(t, "ignoreterm", "--kill-timeout", "1s")
	old := rig.pid()
	rig.next("ready")
	start := time.Now()
	out := mustCtl(t, rig.sock, "replace")
	took := time.Since(start)
	var from, to int
	if _, err := fmt.Sscanf(out, "replaced %d %d", &from, &to); err != nil || from != old {
		t.Fatalf("ctl replace: %q", out)
	}
	if took < time.Second {
		t.Errorf("answered after %s, before the kill timeout of 1s", took)
	}
	if syscall.Kill(old, 0) == nil {
		t.Errorf("old pid %d alive after the replace", old)
	}
	waitStderr(t, rig.r, fmt.Sprintf("old main process (%d) or its group still running after 1s; sending SIGKILL", old))
	if got := answer(t, "tcp", rig.addr); got != strconv.Itoa(to) {
		t.Errorf("answered by %q, want the new pid %d", got, to)
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
	rig.r.assertNothingLeft()
}

// A READY=1 from the old instance during a replace (after a reload of
// its own) does not make the new one ready; the replace times out.
// Meanwhile a second replace and a restart are refused, and status shows
// replacing with both pids.
func TestReplaceReadyOnlyFromNewTree(t *testing.T) {
	rig := startReplaceRig(t, "usr1ready", "--replace-timeout", "2s")
	old := rig.pid()
	rig.next("never")
	result := make(chan string, 1)
	go func() {
		out, _ := ctl(t, rig.sock, "replace")
		result <- out
	}()
	var st map[string]any
	eventually(t, func() (bool, string) {
		st = statusJSON(t, rig.sock)
		return st["state"] == "replacing" && st["new_pid"].(float64) != 0, fmt.Sprintf("not replacing: %v", st)
	})
	if int(st["pid"].(float64)) != old || st["ready"] != true {
		t.Errorf("status during the replace: %v (old pid %d)", st, old)
	}
	if text := mustCtl(t, rig.sock, "status"); !strings.Contains(text, fmt.Sprintf("replacing, pid %d, up ", old)) ||
		!strings.Contains(text, fmt.Sprintf(", new pid %d", int(st["new_pid"].(float64)))) {
		t.Errorf("status: %q", text)
	}
	for _, verb := range []string{"replace", "restart"} {
		if out, ok := ctl(t, rig.sock, verb); ok || out != "upshim: ctl "+verb+": replace in progress" {
			t.Errorf("ctl %s during a replace: ok=%v %q", verb, ok, out)
		}
	}
	// ctl signal goes to the instance that serves: the old one, which
	// sends READY=1 again.
	if out := mustCtl(t, rig.sock, "signal", "USR1"); out != fmt.Sprintf("sent USR1 to %d", old) {
		t.Errorf("ctl signal: %q", out)
	}
	select {
	case out := <-result:
		if !strings.Contains(out, "expected READY=1 on NOTIFY_SOCKET, but none came after 2s") {
			t.Errorf("ctl replace: %q", out)
		}
	case <-time.After(deadline):
		t.Fatal("ctl replace never answered")
	}
	if got := rig.pid(); got != old {
		t.Errorf("status names pid %d, want the old %d", got, old)
	}
}

// Upward, a replace is a reload: RELOADING=1 with MONOTONIC_USEC when it
// begins, READY=1 when it is over, and never a MAINPID.
func TestReplaceUpward(t *testing.T) {
	up := listenUpward(t)
	mode := filepath.Join(t.TempDir(), "mode")
	os.WriteFile(mode, []byte("ready"), 0o644)
	sock := filepath.Join(t.TempDir(), "upshim.sock")
	cmd := exec.Command(upshimBinary(t), "--control", sock, "--listen", "127.0.0.1:0", "--expect", "notify",
		"--env", "UPSHIM_REPLACE_SERVICE="+mode, "--", testBinary(t))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+up.path)
	r := startShimCmd(t, cmd)
	up.expect("READY=1")
	mustCtl(t, sock, "replace")
	var seen []string
	buf := make([]byte, 4096)
	up.conn.SetReadDeadline(time.Now().Add(deadline))
	for len(seen) == 0 || seen[len(seen)-1] != "READY=1" {
		n, err := up.conn.Read(buf)
		if err != nil {
			t.Fatalf("upward after %q: %v", seen, err)
		}
		if msg := string(buf[:n]); len(seen) > 0 || strings.HasPrefix(msg, "RELOADING=1") {
			seen = append(seen, msg)
		}
	}
	all := strings.Join(seen, " | ")
	if !strings.HasPrefix(seen[0], "RELOADING=1\nMONOTONIC_USEC=") || strings.Contains(all, "MAINPID") {
		t.Errorf("upward during a replace: %q", all)
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Under --expect none without a probe, a replace is refused with what to
// add; upshim and the service go on.
func TestReplaceRefusedWithoutReadiness(t *testing.T) {
	_, sock := startControlled(t, "--", "sleep", "1000")
	out, ok := ctl(t, sock, "replace")
	if ok || !strings.Contains(out, "add --expect notify") || !strings.Contains(out, "--health-cmd") {
		t.Errorf("ctl replace: ok=%v %q", ok, out)
	}
	if st := statusJSON(t, sock); st["state"] != "running" {
		t.Errorf("after a refused replace: %v", st)
	}
}

// A stop during a replace stops both instances, and leaves nothing.
func TestReplaceStopStopsBoth(t *testing.T) {
	rig := startReplaceRig(t, "ready")
	rig.next("never")
	result := make(chan string, 1)
	go func() {
		out, _ := ctl(t, rig.sock, "replace")
		result <- out
	}()
	eventually(t, func() (bool, string) {
		st := statusJSON(t, rig.sock)
		return st["state"] == "replacing" && st["new_pid"].(float64) != 0, fmt.Sprintf("not replacing: %v", st)
	})
	if out := mustCtl(t, rig.sock, "stop"); !strings.HasPrefix(out, "stopped") {
		t.Errorf("ctl stop: %q", out)
	}
	if out := <-result; !strings.Contains(out, "replace failed: a stop was asked for") {
		t.Errorf("ctl replace: %q", out)
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
	rig.r.assertNothingLeft()
}

// The old instance dying during a replace: the new one takes over once
// ready, without a third being started; post-stop of a replaced instance
// is told from a stop's by UPSHIM_REPLACED_BY.
func TestReplaceOldDyingPromotesNew(t *testing.T) {
	out := filepath.Join(t.TempDir(), "post-stop")
	rig := startReplaceRig(t, "ready", "--respawn", "--post-stop", "echo $SERVICE_RESULT ${UPSHIM_REPLACED_BY:-stop} >>"+out)
	old := rig.pid()
	rig.next("slow")
	result := make(chan string, 1)
	go func() {
		out, _ := ctl(t, rig.sock, "replace")
		result <- out
	}()
	eventually(t, func() (bool, string) {
		st := statusJSON(t, rig.sock)
		return st["state"] == "replacing" && st["new_pid"].(float64) != 0, fmt.Sprintf("not replacing: %v", st)
	})
	syscall.Kill(old, syscall.SIGKILL)
	var from, to int
	answer := <-result
	if _, err := fmt.Sscanf(answer, "replaced %d %d", &from, &to); err != nil || from != old {
		t.Fatalf("ctl replace: %q", answer)
	}
	st := statusJSON(t, rig.sock)
	if int(st["pid"].(float64)) != to || st["respawns"].(float64) != 0 {
		t.Errorf("after the old one died: %v", st)
	}
	// A plain replace, then a stop: post-stop says which was which.
	rig.next("ready")
	var again int
	if _, err := fmt.Sscanf(mustCtl(t, rig.sock, "replace"), "replaced %d %d", &from, &again); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, rig.sock, "stop")
	b, _ := os.ReadFile(out)
	want := fmt.Sprintf("signal %d\nsuccess %d\nsuccess stop\n", to, again)
	if string(b) != want {
		t.Errorf("post-stop saw:\n%s\nwant:\n%s", b, want)
	}
}

// --replace-signal: the signal replaces as ctl replace does.
func TestReplaceSignal(t *testing.T) {
	rig := startReplaceRig(t, "ready", "--replace-signal", "USR2")
	old := rig.pid()
	rig.r.signal(syscall.SIGUSR2)
	waitStderr(t, rig.r, fmt.Sprintf("replaced main process (%d) with ", old))
	if got := rig.pid(); got == old {
		t.Errorf("status still names the old pid %d", old)
	}
}

// Under --kill-mode all the two trees are told apart: the old one's kill
// signal spares the new one's child; a process below upshim in neither
// tree makes a replace refused.
func TestReplaceKillModeAll(t *testing.T) {
	rig := startReplaceRig(t, "ready", "--kill-mode", "all")
	old := rig.pid()
	rig.next("ready")
	var to, from int
	if _, err := fmt.Sscanf(mustCtl(t, rig.sock, "replace"), "replaced %d %d", &from, &to); err != nil || from != old {
		t.Fatal(err)
	}
	if got := answer(t, "tcp", rig.addr); got != strconv.Itoa(to) {
		t.Errorf("answered by %q, want %d", got, to)
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
	rig.r.assertNothingLeft()

	// A stray: a process of its own session whose parent is gone, which
	// upshim, its subreaper, adopted; it is in neither tree.
	rig = startReplaceRig(t, "stray", "--kill-mode", "all")
	old = rig.pid()
	rig.next("ready")
	out, ok := ctl(t, rig.sock, "replace")
	if ok || !strings.Contains(out, "--kill-mode all: process ") || !strings.Contains(out, "(sleep) is below upshim but in neither") {
		t.Errorf("ctl replace with a stray: ok=%v %q", ok, out)
	}
	if got := rig.pid(); got != old {
		t.Errorf("status names pid %d, want %d", got, old)
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
	rig.r.assertNothingLeft()
}

// What a replace buys over a restart, for a service that takes a second
// to warm up before it accepts: under a restart, clients wait for the
// new instance (no refusal, the socket is held, but a stall); under a
// replace the old one serves until the new one is ready. The restart's
// stall shows that the test can fail.
func TestReplaceNoStallWhereRestartStalls(t *testing.T) {
	rig := startReplaceRig(t, "warm")
	waitBound(t, rig.addr)
	slowest := map[string]time.Duration{}
	for _, verb := range []string{"restart", "replace"} {
		l := startLoad(rig.addr, 4)
		time.Sleep(100 * time.Millisecond)
		mustCtl(t, rig.sock, verb)
		eventually(t, func() (bool, string) {
			st := statusJSON(t, rig.sock)
			return st["state"] == "running", fmt.Sprintf("not running: %v", st)
		})
		waitBound(t, rig.addr)
		time.Sleep(100 * time.Millisecond)
		l.end(t)
		slowest[verb] = time.Duration(l.slowest.Load())
	}
	t.Logf("slowest connection: %s across a restart, %s across a replace", slowest["restart"], slowest["replace"])
	if slowest["restart"] < 900*time.Millisecond {
		t.Errorf("a restart stalled clients only %s: the warm-up does not show", slowest["restart"])
	}
	if slowest["replace"] > slowest["restart"]/2 {
		t.Errorf("a replace stalled clients %s (a restart %s)", slowest["replace"], slowest["restart"])
	}
	mustCtl(t, rig.sock, "exit")
	rig.r.wait()
}

// generate systemd maps systemctl reload to a replace when
// --replace-signal asks for it, and leaves the HUP reload otherwise.
func TestReplaceGenerateSystemd(t *testing.T) {
	out, err := generateOut(t, "generate", "systemd", "--expect", "notify", "--replace-signal", "USR2", "--", "/bin/true")
	if err != nil || !strings.Contains(out, "ExecReload=/bin/kill -USR2 $MAINPID\n") {
		t.Errorf("with --replace-signal USR2: %v\n%s", err, out)
	}
	out, err = generateOut(t, "generate", "systemd", "--expect", "notify", "--", "/bin/true")
	if err != nil || !strings.Contains(out, "ExecReload=/bin/kill -HUP $MAINPID\n") {
		t.Errorf("without: %v\n%s", err, out)
	}
	for _, bad := range []string{"TERM", "HUP", "KILL", "NOPE"} {
		if code, stderr := runUpshim(t, "--replace-signal", bad, "--", "true"); code != 2 || !strings.Contains(stderr, "--replace-signal") {
			t.Errorf("--replace-signal %s: exit %d, %q", bad, code, stderr)
		}
	}
}
