//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upshim by name: --control auto, upshim ctl NAME, upshim ctl list. Every
// test gives upshim and ctl their own runtime directory through the
// command's environment, so none touches the host's /run/upshim.

// namesEnv is the test's environment without the variables that choose a
// runtime directory or a control socket, plus env.
func namesEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "RUNTIME_DIRECTORY" && name != "XDG_RUNTIME_DIR" && name != "UPSHIM_CONTROL" {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// startNamed runs upshim with env and args (as cred's user, when given)
// and waits until its service is first ready (--ready-fd), by when its
// control socket is listening.
func startNamed(t *testing.T, env []string, cred *syscall.Credential, bin string, args ...string) *running {
	t.Helper()
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	cmd := exec.Command(bin, append([]string{"--ready-fd", "3"}, args...)...)
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{wr}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	r := startShimCmd(t, cmd)
	wr.Close()
	rd.SetReadDeadline(time.Now().Add(deadline))
	if b, err := io.ReadAll(rd); err != nil || string(b) != "\n" {
		t.Fatalf("upshim %s: not ready (%q, %v); stderr:\n%s", strings.Join(args, " "), b, err, r.stderr)
	}
	return r
}

// ctlAs runs upshim ctl ARGS with env (as cred's user, when given), to
// its end, and returns its stdout, stderr and exit status.
func ctlAs(t *testing.T, env []string, cred *syscall.Credential, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"ctl"}, args...)...)
	cmd.Env = env
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("upshim ctl %s still running after %s", strings.Join(args, " "), deadline)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// listed parses ctl list --json.
func listed(t *testing.T, out string) []map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ctl list --json: %v:\n%s", err, out)
	}
	return list
}

