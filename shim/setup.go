//go:build linux

package shim

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Setup is the process setup of the service, an upstart job's chdir, env,
// setuid, setgid, umask, nice, oom score and limit stanzas. It applies to
// the service only: upshim keeps its own credentials, limits, umask and
// scores, so that it can always kill and reap what it started.
type Setup struct {
	// Dir is the working directory; empty inherits upshim's.
	Dir string
	// Env holds --env settings, applied last, in order.
	Env EnvList
	// EnvFiles are read in order after the base environment.
	EnvFiles []string
	// ClearEnv starts from PATH and TERM only instead of upshim's
	// environment.
	ClearEnv bool
	// User and Group name the credentials; empty keeps upshim's.
	User, Group string
	// Umask is the file mode creation mask; nil inherits upshim's.
	Umask *Umask
	// Nice and OOMScoreAdj are nil to inherit upshim's.
	Nice, OOMScoreAdj *int
	// Limits are resource limits to set, in order.
	Limits Limits
}

// Umask is an octal file mode creation mask. It is a pflag.Value.
type Umask uint32

// Set parses an octal mask such as 022 or 0027.
func (u *Umask) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return errors.New("want an octal mask from 000 to 777, e.g. 022")
	}
	*u = Umask(n)
	return nil
}

// String formats the mask as four octal digits.
func (u *Umask) String() string { return fmt.Sprintf("%04o", uint32(*u)) }

// Type names the value in --help.
func (u *Umask) Type() string { return "MODE" }

// Limit is one --limit RES=SOFT[:HARD].
type Limit struct {
	Name       string
	Resource   int
	Soft, Hard uint64
}

// Limits is a repeatable --limit. It is a pflag.Value.
type Limits []Limit

// rlimitResources maps the names upstart's limit stanza took to
// setrlimit's resources.
var rlimitResources = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "memlock": unix.RLIMIT_MEMLOCK, "msgqueue": unix.RLIMIT_MSGQUEUE,
	"nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC,
	"rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO, "sigpending": unix.RLIMIT_SIGPENDING,
	"stack": unix.RLIMIT_STACK,
}

// Set parses RES=SOFT[:HARD]; a missing HARD equals SOFT, and either may be
// "unlimited".
func (l *Limits) Set(s string) error {
	name, values, ok := strings.Cut(s, "=")
	res, known := rlimitResources[name]
	if !ok || !known {
		return errors.New("want RES=SOFT[:HARD] with RES one of as core cpu data fsize memlock msgqueue nice nofile nproc rss rtprio sigpending stack")
	}
	softText, hardText, hasHard := strings.Cut(values, ":")
	if !hasHard {
		hardText = softText
	}
	soft, err1 := parseLimit(softText)
	hard, err2 := parseLimit(hardText)
	if err1 != nil || err2 != nil {
		return errors.New("want RES=SOFT[:HARD] with whole numbers or \"unlimited\"")
	}
	if soft > hard {
		return errors.New("SOFT is above HARD")
	}
	*l = append(*l, Limit{Name: name, Resource: res, Soft: soft, Hard: hard})
	return nil
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" || s == "infinity" {
		return unix.RLIM_INFINITY, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err == nil && n == math.MaxUint64 {
		return unix.RLIM_INFINITY, nil
	}
	return n, err
}

// String lists the limits as Set takes them.
func (l *Limits) String() string {
	var parts []string
	for _, lim := range *l {
		parts = append(parts, lim.Name+"="+formatLimit(lim.Soft)+":"+formatLimit(lim.Hard))
	}
	return strings.Join(parts, ",")
}

func formatLimit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// Type names the value in --help.
func (l *Limits) Type() string { return "RES=SOFT[:HARD]" }

// resolvedSetup is a Setup checked and looked up once, at start-up: the
// service's environment, credentials and the rest, ready for each spawn.
type resolvedSetup struct {
	files []uintptr // the child's stdin, stdout and stderr
	// listen are the held sockets the main process gets as fds 3, 4, …;
	// hooks get none. Their LISTEN_FDS and LISTEN_FDNAMES are in env;
	// the helper adds LISTEN_PID, the one pid ForkExec cannot know.
	listen []uintptr
	env    []string
	dir    string
	cred   *syscall.Credential
	umask  int // -1 inherits
	nice   *int
	oom    *int
	limit  Limits
	// watchdogPID: the helper sets WATCHDOG_PID to the service's own pid.
	watchdogPID bool
}

// resolve reads the env files, looks the user and group up and checks the
// directory. Each error names the flag and the value: these are the
// configuration errors that must stop upshim before anything runs.
func (su *Setup) resolve() (*resolvedSetup, error) {
	r := &resolvedSetup{files: []uintptr{0, 1, 2}, dir: su.Dir, umask: -1, nice: su.Nice, oom: su.OOMScoreAdj, limit: su.Limits}
	if su.Umask != nil {
		r.umask = int(*su.Umask)
	}
	if su.ClearEnv {
		for _, name := range []string{"PATH", "TERM"} {
			if v, ok := os.LookupEnv(name); ok {
				r.env = append(r.env, name+"="+v)
			}
		}
		if _, ok := os.LookupEnv("PATH"); !ok {
			r.env = append(r.env, "PATH="+defaultPath)
		}
	} else {
		r.env = serviceEnv()
	}
	if su.User != "" || su.Group != "" {
		cred, vars, err := lookupCredential(su.User, su.Group)
		if err != nil {
			return nil, err
		}
		r.cred = cred
		r.env = mergeEnv(r.env, vars...)
	}
	for _, path := range su.EnvFiles {
		vars, err := ParseEnvFile(path)
		if err != nil {
			return nil, fmt.Errorf("--env-file %s", strings.TrimPrefix(err.Error(), "open "))
		}
		r.env = mergeEnv(r.env, vars...)
	}
	r.env = mergeEnv(r.env, su.Env...)
	if su.Dir != "" {
		if st, err := os.Stat(su.Dir); err != nil {
			return nil, fmt.Errorf("--chdir %s", strings.TrimPrefix(err.Error(), "stat "))
		} else if !st.IsDir() {
			return nil, fmt.Errorf("--chdir %s: not a directory", su.Dir)
		}
	}
	return r, nil
}

