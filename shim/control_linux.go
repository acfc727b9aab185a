package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

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
	reply chan string // buffered: the loop never waits on it
}

// Limits of the control socket. A connection costs a goroutine and a
// descriptor, never a thread: the runtime's netpoller waits on them all,
// so idle or slow clients cannot exhaust upshim's threads.
const (
	// controlMaxConns bounds the connections open at once. At the limit,
	// the client idle longest (connected, no request yet) is closed to
	// make room; when every one is waiting for its answer, the new one is
	// refused with "error busy".
	controlMaxConns = 64
	// controlIdleTimeout is how long a client has, from connecting, to
	// send its request line, and then to take its answer.
	controlIdleTimeout = 5 * time.Second
	// controlReplyWait bounds how long an exiting upshim waits for the
	// answers it has given (to exit, to a stop) to be written.
	controlReplyWait = 2 * time.Second
)

// controlSocket listens on --control PATH.
type controlSocket struct {
	path     string
	ln       *net.UnixListener
	out      chan<- *request
	warn     func(format string, args ...any)
	done     chan struct{} // closed when the loop no longer takes requests
	accepted chan struct{} // closed when accept has returned
	serving  sync.WaitGroup

	mu    sync.Mutex
	conns map[*controlConn]bool // open connections
	seq   uint64
}

// controlConn is one client's connection.
type controlConn struct {
	*net.UnixConn
	seq  uint64 // accept order: the oldest idle client goes first
	idle bool   // no request read yet; guarded by controlSocket.mu
}

// errControlLive: a live upshim answers on the control socket's path.
var errControlLive = errors.New("another upshim is listening there")

// listenControl creates the socket at path, replacing a stale one left by
// an upshim that died, and refusing one that a live upshim answers on.
// Its errors begin with flag: "--control PATH".
func listenControl(path, flag string, out chan<- *request, warn func(string, ...any)) (*controlSocket, error) {
	if limit := len(unix.RawSockaddrUnix{}.Path); len(path) > limit {
		return nil, usageError{fmt.Errorf("%s: the path is %d bytes long; a unix socket's path can have at most %d", flag, len(path), limit)}
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, usageError{fmt.Errorf("%s: exists and is not a socket", flag)}
		}
		if conn, err := dialControl(path); err == nil {
			unix.Close(conn)
			return nil, usageError{fmt.Errorf("%s: %w", flag, errControlLive)}
		}
		os.Remove(path) // stale: nobody answers
	}
	ln, err := bindControl(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	c := &controlSocket{
		path: path, ln: ln, out: out, warn: warn,
		done: make(chan struct{}), accepted: make(chan struct{}),
		conns: map[*controlConn]bool{},
	}
	go c.accept()
	return c, nil
}

// bindControl creates the listening socket at path with mode 0600.
func bindControl(path string) (*net.UnixListener, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot create a socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // the listener works on a duplicate
	// bind creates the file with the mode of the socket itself (less the
	// umask), so the mode is set before bind, and nothing after it acts on
	// the path through a link: a chmod by path followed a link that a user
	// who can write the directory had swapped in. The umask is not used:
	// it is process-wide, and other goroutines create files.
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return nil, fmt.Errorf("cannot set the socket's mode: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("cannot bind: %v", err)
	}
	// Check what bind made, without following links: a kernel that
	// ignored the mode, or a socket already replaced, is not served.
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, errors.New("replaced by something else while upshim set it up")
	} else if st.Mode&0o177 != 0 {
		os.Remove(path)
		return nil, fmt.Errorf("bound with mode %04o, want 0600", st.Mode&0o777)
	}
	if err := unix.Listen(fd, controlMaxConns); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("cannot listen: %v", err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		var errno syscall.Errno
		if errors.As(err, &errno) {
			err = errno
		}
		return nil, fmt.Errorf("cannot listen: %v", err)
	}
	ln := l.(*net.UnixListener)
	ln.SetUnlinkOnClose(false) // close removes the path itself
	return ln, nil
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
func (c *controlSocket) accept() {
	defer close(c.accepted)
	var delay time.Duration
	var warned time.Time
	for {
		conn, err := c.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE, ENFILE, ENOMEM…: the listener is still good. (The
			// kernel checks for a free descriptor before it looks for a
			// client, so this comes with nobody connecting, too.) The
			// client idle longest gives back its descriptor, and accept is
			// tried again, backing off so that a lasting shortage costs
			// little. A shortage that lasts is worth a warning, at most
			// once a minute.
			c.mu.Lock()
			evicted := c.evict()
			c.mu.Unlock()
			c.farewell(evicted, "error closed: upshim ran out of descriptors")
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if delay == time.Second && time.Since(warned) > time.Minute {
				warned = time.Now()
				var errno syscall.Errno
				if errors.As(err, &errno) {
					err = errno
				}
				c.warn("warning: --control %s: cannot accept connections: %v; retrying", c.path, err)
			}
			select {
			case <-time.After(delay):
			case <-c.done:
				return
			}
			continue
		}
		delay = 0
		c.mu.Lock()
		var evicted *controlConn
		if len(c.conns) >= controlMaxConns {
			evicted = c.evict()
		}
		admitted := len(c.conns) < controlMaxConns
		var cc *controlConn
		if admitted {
			c.seq++
			cc = &controlConn{UnixConn: conn, seq: c.seq, idle: true}
			c.conns[cc] = true
		}
		c.mu.Unlock()
		c.farewell(evicted, fmt.Sprintf("error closed: idle, and %d connections are open", controlMaxConns))
		if !admitted {
			c.farewell(&controlConn{UnixConn: conn}, fmt.Sprintf("error busy: %d requests in progress", controlMaxConns))
			continue
		}
		c.serving.Add(1)
		go c.serve(cc)
	}
}