// Two services side by side: each socket is RUNDIR/NAME.sock in a
// directory upshim made 0700, ctl list shows both on aligned lines, and
// ctl NAME drives each one alone; at exit the socket goes.
func TestCtlNamesSideBySide(t *testing.T) {
	t.Parallel()
	bin := upshimBinary(t)
	rundir := filepath.Join(t.TempDir(), "run") // upshim creates it
	env := namesEnv("RUNTIME_DIRECTORY=" + rundir + ":/elsewhere")
	web := startNamed(t, env, nil, bin, "--control", "auto", "--name", "web", "--", "sleep", "300")
	db := startNamed(t, env, nil, bin, "--control", "auto", "--name", "db", "--respawn", "--", "sleep", "300")
	if st, err := os.Lstat(rundir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("runtime directory %s: %v, %v; want a directory, mode 0700", rundir, st.Mode(), err)
	}
	for _, name := range []string{"web", "db"} {
		if st, err := os.Lstat(rundir + "/" + name + ".sock"); err != nil || st.Mode()&os.ModeSocket == 0 {
			t.Fatalf("%s.sock: %v", name, err)
		}
	}

	out, stderr, code := ctlAs(t, env, nil, bin, "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	row := regexp.MustCompile(`^(\S+)( +)(\S+)( +)(\S+)( +)(\S+)( +)(\S+)( +)(\S+)$`)
	if code != 0 || len(lines) != 3 || stderr != "" {
		t.Fatalf("ctl list: exit %d, stdout:\n%s\nstderr: %s", code, out, stderr)
	}
	want := [][]string{{"NAME", "STATE", "PID", "UPTIME", "RESPAWNS", "HEALTH"}, {"db", "running"}, {"web", "running"}}
	for i, line := range lines {
		m := row.FindStringSubmatch(line)
		if m == nil || m[1] != want[i][0] || m[3] != want[i][1] || (i > 0 && (m[9] != "0" || m[11] != "-")) {
			t.Fatalf("ctl list line %d %q, want %v…:\n%s", i, line, want[i], out)
		}
		// Aligned: every column starts where the header's does.
		for _, col := range []string{"STATE", "PID", "UPTIME", "RESPAWNS", "HEALTH"} {
			at := strings.Index(lines[0], col)
			if len(line) <= at || line[at-1] != ' ' || line[at] == ' ' {
				t.Fatalf("column %s not aligned in %q:\n%s", col, line, out)
			}
		}
	}
	out, _, code = ctlAs(t, env, nil, bin, "list", "--json")
	list := listed(t, out)
	if code != 0 || len(list) != 2 || list[0]["name"] != "db" || list[1]["name"] != "web" ||
		list[1]["control"] != rundir+"/web.sock" || list[1]["state"] != "running" || list[1]["pid"].(float64) == 0 {
		t.Fatalf("ctl list --json: exit %d:\n%s", code, out)
	}

	// By name, each alone.
	if out, stderr, code := ctlAs(t, env, nil, bin, "web", "stop"); code != 0 || !strings.HasPrefix(out, "stopped") {
		t.Fatalf("ctl web stop: exit %d, %q %q", code, out, stderr)
	}
	if out, _, code := ctlAs(t, env, nil, bin, "web", "status"); code != 3 || !strings.HasPrefix(out, "web: down") {
		t.Fatalf("ctl web status after stop: exit %d, %q", code, out)
	}
	if out, _, code := ctlAs(t, env, nil, bin, "db", "status"); code != 0 || !strings.HasPrefix(out, "db: running") {
		t.Fatalf("ctl db status: exit %d, %q", code, out)
	}
	if out, _, code := ctlAs(t, env, nil, bin, "db", "status", "--json"); code != 0 || !strings.Contains(out, `"name":"db"`) {
		t.Fatalf("ctl db status --json: exit %d, %q", code, out)
	}
	// UPSHIM_CONTROL does not take a NAME's place.
	withEnv := append(env, "UPSHIM_CONTROL="+rundir+"/db.sock")
	if out, _, code := ctlAs(t, withEnv, nil, bin, "web", "start"); code != 0 || !strings.HasPrefix(out, "start") {
		t.Fatalf("ctl web start: exit %d, %q", code, out)
	}
	if out, _, code := ctlAs(t, withEnv, nil, bin, "status"); code != 0 || !strings.HasPrefix(out, "db: running") {
		t.Fatalf("ctl status with UPSHIM_CONTROL: exit %d, %q", code, out)
	}

	if _, stderr, code := ctlAs(t, env, nil, bin, "web", "exit"); code != 0 {
		t.Fatalf("ctl web exit: %d %s", code, stderr)
	}
	web.wait()
	if _, err := os.Lstat(rundir + "/web.sock"); err == nil {
		t.Fatal("web.sock outlived its upshim")
	}
	out, _, _ = ctlAs(t, env, nil, bin, "list", "--json")
	if list := listed(t, out); len(list) != 1 || list[0]["name"] != "db" {
		t.Fatalf("ctl list --json after web exited:\n%s", out)
	}
	ctlAs(t, env, nil, bin, "db", "exit")
	db.wait()
	if entries, _ := os.ReadDir(rundir); len(entries) != 0 {
		t.Fatalf("left in %s: %v", rundir, entries)
	}
	if _, stderr, code := ctlAs(t, env, nil, bin, "list"); code != 0 || !strings.Contains(stderr, "no upshim is running in "+rundir) {
		t.Fatalf("ctl list with none: exit %d, %q", code, stderr)
	}
}

// A socket left by an upshim that died is not listed, and ctl NAME says
// so; an unknown name exits 1 naming the ones running.
func TestCtlListSkipsStaleSocket(t *testing.T) {
	t.Parallel()
	bin := upshimBinary(t)
	rundir := filepath.Join(t.TempDir(), "run")
	env := namesEnv("RUNTIME_DIRECTORY=" + rundir)
	r := startNamed(t, env, nil, bin, "--control", "auto", "--name", "live", "--", "sleep", "300")
	l, err := net.Listen("unix", rundir+"/ghost.sock")
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	out, stderr, code := ctlAs(t, env, nil, bin, "list")
	if code != 0 || strings.Contains(out, "ghost") || !strings.Contains(out, "\nlive ") || stderr != "" {
		t.Fatalf("ctl list with a stale socket: exit %d, stdout:\n%s\nstderr: %s", code, out, stderr)
	}
	out, _, code = ctlAs(t, env, nil, bin, "list", "--json")
	if list := listed(t, out); code != 0 || len(list) != 1 || list[0]["name"] != "live" {
		t.Fatalf("ctl list --json with a stale socket: exit %d:\n%s", code, out)
	}
	_, stderr, code = ctlAs(t, env, nil, bin, "ghost", "status")
	if code != 1 || !strings.Contains(stderr, rundir+"/ghost.sock is stale") || !strings.Contains(stderr, "running: live") {
		t.Fatalf("ctl ghost status: exit %d, %q", code, stderr)
	}
	_, stderr, code = ctlAs(t, env, nil, bin, "nosuch", "status")
	want := fmt.Sprintf(`upshim: ctl status: no upshim named "nosuch" in %s or /run/upshim`, rundir)
	if code != 1 || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "running: live") {
		t.Fatalf("ctl nosuch status: exit %d, %q; want %q…", code, stderr, want)
	}
	// A name that is not a file name is refused before any look-up.
	for _, name := range []string{"../run/live", ".live", "a\x1bb"} {
		if _, stderr, code := ctlAs(t, env, nil, bin, name, "status"); code != 2 || !strings.Contains(stderr, "upshim: ctl: NAME") {
			t.Errorf("ctl %q status: exit %d, %q", name, code, stderr)
		}
	}
	ctlAs(t, env, nil, bin, "live", "exit")
	r.wait()
}