// defaultPath is the PATH a service gets when upshim has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookupCredential resolves --user and --group, as upstart's setuid and
// setgid did: the user's primary group and supplementary groups unless
// --group names another primary group; HOME, USER and LOGNAME to match.
// A number that names no user (group) is taken as a bare uid (gid).
func lookupCredential(userName, groupName string) (*syscall.Credential, []string, error) {
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), NoSetGroups: true}
	var vars []string
	if userName != "" {
		u, err := lookupEntry("/etc/passwd", userName, 7)
		if err != nil {
			return nil, nil, fmt.Errorf("--user %s: %v", userName, err)
		}
		if u == nil {
			u = []string{userName, "", userName, userName, "", "/", ""}
		}
		uid, err1 := strconv.ParseUint(u[2], 10, 32)
		gid, err2 := strconv.ParseUint(u[3], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("--user %s: bad /etc/passwd entry", userName)
		}
		cred.Uid, cred.Gid, cred.NoSetGroups = uint32(uid), uint32(gid), false
		cred.Groups = memberOf(u[0], cred.Gid)
		home := u[5]
		if home == "" {
			home = "/"
		}
		vars = append(vars, "HOME="+home, "USER="+u[0], "LOGNAME="+u[0])
	}
	if groupName != "" {
		g, err := lookupEntry("/etc/group", groupName, 4)
		if err != nil {
			return nil, nil, fmt.Errorf("--group %s: %v", groupName, strings.Replace(err.Error(), "user", "group", 1))
		}
		gidText := groupName
		if g != nil {
			gidText = g[2]
		}
		gid, err := strconv.ParseUint(gidText, 10, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("--group %s: bad /etc/group entry", groupName)
		}
		cred.Gid = uint32(gid)
		if userName == "" {
			// Only the group changes: drop upshim's supplementary groups,
			// which the service would otherwise keep.
			cred.NoSetGroups = false
		}
	}
	return cred, vars, nil
}

// lookupEntry finds name in a colon-separated database (/etc/passwd,
// /etc/group), by name first, then by number (the third field). It returns
// nil, nil for a number that no entry has: it stands for itself. Like Go's
// os/user without cgo, it reads the files and asks no NSS service.
func lookupEntry(path, name string, fields int) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var byNumber []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < fields || strings.HasPrefix(line, "#") {
			continue
		}
		if f[0] == name {
			return f, nil
		}
		if f[2] == name && byNumber == nil {
			byNumber = f
		}
	}
	if byNumber != nil {
		return byNumber, nil
	}
	if _, err := strconv.ParseUint(name, 10, 32); err == nil {
		return nil, nil
	}
	return nil, errors.New("no such user")
}

// memberOf lists the groups that /etc/group names user a member of, and
// the primary group, as initgroups would.
func memberOf(user string, primary uint32) []uint32 {
	groups := []uint32{primary}
	data, _ := os.ReadFile("/etc/group")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		for _, member := range strings.Split(f[3], ",") {
			if member == user {
				if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(gid) != primary {
					groups = append(groups, uint32(gid))
				}
				break
			}
		}
	}
	return groups
}

// needsHelper reports whether the service needs settings that the kernel
// only lets a process set on itself before exec (umask, nice, OOM score,
// limits), or LISTEN_PID and WATCHDOG_PID, which only the service's own pid can be and
// ForkExec fixes the environment before the fork: then the child is
// upshim again, which applies them and execs the service. Credentials,
// directory and the rest of the environment ForkExec sets itself.
func (r *resolvedSetup) needsHelper() bool {
	return r.umask >= 0 || r.nice != nil || r.oom != nil || len(r.limit) > 0 || len(r.listen) > 0 || r.watchdogPID
}

// withSockets is the setup of the main process when upshim holds sockets:
// r's, plus the sockets after stdin, stdout and stderr, and their
// variables. upshim's own LISTEN_* never got into r.env (serviceEnv).
func (r *resolvedSetup) withSockets(held []heldSocket) *resolvedSetup {
	if len(held) == 0 {
		return r
	}
	m := *r
	m.listen = make([]uintptr, len(held))
	names := make([]string, len(held))
	for i, h := range held {
		m.listen[i], names[i] = uintptr(h.fd), h.name
	}
	m.files = append(append([]uintptr(nil), r.files...), m.listen...)
	m.env = mergeEnv(append([]string(nil), r.env...),
		"LISTEN_FDS="+strconv.Itoa(len(held)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	return &m
}
