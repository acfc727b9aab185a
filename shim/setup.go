package shim

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
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
	env   []string
	dir   string
	cred  *syscall.Credential
	umask int // -1 inherits
	nice  *int
	oom   *int
	limit Limits
}

// resolve reads the env files, looks the user and group up and checks the
// directory. Each error names the flag and the value: these are the
// configuration errors that must stop upshim before anything runs.
func (su *Setup) resolve() (*resolvedSetup, error) {
	r := &resolvedSetup{dir: su.Dir, umask: -1, nice: su.Nice, oom: su.OOMScoreAdj, limit: su.Limits}
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
// A number that names no user is taken as a bare uid.
func lookupCredential(userName, groupName string) (*syscall.Credential, []string, error) {
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), NoSetGroups: true}
	var vars []string
	if userName != "" {
		u, err := lookupUser(userName)
		if err != nil {
			return nil, nil, fmt.Errorf("--user %s: %v", userName, err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred.Uid, cred.Gid, cred.NoSetGroups = uint32(uid), uint32(gid), false
		ids, _ := u.GroupIds()
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(n) != cred.Gid {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
		home := u.HomeDir
		if home == "" {
			home = "/"
		}
		vars = append(vars, "HOME="+home, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if _, numeric := strconv.ParseUint(groupName, 10, 32); numeric == nil {
				g, err = user.LookupGroupId(groupName)
				if err != nil {
					g = &user.Group{Gid: groupName, Name: groupName}
				}
			} else {
				return nil, nil, fmt.Errorf("--group %s: no such group", groupName)
			}
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		cred.Gid = uint32(gid)
		if userName == "" {
			// Only the group changes: drop upshim's supplementary groups,
			// which the service would otherwise keep.
			cred.NoSetGroups = false
		}
	}
	return cred, vars, nil
}

// lookupUser finds a user by name, then by uid; a number that no entry
// has stands for itself.
func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err == nil {
		return u, nil
	}
	if _, numeric := strconv.ParseUint(name, 10, 32); numeric != nil {
		return nil, errors.New("no such user")
	}
	if u, err := user.LookupId(name); err == nil {
		return u, nil
	}
	return &user.User{Uid: name, Gid: name, Username: name, HomeDir: "/"}, nil
}

// needsHelper reports whether the service needs settings that the kernel
// only lets a process set on itself before exec (umask, nice, OOM score,
// limits): then the child is upshim again, which applies them and execs
// the service. Credentials, directory and environment ForkExec sets itself.
func (r *resolvedSetup) needsHelper() bool {
	return r.umask >= 0 || r.nice != nil || r.oom != nil || len(r.limit) > 0
}
