package shim

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Listening sockets held across respawns: systemd's socket-activation
// protocol. upshim binds each --listen address once, before pre-start, and
// keeps the socket open for as long as it runs; every instance of the main
// process gets the sockets as fds 3, 4, … with LISTEN_FDS, LISTEN_FDNAMES
// and LISTEN_PID. While no instance runs (a crash, the respawn delay, ctl
// stop) the kernel goes on completing connections into the socket's
// backlog, and the next instance accepts them: a client sees a delay, never
// a refusal. upshim itself never accepts, reads or shuts them down.

// ListenAddr is one --listen [NAME=]ADDR.
type ListenAddr struct {
	// Name goes to LISTEN_FDNAMES; "unknown" when none was given, as
	// systemd names a socket without FileDescriptorName=.
	Name string
	// Spec is ADDR as given, for messages.
	Spec string

	family int // AF_INET, AF_INET6 or AF_UNIX; 0: every address, IPv6 and IPv4 if it can
	sotype int // SOCK_STREAM or SOCK_DGRAM
	ip     netip.Addr
	port   int
	path   string // unix: a path, or @name for the abstract namespace
	v6only bool   // tcp6:, udp6:
}

// ListenList is the repeatable --listen. It is a pflag.Value.
type ListenList []ListenAddr

// listenForms is what ADDR may be, for error messages.
const listenForms = "want [NAME=]ADDR with ADDR HOST:PORT, :PORT, [IPv6]:PORT, a tcp4:, tcp6:, udp:, udp4: or udp6: prefix, unix:/PATH or unix:@NAME"

// Set parses one [NAME=]ADDR and adds it.
func (l *ListenList) Set(s string) error {
	a, err := ParseListen(s)
	if err != nil {
		return err
	}
	*l = append(*l, a)
	return nil
}

// String lists the addresses as given.
func (l *ListenList) String() string {
	parts := make([]string, len(*l))
	for i, a := range *l {
		parts[i] = a.Spec
		if a.Name != "unknown" {
			parts[i] = a.Name + "=" + a.Spec
		}
	}
	return strings.Join(parts, ",")
}

// Type names the value in --help.
func (l *ListenList) Type() string { return "[NAME=]ADDR" }

// ParseListen parses [NAME=]ADDR. HOST is an IP address: upshim resolves
// no names, so that what it binds does not depend on DNS at boot.
func ParseListen(s string) (ListenAddr, error) {
	a := ListenAddr{Name: "unknown", Spec: s}
	// Every ADDR holds a colon, and no NAME may: a NAME= prefix is text
	// before the first = that has no colon.
	if name, rest, ok := strings.Cut(s, "="); ok && !strings.Contains(name, ":") {
		if err := checkFDName(name); err != nil {
			return a, err
		}
		a.Name, a.Spec = name, rest
	}
	spec := a.Spec
	kind, rest, ok := strings.Cut(spec, ":")
	switch {
	case ok && kind == "unix":
		return a, a.parseUnix(rest)
	case ok && (kind == "tcp" || kind == "tcp4" || kind == "tcp6" || kind == "udp" || kind == "udp4" || kind == "udp6"):
		spec = rest
	default:
		kind = "tcp"
	}
	a.sotype = unix.SOCK_STREAM
	if strings.HasPrefix(kind, "udp") {
		a.sotype = unix.SOCK_DGRAM
	}
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return a, errors.New(listenForms)
	}
	host, portText := spec[:i], spec[i+1:]
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return a, fmt.Errorf("PORT %q: want a number from 0 to 65535", portText)
	}
	a.port = int(port)
	switch {
	case host == "":
		// Every address: IPv6 and IPv4 on one socket, unless the prefix
		// says which.
		switch kind[len(kind)-1] {
		case '4':
			a.family, a.ip = unix.AF_INET, netip.IPv4Unspecified()
		case '6':
			a.family, a.ip, a.v6only = unix.AF_INET6, netip.IPv6Unspecified(), true
		}
		return a, nil
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		ip, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
			return a, fmt.Errorf("HOST %s: want an IPv6 address in brackets, without a %%zone", host)
		}
		a.family, a.ip = unix.AF_INET6, ip
	default:
		ip, err := netip.ParseAddr(host)
		switch {
		case err == nil && ip.Is6():
			return a, fmt.Errorf("HOST %s: an IPv6 address goes in brackets, [%s]:%d", host, host, port)
		case err != nil:
			return a, fmt.Errorf("HOST %q: want an IP address (upshim resolves no names)", host)
		}
		a.family, a.ip = unix.AF_INET, ip
	}
	switch {
	case kind[len(kind)-1] == '4' && a.family != unix.AF_INET:
		return a, fmt.Errorf("%s: wants an IPv4 address", kind)
	case kind[len(kind)-1] == '6' && a.family != unix.AF_INET6:
		return a, fmt.Errorf("%s: wants an IPv6 address in brackets", kind)
	}
	a.v6only = kind[len(kind)-1] == '6'
	return a, nil
}