// evict takes the oldest idle connection out of the table, or returns
// nil. c.mu must be held.
func (c *controlSocket) evict() *controlConn {
	var oldest *controlConn
	for cc := range c.conns {
		if cc.idle && (oldest == nil || cc.seq < oldest.seq) {
			oldest = cc
		}
	}
	if oldest != nil {
		delete(c.conns, oldest)
	}
	return oldest
}

// farewell tells a client why it is cut off, and closes its connection.
// Its serve goroutine, if any, finds it closed.
func (c *controlSocket) farewell(cc *controlConn, why string) {
	if cc == nil {
		return
	}
	// The client sent nothing yet, so its receive buffer has room: the
	// write does not wait, and the deadline only makes sure.
	cc.answer(why, 100*time.Millisecond)
	cc.Close()
}

// serve answers one connection.
func (c *controlSocket) serve(cc *controlConn) {
	defer c.serving.Done()
	defer func() {
		c.mu.Lock()
		delete(c.conns, cc)
		c.mu.Unlock()
		cc.Close()
	}()
	var cred *unix.Ucred
	err := errors.New("no descriptor")
	if rc, e := cc.SyscallConn(); e == nil {
		rc.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	}
	if err != nil || (cred.Uid != 0 && int(cred.Uid) != os.Getuid()) {
		uid := -1
		if cred != nil {
			uid = int(cred.Uid)
		}
		cc.answer(fmt.Sprintf("error permission denied: uid %d may not control this upshim (only root and uid %d may)", uid, os.Getuid()), controlIdleTimeout)
		return
	}
	cc.SetReadDeadline(time.Now().Add(controlIdleTimeout))
	line, err := readLine(cc)
	c.mu.Lock()
	open := c.conns[cc]
	cc.idle = false
	c.mu.Unlock()
	switch {
	case !open:
		return // evicted: farewell has answered
	case c.exiting():
		cc.answer("error upshim is exiting", controlIdleTimeout)
		return
	case err != nil:
		cc.answer("error "+err.Error(), controlIdleTimeout)
		return
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != ControlVersion {
		cc.answer(fmt.Sprintf("error want %q VERB [ARG...], got %q", ControlVersion, line), controlIdleTimeout)
		return
	}
	req := &request{verb: fields[1], args: fields[2:], reply: make(chan string, 1)}
	select {
	case c.out <- req:
	case <-c.done:
		cc.answer("error upshim is exiting", controlIdleTimeout)
		return
	}
	var answer string
	select {
	case answer = <-req.reply:
	case <-c.done:
		// The loop has returned: an answer it gave is in the channel.
		select {
		case answer = <-req.reply:
		default:
			answer = "error upshim exited before answering"
		}
	}
	cc.answer(answer, controlIdleTimeout)
}

// exiting reports whether close has begun.
func (c *controlSocket) exiting() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// answer writes one line, waiting at most timeout for the client to take
// it. MSG_NOSIGNAL: a client gone before its answer must not raise a
// SIGPIPE, which upshim would relay to the service (a plain Write would).
func (cc *controlConn) answer(s string, timeout time.Duration) {
	rc, err := cc.SyscallConn()
	if err != nil {
		return
	}
	msg := []byte(s + "\n")
	cc.SetWriteDeadline(time.Now().Add(timeout))
	rc.Write(func(fd uintptr) bool {
		for len(msg) > 0 {
			n, err := unix.SendmsgN(int(fd), msg, nil, nil, unix.MSG_NOSIGNAL)
			switch err {
			case nil:
				msg = msg[n:]
			case unix.EINTR:
			case unix.EAGAIN:
				return false // the poller waits, up to the deadline
			default:
				return true
			}
		}
		return true
	})
}

// readLine reads one line of at most 1 KiB, before the deadline.
func readLine(r io.Reader) (string, error) {
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return string(buf[:i]), nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", fmt.Errorf("no request line within %s of connecting", controlIdleTimeout)
		}
		if err != nil {
			if n > 0 {
				break
			}
			return "", errors.New("no request")
		}
	}
	if n == len(buf) {
		return "", errors.New("request longer than 1 KiB")
	}
	return string(buf[:n]), nil
}

// close stops listening, writes the answers the loop has given (bounded
// by controlReplyWait), and removes the socket. The loop has returned.
func (c *controlSocket) close() {
	if c == nil {
		return
	}
	close(c.done)
	// The path goes before the listener closes: in between, an upshim
	// starting with the same path would find it stale, replace it, and
	// lose its own socket to this removal.
	os.Remove(c.path)
	c.ln.Close()
	<-c.accepted
	// Clients yet to send a request will not be served: wake them.
	c.mu.Lock()
	for cc := range c.conns {
		if cc.idle {
			cc.SetReadDeadline(time.Now())
		}
	}
	c.mu.Unlock()
	served := make(chan struct{})
	go func() {
		c.serving.Wait()
		close(served)
	}()
	select {
	case <-served:
	case <-time.After(controlReplyWait):
	}
}
