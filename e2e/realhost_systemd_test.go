//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Units that `upshim generate systemd` prints, run under a real systemd:
// the host's own /lib/systemd/systemd, booted as PID 1 of new namespaces
// for the test and killed at its end (recipe: the research notes on real
// hosts). The units are used verbatim; a drop-in beside each turns off
// the default dependencies (see sdSafety).

// sdSafety: every guard below was learned by damaging a machine; keep all.
//   - container= in systemd's environment: else it takes itself for the
//     machine's init, and its shutdown path remounts filesystems read-only
//     and detaches loop devices, for the host (superblocks are shared).
//   - its own cgroup2 on /sys/fs/cgroup, in a cgroup namespace rooted at a
//     fresh sub-cgroup: given the host's hybrid tmpfs, systemd mounts v1
//     hierarchies there and remounts it read-only for the whole machine.
//   - its own /run, /dev (tmpfs, bound nodes, /dev/console is /dev/null)
//     and /etc/systemd (tmpfs: none of the host's units and settings);
//     /proc/sys and /sys read-only.
//   - DefaultDependencies=no on every unit (a drop-in): sysinit.target
//     would run systemd-tmpfiles --remove, which empties the host's /tmp.
//   - the end is SIGKILL to its PID 1 (the namespace dies with it), never
//     a poweroff; then the cgroup tree is removed. In a t.Cleanup, so it
//     runs whether the test passed or not; if the test binary dies, the
//     death signals of unshare and of systemd do the same.
const sdInner = `#!/bin/bash
set -eu
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /etc/systemd
mkdir /etc/systemd/system
mount --bind "$1" /etc/systemd/system
printf '[Manager]\nDefaultTasksAccounting=no\nDefaultMemoryAccounting=no\nDefaultIPAccounting=no\n' >/etc/systemd/system.conf
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToWall=no\n' >/etc/systemd/journald.conf
mkdir /run/olddev && mount --rbind /dev /run/olddev
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount --bind /run/olddev/$n /dev/$n; done
touch /dev/console && mount --bind /run/olddev/null /dev/console
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
umount -l /run/olddev && rmdir /run/olddev
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount -o remount,bind,ro /sys
exec env -i container=upshim-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --system --unit=upshim-test.target --show-status=no
`

// sdDropIn goes beside every test unit (see sdSafety).
const sdDropIn = "[Unit]\nDefaultDependencies=no\nAfter=systemd-journald.service\n"

// systemdHost is a real systemd booted for one test.
type systemdHost struct {
	pid     int    // systemd, PID 1 of its namespaces, as the host sees it
	unshare int    // its parent
	cgroup  string // the host path of its cgroup namespace's root
	nsenter string
	log     string // its console output
}

// cgroup2Root finds the host's cgroup2 hierarchy: /sys/fs/cgroup on a
// pure v2 host, /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Root() string {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// hostGuards is what a systemd that escaped its guards changed on this
// host before: /sys/fs/cgroup's mount options, and /tmp's contents.
func hostGuards(t *testing.T) func() string {
	t.Helper()
	sentinel, err := os.CreateTemp("/tmp", "upshim-systemd-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	sentinel.Close()
	before := cgroupMountOptions()
	return func() string {
		defer os.Remove(sentinel.Name())
		var broken []string
		if after := cgroupMountOptions(); after != before {
			broken = append(broken, fmt.Sprintf("/sys/fs/cgroup's mount options went from %q to %q", before, after))
		}
		if !fileExists(sentinel.Name()) {
			broken = append(broken, "a file in /tmp was removed")
		}
		return strings.Join(broken, "; ")
	}
}

// cgroupMountOptions are the options of the host's /sys/fs/cgroup mount.
func cgroupMountOptions() string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/sys/fs/cgroup" {
			return f[5]
		}
	}
	return ""
}

