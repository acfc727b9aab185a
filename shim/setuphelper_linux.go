package shim

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetupArg, as argv[1], makes upshim the helper that applies a service's
// umask, nice value, OOM score and limits to itself, drops to the
// service's credentials and execs the service. The kernel lets a process
// set these on itself only, and they must be in place before the service's
// first instruction; upshim cannot set them on itself without changing its
// own. main calls RunSetupHelper when it sees SetupArg.
const SetupArg = "--upshim-internal-setup"

// helperArgv is the argv that starts the helper for path and argv:
//
//	upshim SetupArg name=N [umask=M] [nice=N] [oom=N] [limit=R:S:H]... [uid=U gid=G groups=A,B] [dir=D] [listen-pid] [watchdog-pid] -- PATH ARGV...
func (r *resolvedSetup) helperArgv(name, path string, argv []string) []string {
	a := []string{"upshim", SetupArg, "name=" + name}
	if r.umask >= 0 {
		a = append(a, "umask="+strconv.Itoa(r.umask))
	}
	if r.nice != nil {
		a = append(a, "nice="+strconv.Itoa(*r.nice))
	}
	if r.oom != nil {
		a = append(a, "oom="+strconv.Itoa(*r.oom))
	}
	for _, l := range r.limit {
		a = append(a, fmt.Sprintf("limit=%s:%d:%d:%d", l.Name, l.Resource, l.Soft, l.Hard))
	}
	if c := r.cred; c != nil {
		a = append(a, "uid="+strconv.FormatUint(uint64(c.Uid), 10), "gid="+strconv.FormatUint(uint64(c.Gid), 10))
		if !c.NoSetGroups {
			groups := make([]string, len(c.Groups))
			for i, g := range c.Groups {
				groups[i] = strconv.FormatUint(uint64(g), 10)
			}
			a = append(a, "groups="+strings.Join(groups, ","))
		}
	}
	if r.dir != "" {
		a = append(a, "dir="+r.dir)
	}
	if len(r.listen) > 0 {
		a = append(a, "listen-pid")
	}
	if r.watchdogPID {
		a = append(a, "watchdog-pid")
	}
	return append(append(a, "--", path), argv...)
}

// RunSetupHelper applies the settings in args (as helperArgv wrote them)
// and execs the service with the environment it was given. It returns
// only on failure, with the exit status to use: 126, as for a command
// that cannot be executed (127 if it is gone), after saying which setting
// failed.
func RunSetupHelper(args []string) int {
	// nice is a property of the thread; the exec must happen on the
	// thread that set it.
	runtime.LockOSThread()
	ppid := os.Getppid() // upshim; the death signal is set (see spawn)
	name := "service"
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "upshim[%s]: %s: %v\n", name, what, err)
		return 126
	}
	var uid, gid = -1, -1
	var groups []int
	setGroups := false
	dir := ""
	listenPID, watchdogPID := false, false
	i := 0
	for ; i < len(args) && args[i] != "--"; i++ {
		key, value, _ := strings.Cut(args[i], "=")
		switch key {
		case "name":
			name = value
		case "umask":
			n, _ := strconv.Atoi(value)
			syscall.Umask(n)
		case "nice":
			n, _ := strconv.Atoi(value)
			if err := unix.Setpriority(unix.PRIO_PROCESS, 0, n); err != nil {
				return fail("--nice "+value, err)
			}
		case "oom":
			if err := os.WriteFile("/proc/self/oom_score_adj", []byte(value), 0); err != nil {
				return fail("--oom-score-adj "+value, err)
			}
		case "limit":
			f := strings.Split(value, ":")
			if len(f) != 4 {
				return fail("setup", fmt.Errorf("bad limit %q", value))
			}
			res, _ := strconv.Atoi(f[1])
			soft, _ := strconv.ParseUint(f[2], 10, 64)
			hard, _ := strconv.ParseUint(f[3], 10, 64)
			// syscall.Setrlimit, not unix's: it also stops the Go runtime
			// from restoring its own NOFILE limit at exec.
			if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
				return fail(fmt.Sprintf("--limit %s=%s:%s", f[0], formatLimit(soft), formatLimit(hard)), err)
			}
		case "uid":
			uid, _ = strconv.Atoi(value)
		case "gid":
			gid, _ = strconv.Atoi(value)
		case "groups":
			setGroups = true
			for _, g := range strings.Split(value, ",") {
				if n, err := strconv.Atoi(g); err == nil {
					groups = append(groups, n)
				}
			}
		case "dir":
			dir = value
		case "listen-pid":
			listenPID = true
		case "watchdog-pid":
			watchdogPID = true
		}
	}
	if i+2 > len(args) {
		return fail("setup", fmt.Errorf("no command in %q", args))
	}
	path, argv := args[i+1], args[i+2:]
	// Supplementary groups, then the group, then the user: each step
	// needs the privilege the next one gives up.
	if setGroups {
		if err := syscall.Setgroups(groups); err != nil {
			return fail("--user: setgroups", err)
		}
	}
	if gid >= 0 {
		if err := syscall.Setgid(gid); err != nil {
			return fail("--group: setgid", err)
		}
	}
	if uid >= 0 {
		if err := syscall.Setuid(uid); err != nil {
			return fail("--user: setuid", err)
		}
	}
	if uid >= 0 || gid >= 0 {
		// A change of credentials clears the death signal that spawn
		// set; set it again, and go if upshim died in between.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(deathSignal), 0, 0, 0); err != nil {
			return fail("setup: PR_SET_PDEATHSIG", err)
		}
		if os.Getppid() != ppid {
			return fail("setup", errors.New("upshim is gone"))
		}
	}
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			return fail("--chdir", err)
		}
	}
	if listenPID {
		// The sockets are on 3, 4, … already (spawn put them there, not
		// close-on-exec); what they are for is this pid, which the exec
		// keeps: the service's own.
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	if watchdogPID {
		// The pid that must ping (sd_watchdog_enabled checks it): the
		// service's own, which the exec keeps.
		os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	err := syscall.Exec(path, argv, os.Environ())
	code := fail(path+": cannot execute", err)
	if err == syscall.ENOENT {
		code = 127
	}
	return code
}
