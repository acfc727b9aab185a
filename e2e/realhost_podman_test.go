//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The container example under a real container runtime: podman with runc,
// offline. The image is a test twin of examples/Dockerfile: its
// FROM scratch stage as it is, with the binaries its build stage would
// make copied from the test's build (the build stage pulls golang from a
// registry), and the test service beside them. What this machine needs
// (see the research notes on real hosts): --runtime runc (crun 1.8 refuses
// hybrid cgroups), explicit nofile and nproc limits (root cannot raise
// RLIMIT_NOFILE here, and podman asks for 1048576), --network none.

// podmanLabel marks every container of these tests, with the test
// binary's pid, so that a run can clear what a killed one left.
const podmanLabel = "upshim-realhost-test"

type podmanHost struct {
	bin    string
	image  string   // the twin's tag
	entry  []string // the Dockerfile's ENTRYPOINT
	limits []string // --ulimit flags
	conf   string   // CONTAINERS_CONF for kube play, which has no --ulimit
	prefix string   // of container and pod names

	mu  sync.Mutex
	ids []string // every container made, for the leftover check
}

// run runs podman --runtime runc ARGS.
func (p *podmanHost) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--runtime", "runc"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %s", timeout)
	}
	return strings.TrimSpace(string(out)), err
}

// must runs podman and fails the test if it fails.
func (p *podmanHost) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(deadline, args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start runs a container in the background (podman run -d) with the
// flags this machine needs, and removes it when the test ends.
func (p *podmanHost) start(t *testing.T, name string, flags ...string) string {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--label", podmanLabel + "=" + strconv.Itoa(os.Getpid()),
		"--network", "none"}, p.limits...)
	id := p.must(t, append(append(args, flags...), p.image)...)
	p.track(t, id)
	return name
}

// track removes container id at the end of the test, and then checks
// that nothing of it is left on the host: no process, mount or cgroup.
func (p *podmanHost) track(t *testing.T, id string) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
	pids := []int{}
	for _, f := range []string{"{{.State.Pid}}", "{{.State.ConmonPid}}"} {
		if out, err := p.run(deadline, "inspect", "--format", f, id); err == nil {
			if pid, _ := strconv.Atoi(out); pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	t.Cleanup(func() {
		p.run(deadline, "rm", "-f", "-t", "0", id)
		p.assertGone(t, id, pids)
	})
}

// assertGone checks that a removed container left nothing on the host.
func (p *podmanHost) assertGone(t *testing.T, id string, pids []int) {
	t.Helper()
	if out, _ := p.run(deadline, "ps", "-a", "-q", "--no-trunc", "--filter", "id="+id); out != "" {
		t.Errorf("container %.12s still listed after podman rm", id)
	}
	waitFor(t, deadline, "the container's processes gone", func() (bool, string) {
		left := aliveOf(pids)
		return len(left) == 0, describePids(left)
	})
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), id) {
		t.Errorf("a mount of container %.12s is left", id)
	}
	if dirs := cgroupsNamed(id); len(dirs) > 0 {
		t.Errorf("cgroups of container %.12s left: %s", id, strings.Join(dirs, " "))
	}
}