// bootSystemd boots systemd with the units in dir as /etc/systemd/system,
// and returns once it is running.
func bootSystemd(t *testing.T, dir string) *systemdHost {
	t.Helper()
	needRoot(t, "booting a real systemd", "/lib/systemd/systemd", "unshare", "nsenter")
	root := cgroup2Root()
	if root == "" {
		skipOrFail(t, "booting a real systemd needs a cgroup2 hierarchy (neither /sys/fs/cgroup nor /sys/fs/cgroup/unified is one)")
	}
	nsenter, _ := exec.LookPath("nsenter")
	unshare, _ := exec.LookPath("unshare")
	work := t.TempDir()
	inner := filepath.Join(work, "inner.sh")
	writeExecutable(t, inner, []byte(sdInner))
	os.WriteFile(filepath.Join(dir, "upshim-test.target"), []byte("[Unit]\nDescription=upshim test\n"+
		"DefaultDependencies=no\nWants=systemd-journald.service\nAfter=systemd-journald.service\n"), 0o644)
	// journald's /dev/log and audit sockets would reach for the host's.
	for _, s := range []string{"systemd-journald-dev-log.socket", "systemd-journald-audit.socket"} {
		if err := os.Symlink("/dev/null", filepath.Join(dir, s)); err != nil {
			t.Fatal(err)
		}
	}

	// The cgroups of runs whose test binary was killed before its cleanup.
	stale, _ := filepath.Glob(filepath.Join(root, "upshim-systemd-*-*"))
	for _, d := range stale {
		if pid := strings.Split(filepath.Base(d), "-")[2]; procState(pid) == 0 {
			removeTree(d)
		}
	}
	h := &systemdHost{nsenter: nsenter, log: filepath.Join(work, "console.log"),
		cgroup: filepath.Join(root, fmt.Sprintf("upshim-systemd-%d-%d", os.Getpid(), time.Now().UnixNano()))}
	if err := os.Mkdir(h.cgroup, 0o755); err != nil {
		skipOrFail(t, "booting a real systemd needs a writable cgroup2 hierarchy: %v", err)
	}
	guards := hostGuards(t)
	started := make(chan int, 1)   // unshare's pid, or -1
	exited := make(chan struct{})  // unshare was reaped (or never ran)
	release := make(chan struct{}) // the test is over
	t.Cleanup(func() {
		close(release)
		h.teardown(t, exited)
		if broken := guards(); broken != "" {
			t.Errorf("THE HOST WAS CHANGED by the test's systemd: %s", broken)
		}
	})

	// unshare runs on a thread that stays locked until the test ends: its
	// death signal (the parent is this thread, not the process) must not
	// fire when the runtime retires some other thread.
	go func() {
		runtime.LockOSThread()
		defer func() { <-release }()
		defer close(exited)
		cg, err := os.Open(h.cgroup)
		if err != nil {
			started <- -1
			return
		}
		defer cg.Close()
		logf, err := os.Create(h.log)
		if err != nil {
			started <- -1
			return
		}
		defer logf.Close()
		cmd := exec.Command(unshare, "--cgroup", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc",
			"--net", "--propagation", "private", "--mount-proc", "--", "/bin/bash", inner, dir)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL,
			UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(logf, "start unshare: %v\n", err)
			started <- -1
			return
		}
		started <- cmd.Process.Pid
		cmd.Wait()
	}()
	h.unshare = <-started
	if h.unshare < 0 {
		b, _ := os.ReadFile(h.log)
		t.Fatalf("could not start unshare:\n%s", b)
	}
	waitFor(t, deadline, "systemd as unshare's child", func() (bool, string) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.unshare, h.unshare))
		h.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return h.pid > 0, "no child yet"
	})
	begin := time.Now()
	state := ""
	for end := begin.Add(deadline); ; {
		state, _ = h.run(5*time.Second, "systemctl", "is-system-running")
		if state == "running" || state == "degraded" {
			break
		}
		select {
		case <-exited:
			state = "gone"
		default:
		}
		if state == "gone" || time.Now().After(end) {
			b, _ := os.ReadFile(h.log)
			t.Fatalf("systemd is %q after %s; its console:\n%s", state, time.Since(begin), b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("systemd booted in %s (host pid %d, %s)", ms(time.Since(begin)), h.pid, state)
	return h
}

// teardown kills systemd, which takes its namespaces and everything in
// them along, and removes the cgroup tree.
func (h *systemdHost) teardown(t *testing.T, exited chan struct{}) {
	if h.pid > 0 {
		syscall.Kill(h.pid, syscall.SIGKILL)
	}
	select {
	case <-exited:
	default:
		// Not reaped, so the pid is still unshare's: with --kill-child,
		// its death kills systemd, if it was not found.
		if h.unshare > 0 {
			syscall.Kill(h.unshare, syscall.SIGKILL)
		}
	}
	select {
	case <-exited:
	case <-time.After(deadline):
		t.Errorf("unshare still running %s after SIGKILL to systemd (%d)", deadline, h.pid)
	}
	end := time.Now().Add(deadline)
	for {
		removeTree(h.cgroup)
		if !fileExists(h.cgroup) {
			return
		}
		if time.Now().After(end) {
			t.Errorf("cgroup %s left behind", h.cgroup)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeTree removes the empty directories of a cgroup tree, deepest
// first.
func removeTree(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// run runs a command in systemd's namespaces.
func (h *systemdHost) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.nsenter, append([]string{"-t", strconv.Itoa(h.pid), "-a", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %s", timeout)
	}
	return strings.TrimSpace(string(out)), err
}

// systemctl runs systemctl VERB UNIT and fails the test if it fails.
func (h *systemdHost) systemctl(t *testing.T, timeout time.Duration, args ...string) {
	t.Helper()
	if out, err := h.run(timeout, append([]string{"systemctl", "--no-pager"}, args...)...); err != nil {
		t.Fatalf("systemctl %s: %v\n%s\n%s", strings.Join(args, " "), err, out, h.status(args[len(args)-1]))
	}
}

// show is one property of a unit.
func (h *systemdHost) show(unit, prop string) string {
	out, _ := h.run(deadline, "systemctl", "show", "-p", prop, "--value", unit)
	return out
}

// status is systemctl status with the unit's journal, for messages.
func (h *systemdHost) status(unit string) string {
	out, _ := h.run(deadline, "systemctl", "status", "--no-pager", "-n", "30", unit)
	return out
}

// journal is the unit's journal, messages only.
func (h *systemdHost) journal(unit string) string {
	out, _ := h.run(deadline, "journalctl", "--no-pager", "-o", "cat", "-u", unit)
	return out
}

// pids lists, as the host sees them, the processes in the unit's cgroup.
func (h *systemdHost) pids(unit string) []int {
	cg := h.show(unit, "ControlGroup")
	if cg == "" {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(h.cgroup, cg, "cgroup.procs"))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// get fetches http://127.0.0.1:port/ in systemd's network namespace.
func (h *systemdHost) get(port int) (string, error) {
	return getIn(h.pid, fmt.Sprintf("http://127.0.0.1:%d/", port))
}

// unitCase is one service that upshim generate systemd wraps.
type unitCase struct {
	name  string   // the unit is upshim-NAME.service
	args  []string // upshim generate systemd's arguments
	port  int      // where it answers GET / (its own network namespace)
	ready time.Duration
	// crash: also crash it past its respawn limit (2/60 in args), and
	// see Restart=on-failure bring the unit back.
	crash bool
}

func TestSystemd(t *testing.T) {
	t.Parallel()
	needRoot(t, "booting a real systemd", "/lib/systemd/systemd", "unshare", "nsenter")
	upshim := upshimBinary(t)
	nginx := daemonBinary(t, "nginx")
	bin, units := t.TempDir(), t.TempDir()
	buildStatic(t, bin, "naivehttpserver", "../examples/naivehttpserver")
	hostsvc := buildStatic(t, bin, "hostsvc", "./testdata/hostsvc")

	// nginx answers with its worker's pid, which a reload changes.
	ngx := t.TempDir()
	conf := filepath.Join(ngx, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
worker_processes 1;
events { worker_connections 64; }
http { access_log off; client_body_temp_path %[1]s/body;
	server { listen 127.0.0.1:8082; location / { return 200 "nginx worker $pid\n"; } } }
`, ngx)), 0o644)

	cases := []unitCase{{
		// The seed's job as it is; its chdir (/vagrant) and address come
		// from flags, and a respawn limit that a test reaches fast. The
		// server listens a moment after its exec: as upstart's cookbook
		// has it, a post-start waits until it answers, and the start is
		// over (READY=1) only then.
		name: "naivehttpserver", port: 8081, crash: true,
		args: []string{"--chdir", bin, "--env", "ADDR=127.0.0.1:8081", "--respawn-limit", "2/60",
			"--post-start", "until bash -c ': </dev/tcp/127.0.0.1/8081' 2>/dev/null; do sleep 0.02; done",
			"--job", "../examples/naivehttpserver.conf"},
	}, {
		// The seed's nginx job with real nginx: expect fork, pre-start.
		name: "nginx", port: 8082, crash: true,
		args: []string{"--env", "DAEMON=" + nginx, "--env", fmt.Sprintf("DAEMON_OPTS=-c %s -p %s", conf, ngx),
			"--respawn-limit", "2/60", "--job", "../examples/nginx.conf"},
	}, {
		// READY=1 half a second after it starts, and never again: a
		// reload must not wait for another.
		name: "notify", port: 8083, crash: true, ready: 500 * time.Millisecond,
		args: []string{"--expect", "notify", "--respawn-limit", "2/60", "-e", "ADDR=127.0.0.1:8083",
			"-e", "READY_DELAY=500ms", "--", hostsvc},
	}, {
		// RELOADING=1 … READY=1 around each reload, as sd_notify asks.
		name: "notify-reload", port: 8084,
		args: []string{"--expect", "notify", "-e", "ADDR=127.0.0.1:8084", "-e", "RELOAD_NOTIFY=1", "--", hostsvc},
	}}
	for _, c := range cases {
		out, err := exec.Command(upshim, append([]string{"generate", "systemd", "--name", c.name}, c.args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("generate systemd %s: %v\n%s", c.name, err, out)
		}
		unit := "upshim-" + c.name + ".service"
		os.WriteFile(filepath.Join(units, unit), out, 0o644)
		os.Mkdir(filepath.Join(units, unit+".d"), 0o755)
		os.WriteFile(filepath.Join(units, unit+".d", "test.conf"), []byte(sdDropIn), 0o644)
	}

	sd := bootSystemd(t, units)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { exerciseUnit(t, sd, c) })
	}
}

// exerciseUnit starts, reloads, stops, and (crash) crashes the unit past
// upshim's respawn limit.
func exerciseUnit(t *testing.T, sd *systemdHost, c unitCase) {
	unit := "upshim-" + c.name + ".service"
	answer := func(when string) string {
		t.Helper()
		body, err := sd.get(c.port)
		if err != nil {
			t.Fatalf("%s: %s does not answer: %v\n%s", when, unit, err, sd.status(unit))
		}
		return body
	}
	start := func() {
		t.Helper()
		begin := time.Now()
		sd.systemctl(t, deadline, "start", unit)
		took := time.Since(begin)
		answer("once systemctl start returned") // once, no retry
		if took < c.ready {
			t.Fatalf("systemctl start returned after %s, before the service said READY=1 (%s)", took, c.ready)
		}
		t.Logf("start: %s", ms(took))
	}

	start()
	// STATUS= from upshim reaches systemd.
	if st := sd.status(unit); !strings.Contains(st, `Status: "running, main process `) {
		t.Fatalf("systemctl status lacks upshim's STATUS=:\n%s", st)
	}

	// Reload: ExecReload reaches the service, in the same main process,
	// and the unit is active again within 2 s.
	before, mainPID := answer("before the reload"), sd.show(unit, "MainPID")
	begin := time.Now()
	sd.systemctl(t, 10*time.Second, "reload", unit)
	waitFor(t, 2*time.Second-time.Since(begin), "active after the reload", func() (bool, string) {
		s := sd.show(unit, "ActiveState")
		return s == "active", "ActiveState=" + s
	})
	took := time.Since(begin)
	waitFor(t, deadline, "the reload reaching the service", func() (bool, string) {
		body, err := sd.get(c.port)
		return err == nil && body != before, fmt.Sprintf("answers %q (%v), as before", body, err)
	})
	if now := sd.show(unit, "MainPID"); now != mainPID {
		t.Fatalf("MainPID went from %s to %s on reload", mainPID, now)
	}
	t.Logf("reload: %s to active", ms(took))

	stop := func() {
		t.Helper()
		pids := sd.pids(unit)
		if len(pids) == 0 {
			t.Fatalf("no process in %s's cgroup before the stop", unit)
		}
		begin := time.Now()
		sd.systemctl(t, deadline, "stop", unit)
		took := time.Since(begin)
		if s, r := sd.show(unit, "ActiveState"), sd.show(unit, "Result"); s != "inactive" || r != "success" {
			t.Fatalf("after systemctl stop: ActiveState=%s Result=%s\n%s", s, r, sd.status(unit))
		}
		if left := aliveOf(pids); len(left) > 0 {
			t.Fatalf("the unit's processes outlived systemctl stop: %s", describePids(left))
		}
		if left := sd.pids(unit); len(left) > 0 {
			t.Fatalf("processes left in the unit's cgroup: %s", describePids(left))
		}
		t.Logf("stop: %s", ms(took))
	}
	stop()
	if !c.crash {
		return
	}

	// Crash the service past upshim's respawn limit (2/60): upshim gives
	// up, exits non-zero, and Restart=on-failure starts the unit again.
	start()
	last := ""
	var killed time.Time
	for i := 0; i < 3; i++ {
		waitFor(t, deadline, fmt.Sprintf("run %d serving", i+1), func() (bool, string) {
			body, err := sd.get(c.port)
			if err != nil || body == last {
				return false, fmt.Sprintf("answers %q (%v)", body, err)
			}
			last = body
			return true, ""
		})
		killed = time.Now()
		killService(t, sd.pids(unit))
	}
	waitFor(t, deadline, "Restart=on-failure", func() (bool, string) {
		n, s := sd.show(unit, "NRestarts"), sd.show(unit, "ActiveState")
		return n == "1" && s == "active", fmt.Sprintf("NRestarts=%s ActiveState=%s", n, s)
	})
	t.Logf("restart: %s from the last crash to active", ms(time.Since(killed)))
	answer("once the unit was restarted")
	journal := sd.journal(unit)
	for _, want := range []string{"upshim[" + c.name + "]: ", "respawning too fast (3 times within", "Scheduled restart job"} {
		if !strings.Contains(journal, want) {
			t.Fatalf("the journal lacks %q:\n%s", want, journal)
		}
	}
	stop()
	// upshim left systemd nothing to kill, on its stops or its exit.
	if journal := sd.journal(unit); strings.Contains(journal, "Killing process") {
		t.Fatalf("systemd had to kill what upshim left:\n%s", journal)
	}
}

// killService SIGKILLs every process of a unit but upshim: the service
// crashes.
func killService(t *testing.T, pids []int) {
	t.Helper()
	n := 0
	for _, pid := range pids {
		if processName(pid) != "upshim" {
			syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no service process among %s", describePids(pids))
	}
}
