package shim

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// The control socket speaks a line protocol small enough for socat. A
// client sends one line, "upshim/1 VERB [ARG...]", and gets one line back,
// "ok TEXT", "error TEXT", or for a status that is not ready "no TEXT", and
// the connection closes. Only root and
// upshim's own user may talk to it: the kernel vouches for the peer's uid.

// ControlVersion is the protocol's first word.
const ControlVersion = "upshim/1"

// request is one control request, handed to the loop as an event.
type request struct {
	verb  string
	args  []string
	reply chan string
}

// controlSocket listens on --control PATH.
type controlSocket struct {
	path string
	fd   int
}

// listenControl creates the socket at path, replacing a stale one left by
// an upshim that died, and refusing one that a live upshim answers on.
func listenControl(path string, out chan<- request) (*controlSocket, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--control %s: exists and is not a socket", path)
		}
		if conn, err := dialControl(path); err == nil {
			unix.Close(conn)
			return nil, fmt.Errorf("--control %s: another upshim is listening there", path)
		}
		os.Remove(path) // stale: nobody answers
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Nobody but the owner may connect, even before the chmod below.
	old := syscall.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	syscall.Umask(old)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err == nil {
		err = unix.Listen(fd, 16)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("--control %s: %v", path, errors.Unwrap(err))
	}
	c := &controlSocket{path: path, fd: fd}
	go c.accept(out)
	return c, nil
}

// dialControl connects to the socket at path.
func dialControl(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// accept serves connections, one goroutine each. It owns no process
// state: every request goes to the loop.
func (c *controlSocket) accept(out chan<- request) {
	for {
		fd, _, err := unix.Accept4(c.fd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			return // closed at exit
		}
		go serve(fd, out)
	}
}

// serve answers one connection.
func serve(fd int, out chan<- request) {
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	// MSG_NOSIGNAL: a client gone before its answer must not raise a
	// SIGPIPE, which upshim would relay to the service.
	answer := func(s string) { unix.Sendto(fd, []byte(s+"\n"), unix.MSG_NOSIGNAL, nil) }
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || (cred.Uid != 0 && int(cred.Uid) != os.Getuid()) {
		uid := -1
		if cred != nil {
			uid = int(cred.Uid)
		}
		answer(fmt.Sprintf("error permission denied: uid %d may not control this upshim (only root and uid %d may)", uid, os.Getuid()))
		return
	}
	line, err := readLine(fd)
	if err != nil {
		answer("error " + err.Error())
		return
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != ControlVersion {
		answer(fmt.Sprintf("error want %q VERB [ARG...], got %q", ControlVersion, line))
		return
	}
	req := request{verb: fields[1], args: fields[2:], reply: make(chan string, 1)}
	out <- req
	answer(<-req.reply)
}

// readLine reads one line of at most 1 KiB.
func readLine(fd int) (string, error) {
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			if n > 0 {
				break
			}
			return "", errors.New("no request")
		}
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return string(buf[:i]), nil
		}
	}
	if n == len(buf) {
		return "", errors.New("request longer than 1 KiB")
	}
	return string(buf[:n]), nil
}

// close stops listening and removes the socket.
func (c *controlSocket) close() {
	if c == nil {
		return
	}
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
	unix.Close(c.fd)
	os.Remove(c.path)
}

// Answers of Ctl, which upshim ctl makes its exit status.
const (
	CtlOK       = 0 // done, or the answer is yes
	CtlError    = 1 // refused, failed, or no upshim
	CtlNotReady = 3 // status: the service is not ready (LSB's "not running")
)