// A second upshim with the name of a live one is refused (exit 2) and
// runs nothing; the first keeps its socket.
func TestControlAutoSameNameRefused(t *testing.T) {
	t.Parallel()
	bin := upshimBinary(t)
	dir := t.TempDir()
	env := namesEnv("RUNTIME_DIRECTORY=" + dir + "/run")
	first := startNamed(t, env, nil, bin, "--control", "auto", "--name", "web", "--", "sleep", "300")
	cmd := exec.Command(bin, "--control", "auto", "--name", "web", "--", "sh", "-c", "touch "+dir+"/ran")
	cmd.Env = env
	second := startShimCmd(t, cmd)
	want := fmt.Sprintf(`upshim: --control auto: an upshim named "web" is already running (it answers on %s/run/web.sock); give this one another --name`, dir)
	if code := second.wait(); code != 2 || strings.TrimSpace(second.stderr.String()) != want {
		t.Fatalf("a second web: exit %d, %q; want 2, %q", code, second.stderr, want)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Fatal("the second upshim ran its service")
	}
	if out, _, code := ctlAs(t, env, nil, bin, "web", "status"); code != 0 || !strings.HasPrefix(out, "web: running") {
		t.Fatalf("the first web after the second was refused: exit %d, %q", code, out)
	}
	ctlAs(t, env, nil, bin, "web", "exit")
	first.wait()
}

// The runtime directory is upshim's alone: a link, a directory others can
// enter, one owned by another user, and a name that is no file name are
// refused (exit 2) before anything runs.
func TestControlAutoRefusesUnsafeDir(t *testing.T) {
	t.Parallel()
	bin := upshimBinary(t)
	dir := t.TempDir()
	real := dir + "/real"
	os.Mkdir(real, 0o700)
	os.Symlink(real, dir+"/link")
	os.Mkdir(dir+"/open", 0o755)
	os.Chmod(dir+"/open", 0o755)
	cases := []struct{ env, name, want string }{
		{dir + "/link", "web", "runtime directory " + dir + "/link: not a directory (a link is not followed)"},
		{dir + "/open", "web", "runtime directory " + dir + "/open: mode 0755, want 0700 (systemd: RuntimeDirectoryMode=0700)"},
		{real, ".hidden", `--control auto: the name ".hidden" starts with '.', so it cannot name the socket; give another with --name`},
		{real, "a\nb", `--control auto: the name "a\nb" contains the control character '\n'`},
	}
	if os.Geteuid() == 0 {
		os.Mkdir(dir+"/theirs", 0o700)
		os.Chown(dir+"/theirs", 65534, 65534)
		cases = append(cases, struct{ env, name, want string }{dir + "/theirs", "web", "runtime directory " + dir + "/theirs: owned by uid 65534, not by upshim's uid 0"})
	}
	for _, c := range cases {
		cmd := exec.Command(bin, "--control", "auto", "--name", c.name, "--", "sh", "-c", "touch "+dir+"/ran")
		cmd.Env = namesEnv("RUNTIME_DIRECTORY=" + c.env)
		r := startShimCmd(t, cmd)
		if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), c.want) {
			t.Errorf("RUNTIME_DIRECTORY=%s --name %q: exit %d, %q; want 2, %q", c.env, c.name, code, r.stderr, c.want)
		}
	}
	// One upshim cannot create is a resource it lacks, as for a socket.
	cmd := exec.Command(bin, "--control", "auto", "--name", "web", "--", "sh", "-c", "touch "+dir+"/ran")
	cmd.Env = namesEnv("RUNTIME_DIRECTORY=" + dir + "/nodir/run")
	r := startShimCmd(t, cmd)
	if want := "runtime directory " + dir + "/nodir/run: cannot create it: no such file or directory"; r.wait() != 1 || !strings.Contains(r.stderr.String(), want) {
		t.Errorf("RUNTIME_DIRECTORY in a missing directory: exit %d, %q; want 1, %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Fatal("a refused upshim ran its service")
	}
	if entries, _ := os.ReadDir(real); len(entries) != 0 {
		t.Fatalf("left in the link's target: %v", entries)
	}
}

