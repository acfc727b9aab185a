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

	// Filled in by the loop (vet) for the machine.
	allowed      bool   // from root, upshim's or the service's user
	mainPIDOK    bool   // MAINPID names one of upshim's descendants
	mainPIDChild bool   // ...and upshim's own child, whose end reap sees
	mainPIDWhy   string // why a MAINPID was refused, when known
	mainPID      int
	mainPGID     int
	fromMain     bool // sent by the main process's tree (checked for watchdog messages only)
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

// vet checks what the kernel says of a notification's sender, and a
// MAINPID it names, for the machine. Messages from other users than the
// service's, root's and upshim's are not allowed. A MAINPID must descend
// from upshim; one that is not upshim's own child (a launcher's child) is
// pinned with a pidfd before the check, which the loop keeps to follow it
// (see mainfd_linux.go) if the machine adopts it.
func (s *Supervisor) vet(n notification) *notification {
	n.allowed = n.uid == 0 || n.uid == os.Getuid() || (s.setup.cred != nil && n.uid == int(s.setup.cred.Uid))
	for _, k := range []string{"WATCHDOG", "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC", "READY"} {
		// READY=1 is checked only during a replace, where the old
		// instance's must not end the new one's start.
		if k == "READY" && s.m.old == nil {
			continue
		}
		if _, ok := n.fields[k]; ok && n.allowed {
			n.fromMain = s.fromMainTree(n.pid)
			break
		}
	}
	v, ok := n.fields["MAINPID"]
	if !ok || !n.allowed {
		return &n
	}
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 1 || (s.m.hook != nil && pid == s.m.hook.pid) || (s.m.probe != nil && pid == s.m.probe.pid) {
		return &n
	}
	if s.procs.parent(pid) == s.self {
		n.mainPIDOK, n.mainPIDChild = true, true
	} else if fd, err := openPidfd(pid); err == nil {
		n.mainPIDOK = true
		s.vetted, s.vettedPid = fd, pid
	} else {
		n.mainPIDWhy = err.Error()
	}
	if n.mainPIDOK {
		n.mainPID, n.mainPGID = pid, pid
		if g, err := s.procs.group(pid); err == nil {
			n.mainPGID = g
		}
	}
	return &n
}
