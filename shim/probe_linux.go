package shim

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The probes themselves: the machine says when (effProbe), the loop runs
// them without ever blocking. A command probe is spawned like a hook, in
// a process group of its own, and reaped by the one reaper; the machine
// kills its group at the timeout. Its output comes through a pipe that a
// goroutine reads, up to the timeout. A network probe runs in a goroutine
// whose socket has the timeout as deadline. Either hands the loop a
// probeResult, which the machine matches to the probe by its number.

// probeResult is what a probe's goroutine hands the loop.
type probeResult struct {
	seq    int
	output string
	final  bool // the whole result (a network probe), not just a command's output
	ok     bool
}

// runProbe carries out effProbe.
func (s *Supervisor) runProbe(seq int, now time.Time) {
	deadline := now.Add(time.Duration(s.cfg.HealthTimeout))
	p := s.cfg.Health
	if p.Kind == ProbeCmd {
		s.spawnProbe(seq, deadline, now)
		return
	}
	go func() {
		ok, out := netProbe(p, deadline)
		s.probes <- probeResult{seq: seq, output: out, final: true, ok: ok}
	}()
}

// spawnProbe starts /bin/sh -c CMD with the hooks' environment, its
// stdin /dev/null and its output into a pipe.
func (s *Supervisor) spawnProbe(seq int, deadline, now time.Time) {
	failed := func(format string, args ...any) {
		s.then(event{kind: evProbeResult, at: now, seq: seq, final: true, output: fmt.Sprintf(format, args...)})
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		failed("cannot make a pipe for the probe's output: %v", err)
		return
	}
	setup := *s.setup
	setup.files = []uintptr{s.devnull.Fd(), uintptr(fds[1]), uintptr(fds[1])}
	pid, err := s.procs.spawn(s.cfg.Name, "/bin/sh", []string{"sh", "-c", s.cfg.Health.Cmd}, &setup, false)
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		failed("cannot execute /bin/sh: %v", err)
		return
	}
	s.then(event{kind: evProbeStarted, at: now, seq: seq, pid: pid})
	// Non-blocking, so that the runtime's poller waits for it: a read
	// costs no thread, and the deadline holds.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		s.then(event{kind: evProbeResult, at: now, seq: seq})
		return
	}
	go s.readProbe(os.NewFile(uintptr(fds[0]), "probe"), seq, deadline)
}

// readProbe keeps the first maxProbeOutput bytes a command probe writes
// and discards the rest, until the pipe closes or the timeout: what the
// probe left running cannot hold the result back by holding the pipe.
func (s *Supervisor) readProbe(f *os.File, seq int, deadline time.Time) {
	f.SetReadDeadline(deadline)
	out := make([]byte, 0, 512)
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if keep := min(n, maxProbeOutput-len(out)); keep > 0 {
			out = append(out, buf[:keep]...)
		}
		if err != nil {
			break
		}
	}
	f.Close()
	s.probes <- probeResult{seq: seq, output: string(out)}
}

// netProbe connects to the probe's address before deadline; for
// --health-http it sends a GET and reads the status line, 200 to 399
// being healthy (no redirect is followed). It is HTTP/1.1 by hand:
// net/http would add 4 MB to upshim.
func netProbe(p HealthProbe, deadline time.Time) (ok bool, output string) {
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("tcp", p.Addr)
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if p.Kind == ProbeTCP {
		return true, "connected to " + c.RemoteAddr().String()
	}
	c.SetDeadline(deadline)
	req := "GET " + p.Path + " HTTP/1.1\r\nHost: " + p.Host +
		"\r\nUser-Agent: upshim\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return false, "GET " + p.Path + ": " + err.Error()
	}
	line, err := readStatusLine(c)
	if err != nil {
		return false, "GET " + p.Path + ": " + err.Error()
	}
	code, err := statusCode(line)
	if err != nil {
		return false, "GET " + p.Path + ": " + err.Error()
	}
	return code >= 200 && code < 400, line
}

// readStatusLine reads the first line of the answer, at most 4 KiB.
func readStatusLine(r io.Reader) (string, error) {
	buf := make([]byte, 0, 256)
	chunk := make([]byte, 256)
	for len(buf) < maxProbeOutput {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			return string(bytes.TrimRight(buf[:i], "\r")), nil
		}
		if err == io.EOF {
			if len(buf) == 0 {
				return "", fmt.Errorf("the connection closed with no answer")
			}
			return "", fmt.Errorf("the answer ended in its status line: %q", buf)
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("no status line in the first %d bytes", maxProbeOutput)
}

// statusCode reads NNN from "HTTP/1.x NNN reason".
func statusCode(line string) (int, error) {
	if len(line) < 12 || line[:7] != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, fmt.Errorf("not an HTTP/1 status line: %q", line)
	}
	code, err := strconv.Atoi(line[9:12])
	if err != nil || code < 100 {
		return 0, fmt.Errorf("not an HTTP/1 status line: %q", line)
	}
	return code, nil
}