// cgroupsNamed lists the host's cgroup directories whose name holds s.
func cgroupsNamed(s string) []string {
	var found []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Contains(d.Name(), s) {
				found = append(found, path)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return found
}

// logsHave waits until the container's output holds s, and fails at
// once if the container has exited without it.
func (p *podmanHost) logsHave(t *testing.T, name, s string) string {
	t.Helper()
	for end := time.Now().Add(deadline); ; {
		state, _ := p.run(deadline, "inspect", "--format", "{{.State.Status}}", name)
		out, _ := p.run(deadline, "logs", name)
		switch {
		case strings.Contains(out, s):
			return out
		case state == "exited" || time.Now().After(end):
			t.Fatalf("%q not in podman logs %s (%s):\n%s", s, name, state, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inspect is one field of podman inspect.
func (p *podmanHost) inspect(t *testing.T, name, format string) string {
	t.Helper()
	return p.must(t, "inspect", "--format", format, name)
}

// stop runs podman stop and returns how long it took and the exit code.
func (p *podmanHost) stop(t *testing.T, name string) (time.Duration, string) {
	t.Helper()
	begin := time.Now()
	p.must(t, "stop", name)
	took := time.Since(begin)
	return took, p.inspect(t, name, "{{.State.ExitCode}}")
}

// twin turns examples/Dockerfile into the Containerfile of the
// test's image, in the build context dir: its FROM scratch stage, with
// each COPY --from=build /out/NAME taken from dir/NAME, which the test
// makes as the build stage would.
func twin(t *testing.T, dir string, makers map[string]func(path string)) []string {
	t.Helper()
	b, err := os.ReadFile("../examples/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\nFROM scratch\n")
	if i < 0 {
		t.Fatalf("examples/Dockerfile has no FROM scratch stage")
	}
	final := s[i+1:]
	copyFrom := regexp.MustCompile(`(?m)^COPY --from=build /out/(\S+) `)
	for _, m := range copyFrom.FindAllStringSubmatch(final, -1) {
		f, ok := makers[m[1]]
		if !ok {
			t.Fatalf("the Dockerfile copies /out/%s, which the test's twin does not make", m[1])
		}
		f(filepath.Join(dir, m[1]))
	}
	final = copyFrom.ReplaceAllString(final, "COPY $1 ")
	final += "COPY hostsvc /usr/bin/hostsvc\n"
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(final), 0o644); err != nil {
		t.Fatal(err)
	}
	var entry []string
	if m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindStringSubmatch(final); m == nil {
		t.Fatalf("the Dockerfile has no ENTRYPOINT in exec form")
	} else if err := json.Unmarshal([]byte(m[1]), &entry); err != nil {
		t.Fatalf("the Dockerfile's ENTRYPOINT: %v", err)
	}
	return entry
}

// flagOf is the value of flag in args.
func flagOf(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func TestPodman(t *testing.T) {
	t.Parallel()
	needRoot(t, "running a container under podman", "podman", "runc", "catatonit")
	bin, _ := exec.LookPath("podman")
	work := t.TempDir()
	ctx := filepath.Join(work, "context")
	os.Mkdir(ctx, 0o755)
	copyTo := func(src string) func(string) {
		return func(dst string) {
			b, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(dst, b, 0o755)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	entry := twin(t, ctx, map[string]func(string){
		"upshim":          copyTo(buildStatic(t, work, "upshim", "..")),
		"naivehttpserver": copyTo(buildStatic(t, work, "naivehttpserver", "../examples/naivehttpserver")),
		"tmp":             func(dst string) { os.Mkdir(dst, 0o755) },
	})
	buildStatic(t, ctx, "hostsvc", "./testdata/hostsvc")

	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	nofile := min(rl.Max, 1<<20)
	p := &podmanHost{bin: bin, entry: entry, conf: filepath.Join(work, "containers.conf"),
		image:  fmt.Sprintf("localhost/upshim-realhost-test:%d", os.Getpid()),
		prefix: fmt.Sprintf("upshim-rt-%d-", os.Getpid()),
		limits: []string{"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile, nofile), "--ulimit", "nproc=32768:32768"}}
	os.WriteFile(p.conf, []byte(fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=%d:%d\", \"nproc=32768:32768\"]\n"+
		"[engine]\nruntime = \"runc\"\n", nofile, nofile)), 0o644)
	if out, err := p.run(deadline, "version"); err != nil {
		skipOrFail(t, "podman does not run here: %v\n%s", err, out)
	}
	p.clearLeftovers(t)

	imagesBefore, _ := p.run(deadline, "images", "-a", "-q", "--no-trunc")
	t.Cleanup(func() {
		// Images this test made: its own, and the pause image kube play
		// builds when there is none.
		after, _ := p.run(deadline, "images", "-a", "-q", "--no-trunc")
		for _, id := range strings.Fields(after) {
			if !strings.Contains(imagesBefore, id) {
				p.run(deadline, "rmi", "-f", id)
			}
		}
		if now, _ := p.run(deadline, "images", "-a", "-q", "--no-trunc"); now != imagesBefore {
			t.Errorf("images left: %q, was %q", now, imagesBefore)
		}
		// podman's cgroupfs manager leaves its parent cgroups behind, empty.
		parents, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
		for _, d := range parents {
			removeTree(d)
		}
	})
	begin := time.Now()
	p.must(t, "build", "-q", "--layers=false", "--network", "none", "-t", p.image, "-f", filepath.Join(ctx, "Containerfile"), ctx)
	t.Logf("podman build FROM scratch, offline: %s", ms(time.Since(begin)))

	t.Run("stop", func(t *testing.T) { podmanStop(t, p) })
	t.Run("kill-timeout", func(t *testing.T) { podmanKillTimeout(t, p) })
	t.Run("ctrl-c", func(t *testing.T) { podmanCtrlC(t, p) })
	t.Run("init", func(t *testing.T) { podmanInit(t, p) })
	t.Run("kube-play", func(t *testing.T) { podmanKubePlay(t, p) })
}

// clearLeftovers removes the containers and images of earlier runs that
// were killed before their cleanup (their test binary is gone).
func (p *podmanHost) clearLeftovers(t *testing.T) {
	out, _ := p.run(deadline, "ps", "-a", "--filter", "label="+podmanLabel, "--format", "{{.ID}} {{index .Labels \""+podmanLabel+"\"}}")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if pid, _ := strconv.Atoi(f[1]); pid > 0 && procState(f[1]) == 0 {
			t.Logf("removing container %s, left by test process %d", f[0], pid)
			p.run(deadline, "rm", "-f", "-t", "0", f[0])
		}
	}
	repo := strings.Split(p.image, ":")[0]
	out, _ = p.run(deadline, "images", "--format", "{{.Tag}}", repo)
	for _, tag := range strings.Fields(out) {
		if pid, _ := strconv.Atoi(tag); pid > 0 && procState(tag) == 0 {
			t.Logf("removing image %s:%s, left by test process %d", repo, tag, pid)
			p.run(deadline, "rmi", "-f", repo+":"+tag)
		}
	}
}

// upshim is PID 1; podman kill -s HUP reloads; podman stop sends the
// image's STOPSIGNAL, which stops the server cleanly, well inside podman's
// timeout.
func podmanStop(t *testing.T, p *podmanHost) {
	name := p.start(t, p.prefix+"stop")
	p.logsHave(t, name, "listening on")
	pid, _ := strconv.Atoi(p.inspect(t, name, "{{.State.Pid}}"))
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !regexp.MustCompile(`(?m)^NSpid:\s+\d+\s+1$`).Match(status) || !strings.HasPrefix(string(cmdline), "/usr/bin/upshim\x00") {
		t.Fatalf("PID 1 of the container is %q:\n%s", cmdline, status)
	}
	if body, err := getIn(pid, "http://127.0.0.1:8080/"); err != nil || !strings.Contains(body, "reloads: 0") {
		t.Fatalf("GET /: %q, %v", body, err)
	}
	p.must(t, "kill", "-s", "HUP", name)
	p.logsHave(t, name, "reloading (reload 1)")
	if body, err := getIn(pid, "http://127.0.0.1:8080/"); err != nil || !strings.Contains(body, "reloads: 1") {
		t.Fatalf("GET / after the reload: %q, %v", body, err)
	}
	if sig := p.inspect(t, name, "{{.Config.StopSignal}}"); sig != "15" {
		t.Fatalf("the image's STOPSIGNAL is %s, want 15 (SIGTERM)", sig)
	}
	took, code := p.stop(t, name)
	logs := p.logsHave(t, name, "bye")
	if code != "0" || !strings.Contains(logs, "got SIGTERM") {
		t.Fatalf("podman stop: exit %s after %s; logs:\n%s", code, took, logs)
	}
	// podman's own timeout is 10s.
	if took > 5*time.Second {
		t.Fatalf("podman stop took %s", took)
	}
	t.Logf("podman stop: %s, exit 0", ms(took))
}

// A service that ignores TERM: upshim SIGKILLs it at its --kill-timeout
// (the Dockerfile's), before podman's own timeout (10s) would.
func podmanKillTimeout(t *testing.T, p *podmanHost) {
	kill, err := time.ParseDuration(flagOf(p.entry, "--kill-timeout") + "s")
	if err != nil || kill >= 10*time.Second {
		t.Fatalf("the Dockerfile's --kill-timeout %q must be shorter than podman's 10s", flagOf(p.entry, "--kill-timeout"))
	}
	entry := p.entry
	for i, a := range entry {
		if a == "--" {
			entry = append(append([]string(nil), entry[:i+1]...), "/usr/bin/hostsvc")
		}
	}
	ep, _ := json.Marshal(entry)
	name := p.start(t, p.prefix+"kill", "--entrypoint", string(ep), "-e", "IGNORE_TERM=1")
	p.logsHave(t, name, "hostsvc ready")
	took, code := p.stop(t, name)
	logs := p.logsHave(t, name, "hostsvc signal terminated")
	if code != "137" || !strings.Contains(logs, "sending SIGKILL") || took < kill-kill/10 || took >= 10*time.Second {
		t.Fatalf("podman stop: exit %s after %s, want 137 after upshim's --kill-timeout %s; logs:\n%s", code, took, kill, logs)
	}
	t.Logf("podman stop, service ignoring TERM: %s, exit 137 (--kill-timeout %s)", ms(took), kill)
}

// podman run -it on a terminal: Ctrl-C reaches the server, which upshim
// gave the container's terminal, and stops it; upshim does not respawn it.
func podmanCtrlC(t *testing.T, p *podmanHost) {
	name := p.prefix + "ctrlc"
	master, slave := openPty(t)
	cmd := exec.Command(p.bin, append(append([]string{"--runtime", "runc", "run", "-it", "--name", name,
		"--label", podmanLabel + "=" + strconv.Itoa(os.Getpid()), "--network", "none"}, p.limits...), p.image)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.Env = append(os.Environ(), "TERM=dumb")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.run(deadline, "rm", "-f", "-t", "0", name) })
	slave.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	out := &lockedBuffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	waitFor(t, deadline, "the server on the terminal", func() (bool, string) {
		return strings.Contains(out.String(), "listening on"), out.String()
	})
	if id, err := p.run(deadline, "inspect", "--format", "{{.Id}}", name); err == nil {
		p.track(t, id)
	}
	begin := time.Now()
	master.Write([]byte{3}) // Ctrl-C
	select {
	case <-exited:
	case <-time.After(deadline):
		t.Fatalf("podman run still running %s after Ctrl-C; terminal:\n%s", deadline, out)
	}
	took := time.Since(begin)
	code := p.inspect(t, name, "{{.State.ExitCode}}")
	if code != "130" || !strings.Contains(out.String(), "from the terminal; not respawning") {
		t.Fatalf("after Ctrl-C: exit %s, want 130 (the server's death by SIGINT); terminal:\n%s", code, out)
	}
	t.Logf("podman run -it, Ctrl-C: stopped in %s, exit %s", ms(took), code)
}

// podman's --init (catatonit) as PID 1, upshim below it: HUP and stop
// pass through both.
func podmanInit(t *testing.T, p *podmanHost) {
	name := p.start(t, p.prefix+"init", "--init")
	p.logsHave(t, name, "listening on")
	pid := p.inspect(t, name, "{{.State.Pid}}")
	kids := childPids(atoi(t, pid))
	if len(kids) != 1 || processName(kids[0]) != "upshim" {
		t.Fatalf("PID 1 (%s) has children %s, want upshim alone", processName(atoi(t, pid)), describePids(kids))
	}
	p.must(t, "kill", "-s", "HUP", name)
	p.logsHave(t, name, "reloading (reload 1)")
	took, code := p.stop(t, name)
	if code != "0" {
		t.Fatalf("podman stop: exit %s after %s", code, took)
	}
	t.Logf("--init: podman stop: %s, exit 0", ms(took))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// podman kube play of examples/pod.yaml, with its image the
// test's: the pod runs and serves, and the readiness probe's command
// answers. The pod's ports list is dropped: podman 4 publishes a
// containerPort on the host's same port, which needs a network.
func podmanKubePlay(t *testing.T, p *podmanHost) {
	b, err := os.ReadFile("../examples/pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pod := p.prefix + "pod"
	yaml := string(b)
	for _, r := range [][2]string{
		{"  name: naivehttpserver\n", "  name: " + pod + "\n"},
		{"image: naivehttpserver:latest", "image: " + p.image},
		{"      ports:\n        - containerPort: 8080\n", ""},
	} {
		if !strings.Contains(yaml, r[0]) {
			t.Fatalf("pod.yaml no longer has %q", r[0])
		}
		yaml = strings.Replace(yaml, r[0], r[1], 1)
	}
	file := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(file, []byte(yaml), 0o644)

	begin := time.Now()
	t.Cleanup(func() { p.run(deadline, "pod", "rm", "-f", "-t", "0", pod) })
	p.must(t, "kube", "play", "--network", "none", file)
	server := pod + "-server"
	ids := strings.Fields(p.must(t, "ps", "-a", "-q", "--no-trunc", "--filter", "pod="+pod))
	for _, id := range ids {
		p.track(t, id)
	}
	// Before the containers' own cleanup: a pod's infra container goes
	// only with its pod.
	t.Cleanup(func() { p.run(deadline, "pod", "rm", "-f", "-t", "0", pod) })
	pid := atoi(t, p.inspect(t, server, "{{.State.Pid}}"))
	waitFor(t, deadline, "the pod serving", func() (bool, string) {
		_, err := getIn(pid, "http://127.0.0.1:8080/healthz")
		return err == nil, fmt.Sprint(err)
	})
	t.Logf("kube play: serving %s after the play began", ms(time.Since(begin)))
	// The readiness probe's command works against the image (podman
	// itself does not run it).
	if out, err := p.run(deadline, "exec", server, "/usr/bin/upshim", "ctl", "--control", "/tmp/upshim.sock", "status"); err != nil {
		t.Fatalf("the readiness probe's command: %v: %s", err, out)
	}
	// What podman made of the probes: the liveness probe is a healthcheck
	// (httpGet as curl, which the image lacks), the readiness probe and
	// the grace period are not used.
	hc := p.inspect(t, server, "{{json .Config.Healthcheck}}")
	stopTimeout := p.inspect(t, server, "{{.Config.StopTimeout}}")
	out, _ := p.run(deadline, "healthcheck", "run", server)
	t.Logf("kube play: healthcheck %s (run by hand: %s), stop timeout %ss", hc, out, stopTimeout)
	if !strings.Contains(hc, "http://localhost:8080/healthz") {
		t.Errorf("the liveness probe did not become a healthcheck: %s", hc)
	}

	// The pod's stop is upshim's; kube down then takes seconds of
	// podman's own to remove the pod.
	begin = time.Now()
	p.must(t, "pod", "stop", pod)
	took := time.Since(begin)
	if code := p.inspect(t, server, "{{.State.ExitCode}}"); code != "0" || took > 5*time.Second {
		t.Fatalf("podman pod stop: exit %s after %s", code, took)
	}
	t.Logf("podman pod stop: %s, exit 0", ms(took))
	p.must(t, "kube", "down", file)
}