// A user's own upshim goes in $XDG_RUNTIME_DIR/upshim, where ctl finds it
// by name; root's, in a directory only root may enter, is refused to the
// user, by the directory and, once that is opened up, by the peer check,
// and stays up.
func TestCtlNamesOtherUser(t *testing.T) {
	t.Parallel()
	uid, gid := testUser(t)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	base := publicDir(t, 0o755)
	bin := base + "/upshim"
	installExecutable(t, upshimBinary(t), bin)
	xdg := base + "/xdg"
	os.Mkdir(xdg, 0o700)
	os.Chown(xdg, uid, gid)
	rootDir := base + "/root-run"
	rootEnv := namesEnv("RUNTIME_DIRECTORY=" + rootDir)
	userEnv := namesEnv("XDG_RUNTIME_DIR=" + xdg)

	// Without a runtime directory to use, a user's upshim is refused.
	cmd := exec.Command(bin, "--control", "auto", "--name", "svc", "--", "true")
	cmd.Env, cmd.SysProcAttr = namesEnv(), &syscall.SysProcAttr{Credential: cred}
	if r := startShimCmd(t, cmd); r.wait() != 2 || !strings.Contains(r.stderr.String(), "neither RUNTIME_DIRECTORY nor XDG_RUNTIME_DIR is set") {
		t.Fatalf("a user's --control auto without XDG_RUNTIME_DIR: exit %d, %s", r.code, r.stderr)
	}

	mine := startNamed(t, userEnv, cred, bin, "--control", "auto", "--name", "mine", "--", "sleep", "300")
	rootSvc := startNamed(t, rootEnv, nil, bin, "--control", "auto", "--name", "rootsvc", "--", "sleep", "300")
	if st, err := os.Lstat(xdg + "/upshim/mine.sock"); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Fatalf("the user's socket: %v", err)
	}
	if out, stderr, code := ctlAs(t, userEnv, cred, bin, "mine", "status"); code != 0 || !strings.HasPrefix(out, "mine: running") {
		t.Fatalf("the user's ctl mine status: exit %d, %q %q", code, out, stderr)
	}
	if out, stderr, code := ctlAs(t, userEnv, cred, bin, "list"); code != 0 || !strings.Contains(out, "\nmine ") || strings.Contains(out, "rootsvc") {
		t.Fatalf("the user's ctl list: exit %d, %q %q", code, out, stderr)
	}

	// Root's upshim, to the user: looked for in the user's directory,
	// then root's, where the user may not look.
	_, stderr, code := ctlAs(t, userEnv, cred, bin, "rootsvc", "stop")
	if code != 1 || !strings.Contains(stderr, `no upshim named "rootsvc" in `+xdg+"/upshim or /run/upshim") || !strings.Contains(stderr, "running: mine") {
		t.Fatalf("the user's ctl rootsvc stop: exit %d, %q", code, stderr)
	}
	userInRoot := namesEnv("RUNTIME_DIRECTORY="+rootDir, "XDG_RUNTIME_DIR="+xdg)
	_, stderr, code = ctlAs(t, userInRoot, cred, bin, "rootsvc", "stop")
	if code != 1 || !strings.Contains(stderr, rootDir+": permission denied") {
		t.Fatalf("the user's ctl rootsvc stop, in root's directory: exit %d, %q", code, stderr)
	}
	// With the directory and the socket opened up, the peer check stops it.
	os.Chmod(rootDir, 0o755)
	os.Chmod(rootDir+"/rootsvc.sock", 0o666)
	_, stderr, code = ctlAs(t, userInRoot, cred, bin, "rootsvc", "stop")
	if want := fmt.Sprintf("permission denied: uid %d may not control this upshim", uid); code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("the user's ctl rootsvc stop, opened up: exit %d, %q; want %q", code, stderr, want)
	}
	if out, _, code := ctlAs(t, rootEnv, nil, bin, "rootsvc", "status"); code != 0 || !strings.HasPrefix(out, "rootsvc: running") {
		t.Fatalf("rootsvc after the user's attempts: exit %d, %q", code, out)
	}

	if out, stderr, code := ctlAs(t, userEnv, cred, bin, "mine", "exit"); code != 0 || out != "exiting\n" {
		t.Fatalf("the user's ctl mine exit: exit %d, %q %q", code, out, stderr)
	}
	mine.wait()
	if _, err := os.Lstat(xdg + "/upshim/mine.sock"); err == nil {
		t.Fatal("the user's socket outlived its upshim")
	}
	ctlAs(t, rootEnv, nil, bin, "rootsvc", "exit")
	rootSvc.wait()
}

// generate systemd with --control auto has systemd make the runtime
// directory upshim uses, and keeps --control auto as it is.
func TestGenerateSystemdControlAuto(t *testing.T) {
	t.Parallel()
	bin := upshimBinary(t)
	out, err := exec.Command(bin, "generate", "systemd", "--control", "auto", "--name", "web", "--", "sleep", "300").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" --control auto --name web ", "\nRuntimeDirectory=upshim\n", "\nRuntimeDirectoryMode=0700\n", "\nRuntimeDirectoryPreserve=yes\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("generate systemd --control auto lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(bin, "generate", "systemd", "--control", "/run/web.sock", "--", "sleep", "300").Output()
	if err != nil || strings.Contains(string(out), "RuntimeDirectory") {
		t.Fatalf("generate systemd --control PATH: %v\n%s", err, out)
	}
}