// Ctl sends one request to the upshim listening at path and returns its
// answer and one of CtlOK, CtlError, CtlNotReady.
func Ctl(path string, verb string, args ...string) (answer string, code int) {
	fd, err := dialControl(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Sprintf("no upshim is listening on %s", path), CtlError
		}
		return fmt.Sprintf("%s: %v", path, err), CtlError
	}
	defer unix.Close(fd)
	msg := strings.Join(append([]string{ControlVersion, verb}, args...), " ") + "\n"
	if err := unix.Sendto(fd, []byte(msg), unix.MSG_NOSIGNAL, nil); err != nil {
		return err.Error(), CtlError
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		out = append(out, buf[:n]...)
	}
	line := strings.TrimSuffix(string(out), "\n")
	for prefix, code := range map[string]int{"ok": CtlOK, "no ": CtlNotReady, "error ": CtlError} {
		if rest, found := strings.CutPrefix(line, prefix); found {
			return strings.TrimPrefix(rest, " "), code
		}
	}
	return "no answer from " + path, CtlError
}

// Status is what `ctl status --json` prints; its field names are stable.
type Status struct {
	Name          string  `json:"name"`
	State         string  `json:"state"`
	PID           int     `json:"pid"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Respawns      int     `json:"respawns"`
	LastExit      string  `json:"last_exit"`
	LastExitCode  *int    `json:"last_exit_code"`
	Ready         bool    `json:"ready"`
	ServiceStatus string  `json:"service_status"`
	LogFile       string  `json:"log_file"`
}

// JSON formats the status as one JSON object, with the field names of the
// struct tags. It is written by hand: encoding/json would cost upshim
// more start-up and memory than this whole file.
func (st Status) JSON() string {
	b := []byte(`{"name":`)
	b = appendJSONString(b, st.Name)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, st.State)
	b = fmt.Appendf(b, `,"pid":%d,"uptime_seconds":%s,"respawns":%d,"last_exit":`, st.PID,
		strconv.FormatFloat(st.UptimeSeconds, 'f', -1, 64), st.Respawns)
	b = appendJSONString(b, st.LastExit)
	if st.LastExitCode != nil {
		b = fmt.Appendf(b, `,"last_exit_code":%d`, *st.LastExitCode)
	} else {
		b = append(b, `,"last_exit_code":null`...)
	}
	b = fmt.Appendf(b, `,"ready":%t,"service_status":`, st.Ready)
	b = appendJSONString(b, st.ServiceStatus)
	b = append(b, `,"log_file":`...)
	b = appendJSONString(b, st.LogFile)
	return string(append(b, '}'))
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r) // invalid bytes come out as U+FFFD
		}
	}
	return append(b, '"')
}

// statusNow is the service's state as the loop sees it.
func (s *Supervisor) statusNow() Status {
	st := Status{
		Name: s.cfg.Name, State: s.state.String(), PID: s.main, Respawns: s.respawns,
		Ready: s.state == stateRunning, ServiceStatus: s.status, LogFile: s.cfg.Log.File,
	}
	if s.main != 0 {
		st.UptimeSeconds = time.Since(s.mainStart).Round(time.Millisecond).Seconds()
	}
	if s.ranOnce && s.lastEnded {
		code := exitCode(s.last)
		st.LastExit, st.LastExitCode = describeStatus(s.last), &code
	}
	return st
}

// onRequest answers a control request; the replies that must wait for
// the service (stop, restart) are kept until then.
func (s *Supervisor) onRequest(r request) {
	switch r.verb {
	case "status":
		st := s.statusNow()
		if len(r.args) == 1 && r.args[0] == "--json" {
			r.reply <- "ok " + st.JSON()
			return
		}
		// "no" tells ctl to exit 3: a readiness probe can run it as is.
		answer := "ok"
		if !st.Ready {
			answer = "no"
		}
		text := fmt.Sprintf("%s %s: %s", answer, st.Name, st.State)
		if st.PID != 0 {
			// Rounded to the millisecond the seconds were rounded to: the
			// float does not convert back to a round Duration.
			up := time.Duration(math.Round(st.UptimeSeconds*1e3)) * time.Millisecond
			text += fmt.Sprintf(", pid %d, up %s", st.PID, up)
		}
		text += fmt.Sprintf(", %d respawns", st.Respawns)
		if st.LastExit != "" {
			text += ", last run " + st.LastExit
		}
		if st.ServiceStatus != "" {
			text += fmt.Sprintf(", status %q", st.ServiceStatus)
		}
		if st.LogFile != "" {
			text += ", log " + st.LogFile
		}
		r.reply <- text
	case "start":
		if s.state != stateDown {
			r.reply <- fmt.Sprintf("error already %s", s.state)
			return
		}
		s.restartFromDown()
		r.reply <- "ok " + s.startedText()
	case "stop", "restart":
		if s.state == stateDown {
			if r.verb == "stop" {
				r.reply <- "ok already stopped"
				return
			}
			s.restartFromDown()
			r.reply <- "ok " + s.startedText()
			return
		}
		if s.stopRequested && !s.stayUp {
			// A stop that ends upshim (TERM, ctl exit) is under way: a
			// stop waits for it, a restart cannot undo it.
			if r.verb == "restart" {
				r.reply <- "error upshim is stopping to exit; not restarting"
				return
			}
			s.waiting = append(s.waiting, r)
			s.requestStop(0)
			return
		}
		s.stayUp = true
		s.restartWhenDown = s.restartWhenDown || r.verb == "restart"
		s.waiting = append(s.waiting, r)
		s.requestStop(0)
	case "reload":
		if s.main == 0 {
			r.reply <- "error not running"
			return
		}
		s.reload()
		r.reply <- fmt.Sprintf("ok sent %s to %d", Signal(s.cfg.ReloadSignal), s.main)
	case "signal":
		sig, err := ParseSignal(strings.Join(r.args, ""))
		if err != nil || len(r.args) != 1 {
			r.reply <- "error want signal SIG"
			return
		}
		if s.main == 0 {
			r.reply <- "error not running"
			return
		}
		s.send(syscall.Signal(sig), s.cfg.SignalGroup, "signal")
		r.reply <- fmt.Sprintf("ok sent %s to %d", sig, s.main)
	case "rotate":
		if s.sink == nil {
			r.reply <- "error no --log-file to rotate"
			return
		}
		if err := s.sink.Rotate(); err != nil {
			r.reply <- "error " + err.Error()
			return
		}
		r.reply <- "ok rotated " + s.cfg.Log.File
	case "exit":
		r.reply <- "ok exiting"
		s.stayUp, s.restartWhenDown = false, false
		if s.state == stateDown {
			s.state = stateDone
			return
		}
		s.requestStop(0)
	default:
		r.reply <- fmt.Sprintf("error unknown verb %q (want status, start, stop, restart, reload, signal, rotate or exit)", r.verb)
	}
}

// startedText says what a start did.
func (s *Supervisor) startedText() string {
	if s.main != 0 {
		return fmt.Sprintf("started, pid %d", s.main)
	}
	return "starting (" + s.state.String() + ")"
}

// onDown is reached when a stop asked over the control socket is over:
// upshim stays up, the service down, until start, restart or exit.
func (s *Supervisor) onDown() {
	s.state = stateDown
	s.announce("STATUS=stopped")
	text := "ok stopped"
	if s.lastEnded {
		text += ", main process " + describeStatus(s.last)
	}
	restart := s.restartWhenDown
	if restart {
		s.restartFromDown()
		text = "ok re" + s.startedText()
	}
	for _, r := range s.waiting {
		r.reply <- text
	}
	s.waiting = nil
}

// restartFromDown starts the service again after a requested stop. It
// does not count against the respawn limit.
func (s *Supervisor) restartFromDown() {
	s.stopRequested, s.killed, s.killHooks = false, false, false
	s.stayUp, s.restartWhenDown = false, false
	s.startTimedOut, s.consecutive = false, 0
	s.next = next{}
	s.beginStart()
}
