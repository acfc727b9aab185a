package shim

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// --control auto names the socket after the service, in a runtime
// directory every upshim of a user shares, so that `upshim ctl NAME` and
// `upshim ctl list` find it as initctl found a job by name.

// ControlAuto is the --control value that puts the socket at
// RUNDIR/NAME.sock.
const ControlAuto = "auto"

// RootRuntimeDir is root's runtime directory, and the one systemd's
// RuntimeDirectory=upshim makes for a system unit.
const RootRuntimeDir = "/run/upshim"

// CheckName reports why name cannot be a socket's file name, or nil: it
// is one path component, not hidden, and prints as it is.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("is empty")
	case strings.IndexByte(name, '/') >= 0:
		return errors.New("contains '/'")
	case name[0] == '.':
		return errors.New("starts with '.'")
	case !utf8.ValidString(name):
		return errors.New("is not UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) { // NUL, newline, escape…
			return fmt.Errorf("contains the control character %q", r)
		}
	}
	return nil
}

// firstRuntimeDirectory is the first of the colon-separated paths systemd
// puts in $RUNTIME_DIRECTORY, or "".
func firstRuntimeDirectory() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	return dir
}

// serverRuntimeDir is where upshim puts its --control auto socket:
// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else /run/upshim for
// root, else $XDG_RUNTIME_DIR/upshim.
func serverRuntimeDir() (string, error) {
	if dir := firstRuntimeDirectory(); dir != "" {
		return dir, nil
	}
	if os.Geteuid() == 0 {
		return RootRuntimeDir, nil
	}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		return strings.TrimRight(xdg, "/") + "/upshim", nil
	}
	return "", errors.New("--control auto: neither RUNTIME_DIRECTORY nor XDG_RUNTIME_DIR is set, and upshim is not root; give --control PATH")
}

// CtlDirs are the directories upshim ctl looks in for NAME.sock, in
// order: the caller's own upshim's directory first, then root's.
func CtlDirs() []string {
	var dirs []string
	add := func(dir string) {
		for _, d := range dirs {
			if d == dir {
				return
			}
		}
		dirs = append(dirs, dir)
	}
	if dir := firstRuntimeDirectory(); dir != "" {
		add(dir)
	}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" && os.Geteuid() != 0 {
		add(strings.TrimRight(xdg, "/") + "/upshim")
	}
	add(RootRuntimeDir)
	return dirs
}

// openRuntimeDir creates the runtime directory, if need be, and returns
// it open and locked, with the socket's path in it. A directory upshim
// cannot create or open is an error (exit 1), as a socket it cannot
// create is; one it refuses is a usage error (exit 2). The directory is
// upshim's alone: it is created 0700 and opened without following a link,
// and one that is a link, or that is not upshim's own user's with mode
// 0700, is refused (anyone who could write there could swap the socket).
// The lock, held until the directory is closed, keeps two upshims from
// looking at and replacing the same stale socket at once.
func openRuntimeDir(name string) (dir *os.File, path string, err error) {
	dirPath, err := serverRuntimeDir()
	if err != nil {
		return nil, "", usageError{err}
	}
	flag := "--control auto: runtime directory " + dirPath
	created := true
	if err := unix.Mkdir(dirPath, 0o700); err == unix.EEXIST {
		created = false
	} else if err != nil {
		return nil, "", fmt.Errorf("%s: cannot create it: %v", flag, err)
	}
	fd, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return nil, "", usageError{fmt.Errorf("%s: not a directory (a link is not followed)", flag)}
	} else if err != nil {
		return nil, "", fmt.Errorf("%s: %v", flag, err)
	}
	dir = os.NewFile(uintptr(fd), dirPath)
	fail := func(err error) (*os.File, string, error) {
		dir.Close()
		return nil, "", err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(fmt.Errorf("%s: %v", flag, err))
	}
	if int(st.Uid) != os.Geteuid() {
		return fail(usageError{fmt.Errorf("%s: owned by uid %d, not by upshim's uid %d", flag, st.Uid, os.Geteuid())})
	}
	// mkdir's mode is cut by the umask; the directory upshim just made
	// is set as it must be, through the descriptor checked above.
	if created {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fail(fmt.Errorf("%s: cannot set its mode: %v", flag, err))
		}
		st.Mode = st.Mode&^0o7777 | 0o700
	}
	if st.Mode&0o7777 != 0o700 {
		hint := ""
		if firstRuntimeDirectory() != "" {
			hint = " (systemd: RuntimeDirectoryMode=0700)"
		}
		return fail(usageError{fmt.Errorf("%s: mode %04o, want 0700%s", flag, st.Mode&0o7777, hint)})
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fail(fmt.Errorf("%s: cannot lock it: %v", flag, err))
	}
	return dir, dirPath + "/" + name + ".sock", nil
}
