package shim

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNotFound is returned by lookPath when no executable of that name is
// on PATH.
var errNotFound = errors.New("command not found")

// lookPath finds the file to execute for name, as a shell would: names with
// a slash are used as they are, others are searched for in the PATH of the
// service's environment (or the shell's default path when it has none).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		candidate := dir + "/" + name
		var st unix.Stat_t
		if unix.Stat(candidate, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", errNotFound
}

// deathSignal is what the kernel sends to upshim's children when upshim
// dies without running its stop: only SIGKILL (the OOM killer, kill -9)
// does that, since upshim catches everything else. It is SIGKILL, not the
// kill signal: with upshim gone nobody would send SIGKILL at the kill
// timeout, so a service that ignores TERM would run on unsupervised, and
// whoever killed upshim with SIGKILL wanted it gone at once.
//
// Linux sends it when the thread that forked the child ends, not the
// process, and the Go runtime ends a thread whose locked goroutine exits
// (the log writer's, whose identity must not go back to the pool, does).
// So every spawn happens on one thread that lives as long as upshim: the
// spawner's (see spawn). It does not reach a process the service forks
// (fork clears it), and a set-user-ID program clears it at exec.
const deathSignal = syscall.SIGKILL

// spawnRequest is one spawn for the spawner's thread.
type spawnRequest struct {
	name, path string
	argv       []string
	setup      *resolvedSetup
	foreground bool
	done       chan spawnResult
}

type spawnResult struct {
	pid int
	err error
}

var (
	spawnerOnce sync.Once
	spawns      chan spawnRequest
)

// spawner forks every child on one thread, locked for good, so that the
// children's death signal never fires while upshim lives. The loop itself
// stays unlocked: a locked loop would cost every relayed signal a switch
// between threads, where a spawn is rare and costs one channel round trip.
func spawner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as upshim
	for r := range spawns {
		pid, err := forkExec(r.name, r.path, r.argv, r.setup, r.foreground)
		r.done <- spawnResult{pid, err}
	}
}

// spawn starts argv in a process group of its own, with the service's
// setup, and returns its pid. It never waits: the child's exit reaches the
// supervisor through reap. When foreground is set, the child takes stdin's
// terminal in its own process group before exec, so that Ctrl-C and job
// control reach it.
//
// The child starts with the signal mask upshim inherited (the Go runtime
// restores it after fork) and with default actions for the signals upshim
// catches. Settings that only a process can make for itself go through the
// setup helper (see SetupArg), which is upshim again.
func spawn(name, path string, argv []string, setup *resolvedSetup, foreground bool) (int, error) {
	spawnerOnce.Do(func() {
		spawns = make(chan spawnRequest)
		go spawner()
	})
	done := make(chan spawnResult, 1)
	spawns <- spawnRequest{name, path, argv, setup, foreground, done}
	r := <-done
	return r.pid, r.err
}

// forkExec is spawn, on the spawner's thread.
func forkExec(name, path string, argv []string, setup *resolvedSetup, foreground bool) (int, error) {
	for _, fd := range setup.listen {
		clearNonblock(int(fd))
	}
	attr := &syscall.ProcAttr{
		Env:   setup.env,
		Files: setup.files,
		// Pdeathsig: see deathSignal.
		Sys: &syscall.SysProcAttr{Setpgid: true, Foreground: foreground, Ctty: 0, Pdeathsig: deathSignal},
	}
	if script, ok := longScript(path, argv); ok {
		f, err := sealedFile(script)
		if err != nil {
			return 0, fmt.Errorf("a script of %d bytes: %v", len(script), err)
		}
		defer f.Close()
		fd := max(scriptFD, len(setup.files)) // after any held sockets
		attr.Files = make([]uintptr, fd+1)
		for i := range attr.Files {
			attr.Files[i] = ^uintptr(0) // closed in the child
		}
		copy(attr.Files, setup.files)
		attr.Files[fd] = f.Fd()
		argv = []string{argv[0], "-e", "/proc/self/fd/" + strconv.Itoa(fd)}
	}
	if setup.needsHelper() {
		// /proc/self/exe in the child is upshim, even if an upgrade has
		// replaced the file since upshim started.
		return syscall.ForkExec("/proc/self/exe", setup.helperArgv(name, path, argv), attr)
	}
	attr.Dir = setup.dir
	attr.Sys.Credential = setup.cred
	return syscall.ForkExec(path, argv, attr)
}

// A script (a job's script block, or an exec line that needs a shell)
// longer than maxScriptArg reaches /bin/sh on descriptor scriptFD, as
// upstart passed scripts (/proc/self/fd/9), rather than with -c: the
// kernel refuses one argument over 128 KiB (MAX_ARG_STRLEN) with E2BIG,
// and argv and environment together get 2 MiB by default. Shorter ones
// keep -c, so that ps shows them.
const (
	scriptFD     = 9
	maxScriptArg = 64 << 10
)

// longScript returns the script of argv when it is /bin/sh -e -c SCRIPT,
// as upshim runs job scripts and hooks, and SCRIPT is too long for -c.
func longScript(path string, argv []string) (string, bool) {
	if path != "/bin/sh" || len(argv) != 4 || argv[1] != "-e" || argv[2] != "-c" || len(argv[3]) <= maxScriptArg {
		return "", false
	}
	return argv[3], true
}

// sealedFile is a memory file holding data, sealed so that nothing the
// service does through its descriptor can change what the next spawn
// runs. It is close-on-exec until spawn gives it to the child.
func sealedFile(data string) (*os.File, error) {
	fd, err := unix.MemfdCreate("upshim-script", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "upshim-script")
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return nil, err
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing: %v", err)
	}
	return f, nil
}

// spawnFailureCode is upshim's exit status when the command could not be
// executed: 127 when it does not exist, 126 when it exists but cannot be
// run, as a shell reports them.
func spawnFailureCode(err error) int {
	if errors.Is(err, errNotFound) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
		return 127
	}
	return 126
}

// spawnTransient reports whether a spawn failed for want of a resource
// that may come back (processes, descriptors, memory), not because the
// command cannot be executed: such a failure is a failed run under the
// respawn policy, not the end of the service.
func spawnTransient(err error) bool {
	for _, e := range []syscall.Errno{syscall.EAGAIN, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// terminalForeground reports whether upshim owns the foreground of the
// terminal on stdin, so that handing it to the service steals nothing from
// an interactive shell that started upshim in the background.
func terminalForeground() bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// terminalOwnedBy reports whether the foreground process group of stdin's
// terminal is pgrp.
func terminalOwnedBy(pgrp int) bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && fg == pgrp
}

// serviceEnv is the base environment the service and its hooks start
// with: upshim's own, without what belongs to whatever runs upshim, or
// names another process: NOTIFY_SOCKET, the socket-activation variables
// (upshim sets the service's own when it holds sockets) and the
// watchdog's, whose pings would otherwise go nowhere.
func serviceEnv() []string {
	env := os.Environ()
	out := env[:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
			"WATCHDOG_USEC", "WATCHDOG_PID":
			continue
		}
		out = append(out, kv)
	}
	return out
}
