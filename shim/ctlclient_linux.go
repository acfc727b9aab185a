package shim

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The client side of the control socket: one request, one answer.

// Answers of Ctl, which upshim ctl makes its exit status.
const (
	CtlOK       = 0 // done, or the answer is yes
	CtlError    = 1 // refused, failed, or no upshim
	CtlNotReady = 3 // status: the service is not ready (LSB's "not running")
)

// Ctl sends one request to the upshim listening at path and returns its
// answer and one of CtlOK, CtlError, CtlNotReady.
func Ctl(path string, verb string, args ...string) (answer string, code int) {
	answer, code, _ = ctlRequest(path, verb, args...)
	return answer, code
}

// ctlRequest is Ctl; gone says that nothing listens on path (none there,
// or a stale socket).
func ctlRequest(path string, verb string, args ...string) (answer string, code int, gone bool) {
	fd, err := dialControl(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Sprintf("no upshim is listening on %s", path), CtlError, true
		}
		return fmt.Sprintf("%s: %v", path, err), CtlError, false
	}
	defer unix.Close(fd)
	// A socket in a directory others can write may be a stranger's: its
	// answers are not upshim's, and the request is not for it to see. The
	// kernel says who called listen.
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Sprintf("%s: cannot tell who listens there: %v", path, err), CtlError, false
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() && int(cred.Uid) != os.Geteuid() {
		return fmt.Sprintf("%s: refused: the socket is served by uid %d, not by root or uid %d, so it is not an upshim to trust", path, cred.Uid, os.Getuid()), CtlError, false
	}
	msg := strings.Join(append([]string{ControlVersion, verb}, args...), " ") + "\n"
	// A refusal (permission, busy) may come, and the connection close,
	// before the request is sent: the answer is read all the same.
	sendErr := unix.Sendto(fd, []byte(msg), unix.MSG_NOSIGNAL, nil)
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
			return strings.TrimPrefix(rest, " "), code, false
		}
	}
	if sendErr != nil {
		return fmt.Sprintf("%s: cannot send the request: %v", path, sendErr), CtlError, false
	}
	return "no answer from " + path, CtlError, false
}
