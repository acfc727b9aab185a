package shim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The sd_notify protocol, both ways. Upward, upshim tells whatever runs it
// (systemd with Type=notify) that the service is ready, reloading or
// stopping. Downward, with --expect notify, the service tells upshim.

// upward sends sd_notify messages to the NOTIFY_SOCKET upshim was given.
type upward struct {
	fd   int
	addr *unix.SockaddrUnix
}

// newUpward connects to $NOTIFY_SOCKET, or returns nil when it is unset
// or unusable. A path starting with @ is in the abstract namespace.
func newUpward(path string) *upward {
	if path == "" || (path[0] != '/' && path[0] != '@') {
		return nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	return &upward{fd: fd, addr: &unix.SockaddrUnix{Name: path}}
}

// send delivers one message; a lost message is not worth failing for.
func (u *upward) send(msg string) error {
	if u == nil {
		return nil
	}
	return unix.Sendto(u.fd, []byte(msg), 0, u.addr)
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, for RELOADING=1.
func monotonicUsec() string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return strconv.FormatInt(int64(ts.Sec)*1e6+int64(ts.Nsec)/1e3, 10)
}

// notification is one datagram from the service, with the sender's
// credentials as the kernel vouched for them.
type notification struct {
	pid, uid int
	fields   map[string]string
}

// notifySocket is the private NOTIFY_SOCKET upshim gives a service under
// --expect notify.
type notifySocket struct {
	dir  string
	path string
	fd   int
}

// listenNotify creates the socket in a new directory of its own, which
// only the service's user (uid, or -1 for upshim's own) may enter, and
// starts reading it into out.
func listenNotify(uid int, out chan<- notification) (*notifySocket, error) {
	dir, err := os.MkdirTemp("", "upshim-notify-")
	if err != nil {
		return nil, err
	}
	n := &notifySocket{dir: dir, path: filepath.Join(dir, "notify"), fd: -1}
	if err := n.create(uid); err != nil {
		if n.fd >= 0 {
			unix.Close(n.fd)
		}
		os.RemoveAll(dir)
		return nil, err
	}
	go n.read(out)
	return n, nil
}

// create binds the socket and, for a service of another user, gives it
// the socket and then the directory. Once the directory is the user's,
// the user can put a link in place of anything in it, so every step
// works on descriptors or does not follow links, and the socket is given
// first, while the directory is still root's alone. (Chowning both by
// path let a link renamed over the socket in between have root chown
// the link's target.)
func (n *notifySocket) create(uid int) error {
	dirfd, err := unix.Open(n.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	// MkdirTemp made it 0700 and ours; a directory swapped in since is not.
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return err
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return fmt.Errorf("%s: replaced while upshim set it up", n.dir)
	}
	if n.fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	if err := unix.Bind(n.fd, &unix.SockaddrUnix{Name: n.path}); err != nil {
		return err
	}
	// Without it the kernel attaches no credentials to check.
	if err := unix.SetsockoptInt(n.fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return err
	}
	if uid < 0 {
		return nil
	}
	// The service runs as another user: it must reach the socket.
	if err := unix.Fchownat(dirfd, "notify", uid, -1, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return unix.Fchown(dirfd, uid, -1)
}

// read passes every datagram with credentials on to the loop. It is the
// socket's only reader and owns no process state.
func (n *notifySocket) read(out chan<- notification) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, _, _, err := unix.Recvmsg(n.fd, buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // closed at exit
		}
		msg := notification{pid: -1, uid: -1, fields: map[string]string{}}
		if cmsgs, err := unix.ParseSocketControlMessage(oob[:noob]); err == nil {
			for _, c := range cmsgs {
				if cred, err := unix.ParseUnixCredentials(&c); err == nil {
					msg.pid, msg.uid = int(cred.Pid), int(cred.Uid)
				}
			}
		}
		for _, line := range bytes.Split(buf[:nb], []byte{'\n'}) {
			if k, v, ok := strings.Cut(string(line), "="); ok {
				msg.fields[k] = v
			}
		}
		out <- msg
	}
}

// close removes the socket and its directory.
func (n *notifySocket) close() {
	if n == nil {
		return
	}
	unix.Close(n.fd)
	os.RemoveAll(n.dir)
}

// onNotify handles a message from the service's NOTIFY_SOCKET. Messages
// from other users than the service's, root's and upshim's are dropped.
func (s *Supervisor) onNotify(m notification) {
	if m.uid != 0 && m.uid != os.Getuid() && (s.setup.cred == nil || m.uid != int(s.setup.cred.Uid)) {
		s.warnNotify("warning: NOTIFY_SOCKET: message from uid %d (pid %d) ignored", m.uid, m.pid)
		return
	}
	if v, ok := m.fields["MAINPID"]; ok {
		pid, err := strconv.Atoi(v)
		switch {
		case err != nil || !descends(pid):
			s.warnNotify("warning: NOTIFY_SOCKET: MAINPID=%s is not one of upshim's descendants: ignored", v)
		case pid != s.main && s.main != 0:
			was := s.main
			if err := s.adoptNamed(pid); err != nil {
				s.warnNotify("warning: NOTIFY_SOCKET: MAINPID=%s %v: ignored", v, err)
				break
			}
			s.logf(levelInfo, "main process is now %d (MAINPID), was %d", pid, was)
		}
	}
	if v, ok := m.fields["STATUS"]; ok {
		s.status = v
		s.announce("STATUS=" + v)
	}
	if m.fields["STOPPING"] == "1" {
		s.announce("STOPPING=1")
	}
	if m.fields["RELOADING"] == "1" {
		s.announce("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
	}
	if m.fields["READY"] == "1" {
		switch s.state {
		case stateStarting:
			s.becomeReady()
		case stateRunning:
			s.announce("READY=1") // done reloading
		}
	}
}

// warnNotify logs a bad NOTIFY_SOCKET message, once per run of the main
// process: the service can send them as fast as upshim can read.
func (s *Supervisor) warnNotify(format string, args ...any) {
	if s.notifyWarned {
		return
	}
	s.notifyWarned = true
	s.logf(levelWarn, format+" (further bad messages in this run are not logged)", args...)
}

// descends reports whether pid is below upshim. A MAINPID may be the
// notifying launcher's child, which becomes upshim's own once the launcher
// exits: until then the launcher, not upshim, reaps it.
func descends(pid int) bool {
	self := os.Getpid()
	for i := 0; pid > 1 && i < 64; i++ {
		pid = parentOf(pid)
		if pid == self {
			return true
		}
	}
	return false
}

// announce tells the outer supervisor msg, READY=1 only the first time.
func (s *Supervisor) announce(msg string) {
	if msg == "READY=1" {
		if s.announcedReady && !s.reloading {
			return
		}
		s.announcedReady, s.reloading = true, false
	}
	if err := s.up.send(msg); err != nil {
		s.logf(levelDebug, "NOTIFY_SOCKET: %v", err)
	}
}