// parseUnix parses the part after unix:.
func (a *ListenAddr) parseUnix(path string) error {
	a.family, a.sotype, a.path = unix.AF_UNIX, unix.SOCK_STREAM, path
	// The kernel's sockaddr_un holds 108 bytes, the last a NUL (x/sys
	// refuses 108); an abstract name's @ stands for its leading NUL.
	limit := len(unix.RawSockaddrUnix{}.Path) - 1
	switch {
	case path == "" || path == "@":
		return errors.New("unix: wants a /PATH or an @NAME")
	case strings.IndexByte(path, 0) >= 0:
		return errors.New("unix: a path cannot hold a NUL byte")
	case len(path) > limit:
		return fmt.Errorf("unix: the path is %d bytes long; a unix socket's can have at most %d", len(path), limit)
	}
	return nil
}

// checkFDName checks NAME as systemd checks FileDescriptorName=: printable
// ASCII without a colon, which separates names in LISTEN_FDNAMES, at most
// 255 bytes.
func checkFDName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("NAME %q: want 1 to 255 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c >= 0x7f {
			return fmt.Errorf("NAME %q: want printable ASCII", name)
		}
	}
	return nil
}

// Listen flags' defaults.
const (
	// maxBacklog asks listen(2) for the most the kernel allows: it caps
	// the backlog at net.core.somaxconn of the socket's network namespace,
	// as systemd's Backlog= default does.
	maxBacklog = 1<<31 - 1
)

// FileMode is an octal permission mode, 000 to 777. It is a pflag.Value.
type FileMode uint32

// Set parses an octal mode such as 0660.
func (m *FileMode) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return errors.New("want an octal mode from 000 to 777, e.g. 0660")
	}
	*m = FileMode(n)
	return nil
}

// String formats the mode as four octal digits.
func (m *FileMode) String() string { return fmt.Sprintf("%04o", uint32(*m)) }

// Type names the value in --help.
func (m *FileMode) Type() string { return "MODE" }

// heldSocket is one socket upshim holds for the service.
type heldSocket struct {
	fd   int    // upshim's descriptor, close-on-exec, blocking
	name string // for LISTEN_FDNAMES
	flag string // --listen ADDR, or LISTEN_FDS, for messages
}

// ListenStatus is one held socket in `ctl status`: the name, the address
// it is bound to (with the port the kernel chose for :0), and the
// descriptor the service gets it on.
type ListenStatus struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	FD   int    `json:"fd"`
}

// bindListen creates, binds and (for a stream) listens on a's socket. Its
// errors name the flag and the address; they are resources upshim cannot
// have (in use, no such address, permission), exit 1.
func bindListen(a ListenAddr, backlog int, mode FileMode) (int, error) {
	fd, err := a.bind(backlog, mode)
	if err != nil {
		return -1, fmt.Errorf("--listen %s: %v", a.Spec, err)
	}
	return fd, nil
}

func (a ListenAddr) bind(backlog int, mode FileMode) (int, error) {
	family := a.family
	if family == 0 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, a.sotype|unix.SOCK_CLOEXEC, 0)
	if err == unix.EAFNOSUPPORT && a.family == 0 {
		// No IPv6 here: every address is every IPv4 address.
		family = unix.AF_INET
		fd, err = unix.Socket(family, a.sotype|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("cannot create a socket: %v", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	var sa unix.Sockaddr
	switch family {
	case unix.AF_INET:
		in4 := &unix.SockaddrInet4{Port: a.port}
		if a.ip.IsValid() {
			in4.Addr = a.ip.As4()
		}
		sa = in4
	case unix.AF_INET6:
		in6 := &unix.SockaddrInet6{Port: a.port}
		if a.ip.IsValid() {
			in6.Addr = a.ip.As16()
		}
		sa = in6
		v6only := 0
		if a.v6only {
			v6only = 1
		}
		if a.v6only || a.family == 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
				return -1, fmt.Errorf("IPV6_V6ONLY: %v", err)
			}
		}
	case unix.AF_UNIX:
		sa = &unix.SockaddrUnix{Name: a.path}
	}
	if family != unix.AF_UNIX {
		// A restarted upshim binds again at once, whatever connections
		// of the last one linger in TIME_WAIT. Not SO_REUSEPORT: two
		// holders of one port would share its connections.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return -1, fmt.Errorf("SO_REUSEADDR: %v", err)
		}
	}
	if family == unix.AF_UNIX && !strings.HasPrefix(a.path, "@") {
		err = bindUnixPath(fd, a, mode)
	} else if err = unix.Bind(fd, sa); err != nil {
		err = fmt.Errorf("cannot bind: %v", err)
	}
	if err != nil {
		return -1, err
	}
	if a.sotype == unix.SOCK_STREAM {
		if err := unix.Listen(fd, backlog); err != nil {
			return -1, fmt.Errorf("cannot listen: %v", err)
		}
	}
	ok = true
	return fd, nil
}

