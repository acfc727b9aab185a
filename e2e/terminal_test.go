//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pty is the master side of a pseudo-terminal whose slave is upshim's
// controlling terminal, as in an interactive shell.
type pty struct {
	t      *testing.T
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	eof    chan struct{}
}

// openPty opens a pseudo-terminal, master and slave.
func openPty(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		skipOrFail(t, "no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// startInTerminal runs upshim with args as the session leader of a new
// pseudo-terminal, the way a login shell would run it in the foreground.
// The terminal tests do not run in parallel.
func startInTerminal(t *testing.T, args ...string) (*pty, *exec.Cmd) {
	t.Helper()
	master, slave := openPty(t)
	cmd := exec.Command(upshimBinary(t), args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.Env = append(os.Environ(), "TERM=dumb", "PS1=$ ")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	p := &pty{t: t, master: master, eof: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil { // EIO once every slave is closed
				close(p.eof)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		master.Close()
	})
	return p, cmd
}

// waitFor waits until the terminal has shown s.
func (p *pty) waitFor(s string) {
	p.t.Helper()
	eventually(p.t, func() (bool, string) {
		return strings.Contains(p.output(), s), fmt.Sprintf("terminal never showed %q; it shows:\n%s", s, p.output())
	})
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *pty) write(s string) {
	p.t.Helper()
	if _, err := p.master.WriteString(s); err != nil {
		p.t.Fatal(err)
	}
}

// exitStatus waits for upshim and returns its exit status.
func exitStatus(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	limit := waitLimit(t)
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("upshim still running after %s", limit.Round(time.Second))
	}
	return cmd.ProcessState.ExitCode()
}

// The service gets the terminal's foreground in its own process group.
func TestTerminalForeground(t *testing.T) {
	p, cmd := startInTerminal(t, "--", "sh", "-c", `echo "pgid=$(ps -o pgid= -p $$ | tr -d ' ') tpgid=$(ps -o tpgid= -p $$ | tr -d ' ') pid=$$"`)
	p.waitFor("pid=")
	if code := exitStatus(t, cmd); code != 0 {
		t.Fatalf("exit status %d; terminal:\n%s", code, p.output())
	}
	var pgid, tpgid, pid int
	line := p.output()[strings.Index(p.output(), "pgid="):]
	if _, err := fmt.Sscanf(line, "pgid=%d tpgid=%d pid=%d", &pgid, &tpgid, &pid); err != nil {
		t.Fatalf("service said %q: %v", line, err)
	}
	if pgid != pid || tpgid != pgid {
		t.Fatalf("service pid %d runs in group %d, terminal foreground is %d: want all equal", pid, pgid, tpgid)
	}
}

// Ctrl-C reaches the service, and upshim takes it as a stop even with
// --respawn, as a shell would.
func TestTerminalCtrlC(t *testing.T) {
	p, cmd := startInTerminal(t, "--respawn", "--", "sh", "-c", `echo ready; exec sleep 100`)
	p.waitFor("ready")
	waitForeground(t, p)
	p.write("\x03")
	if code := exitStatus(t, cmd); code != 130 {
		t.Fatalf("exit status %d after Ctrl-C, want 130; terminal:\n%s", code, p.output())
	}
	if strings.Count(p.output(), "ready") != 1 {
		t.Fatalf("the service was respawned after Ctrl-C:\n%s", p.output())
	}
}

// waitForeground waits until a process other than upshim holds the
// terminal's foreground, so that typed signals reach the service.
func waitForeground(t *testing.T, p *pty) {
	t.Helper()
	// TIOCGPGRP on the master reports the slave's foreground group.
	eventually(t, func() (bool, string) {
		fg, err := unix.IoctlGetInt(int(p.master.Fd()), unix.TIOCGPGRP)
		return err == nil && fg > 0 && processName(fg) != "upshim", "the service never took the terminal's foreground"
	})
}

func processName(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// An interactive bash under upshim has job control.
func TestTerminalBashJobControl(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		skipOrFail(t, "bash not installed")
	}
	p, cmd := startInTerminal(t, "--", bash, "--norc", "--noprofile", "-i")
	// The quotes keep the terminal's echo of each command from matching
	// what the command prints.
	p.write("echo fl''ags=$-\n")
	p.waitFor("flags=")
	p.write("sleep 100 &\n")
	p.write("jobs; echo jobs-''listed\n")
	p.waitFor("jobs-listed")
	p.write("kill %1; wait; echo wai''ted\n")
	p.waitFor("waited")
	p.write("exit 7\n")
	if code := exitStatus(t, cmd); code != 7 {
		t.Fatalf("exit status %d, want bash's 7; terminal:\n%s", code, p.output())
	}
	out := p.output()
	flags := out[strings.Index(out, "flags=")+6:]
	if i := strings.IndexAny(flags, "\r\n"); i > 0 {
		flags = flags[:i]
	}
	if !strings.Contains(flags, "m") {
		t.Errorf("bash has no job control (flags %q)", flags)
	}
	for _, bad := range []string{"no job control", "cannot set terminal process group"} {
		if strings.Contains(out, bad) {
			t.Errorf("bash says %q:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "[1]") {
		t.Errorf("jobs listed nothing:\n%s", out)
	}
}

// Ctrl-Z stops the service and upshim with it; SIGCONT to upshim, as fg
// sends, continues both.
func TestTerminalCtrlZ(t *testing.T) {
	p, cmd := startInTerminal(t, "-v", "--", "sh", "-c", `echo ready; read line; echo "got:$line"`)
	p.waitFor("relaying every signal")
	p.waitFor("ready")
	waitForeground(t, p)
	p.write("\x1a")
	waitState(t, cmd.Process.Pid, 'T')
	cmd.Process.Signal(syscall.SIGCONT)
	p.waitFor("stopped by TSTP")
	waitState(t, cmd.Process.Pid, 'S')
	waitForeground(t, p)
	p.write("hello\n")
	p.waitFor("got:hello")
	if code := exitStatus(t, cmd); code != 0 {
		t.Fatalf("exit status %d; terminal:\n%s", code, p.output())
	}
}

// waitState waits until process pid is in state (T stopped, S sleeping).
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	eventually(t, func() (bool, string) {
		got := procState(strconv.Itoa(pid))
		return got == state, fmt.Sprintf("process %d is in state %c, not %c", pid, got, state)
	})
}