// bindUnixPath binds fd to a unix socket path. Whatever is at the path is
// looked at without following links: a socket nobody answers on, left by
// an upshim that died, is replaced; a live one, a link or any other file
// is refused, so that upshim never takes over another's socket, nor binds
// where a link planted by whoever can write the directory points. The
// mode is set by the umask during bind, as systemd does: a chmod by path
// afterwards would follow a link swapped in meanwhile.
func bindUnixPath(fd int, a ListenAddr, mode FileMode) error {
	var st unix.Stat_t
	if err := unix.Lstat(a.path, &st); err == nil {
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return errors.New("is a symbolic link; upshim binds no socket through a link")
		case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
			return errors.New("exists and is not a socket")
		case unixAnswers(a.path, a.sotype):
			return errors.New("a live socket is there (something answers on it)")
		}
		// Stale: nobody answers. unlink removes the name, never what
		// a link would point to.
		if err := unix.Unlink(a.path); err != nil && err != unix.ENOENT {
			return fmt.Errorf("cannot remove the stale socket: %v", err)
		}
	}
	// The umask is process-wide: prepare binds before anything else of
	// upshim's runs that creates files.
	old := unix.Umask(int(^mode & 0o777))
	err := unix.Bind(fd, &unix.SockaddrUnix{Name: a.path})
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("cannot bind: %v", err)
	}
	return nil
}

// unixAnswers reports whether a socket of type sotype at path is live:
// anything but a refusal (a stale socket) or its absence counts, a full
// backlog and a socket of the other type included.
func unixAnswers(path string, sotype int) bool {
	fd, err := unix.Socket(unix.AF_UNIX, sotype|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return true // cannot tell: do not take it over
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	return err != unix.ECONNREFUSED && err != unix.ENOENT
}

// inheritedSockets adopts the descriptors that whoever started upshim
// passed to it with the socket-activation protocol (a systemd .socket
// unit, systemd-socket-activate, another upshim): LISTEN_PID is upshim's
// pid, LISTEN_FDS counts the descriptors from 3, LISTEN_FDNAMES names
// them. They become close-on-exec, so that no hook gets them; the main
// process gets them again, renumbered, from spawn. Variables that name
// another pid were meant for another process, and adopt nothing.
func inheritedSockets() ([]heldSocket, error) {
	pid, ok := os.LookupEnv("LISTEN_PID")
	if !ok || pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	count := os.Getenv("LISTEN_FDS")
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 || n > 1<<16 {
		return nil, fmt.Errorf("LISTEN_FDS=%q (LISTEN_PID is upshim's pid): want a count of descriptors", count)
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	held := make([]heldSocket, 0, n)
	for i := range n {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("LISTEN_FDS=%d: descriptor %d is not open", n, fd)
		}
		unix.CloseOnExec(fd)
		name := "unknown"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		held = append(held, heldSocket{fd: fd, name: name, flag: "LISTEN_FDS"})
	}
	return held, nil
}

// clearNonblock makes fd blocking again. O_NONBLOCK belongs to the open
// file description, which upshim and every instance share: a Go service
// (net.FileListener) sets it and leaves it set when it dies, and the next
// instance, written for a blocking accept, would get EAGAIN at once.
// systemd resets it on every exec too.
func clearNonblock(fd int) {
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil && fl&unix.O_NONBLOCK != 0 {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
}

// socketAddr describes the address fd is bound to, in --listen's syntax:
// HOST:PORT for TCP, udp:HOST:PORT, unix:/PATH, unix:@NAME.
func socketAddr(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "fd " + strconv.Itoa(fd) + " (not a socket)"
	}
	prefix := ""
	if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil && t == unix.SOCK_DGRAM {
		prefix = "udp:"
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return prefix + netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return prefix + netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrUnix:
		name := sa.Name
		if name == "" {
			name = "(unnamed)"
		}
		if prefix != "" {
			return "unixgram:" + name
		}
		return "unix:" + name
	}
	return "fd " + strconv.Itoa(fd)
}

// AbsUnixPath makes the path of a unix: --listen value absolute, for a unit
// that runs upshim from another directory; any other value is returned as
// it is.
func AbsUnixPath(value string, abs func(string) string) string {
	a, err := ParseListen(value)
	if err != nil || a.family != unix.AF_UNIX || strings.HasPrefix(a.path, "@") || strings.HasPrefix(a.path, "/") {
		return value
	}
	return value[:len(value)-len(a.Spec)] + "unix:" + abs(a.path)
}

// ExposedPort is the port a container should EXPOSE for a --listen value
// (8080, 53/udp), or "" for a unix socket or port 0.
func ExposedPort(value string) string {
	a, err := ParseListen(value)
	if err != nil || a.family == unix.AF_UNIX || a.port == 0 {
		return ""
	}
	if a.sotype == unix.SOCK_DGRAM {
		return strconv.Itoa(a.port) + "/udp"
	}
	return strconv.Itoa(a.port)
}
