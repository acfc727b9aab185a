//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// get fetches http://127.0.0.1:port/ once the service is up.
func get(t *testing.T, port int) string {
	t.Helper()
	var body string
	eventually(t, func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return true, ""
	})
	return body
}

// The seed document's naive Go server job, run as it is; only its chdir
// (/vagrant) is overridden, by a flag.
func TestJobNaiveHTTPServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/naivehttpserver", "../examples/naivehttpserver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := freePort(t)
	r := startShim(t, "--chdir", dir, "--env", fmt.Sprintf("ADDR=127.0.0.1:%d", port), "--job", "../examples/naivehttpserver.conf")
	if body := get(t, port); !strings.HasPrefix(body, "hello from naivehttpserver") {
		t.Fatalf("answered %q", body)
	}
	waitStderr(t, r, "job stanzas left to the init, ignored: start on, stop on")
	// respawn: the job says so
	http.Get(fmt.Sprintf("http://127.0.0.1:%d/crash", port))
	waitStderr(t, r, "respawning (1/10 within 5s)")
	get(t, port)
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()
}

// The seed document's nginx job: env, expect fork, respawn, respawn limit,
// a pre-start script that runs $DAEMON -t and fails the start on error.
func TestJobNginx(t *testing.T) {
	t.Parallel()
	nginx := daemonBinary(t, "nginx")
	dir, port := t.TempDir(), freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path %[1]s/body;
	server { listen 127.0.0.1:%[2]d; location / { return 200 "hello from nginx\n"; } } }
`, dir, port)), 0o644)
	opts := fmt.Sprintf("DAEMON_OPTS=-c %s -p %s", conf, dir)
	r := startShim(t, "-v", "--env", "DAEMON="+nginx, "--env", opts, "--job", "../examples/nginx.conf")
	if body := get(t, port); body != "hello from nginx\n" {
		t.Fatalf("answered %q", body)
	}
	waitStderr(t, r, "main process is ")
	r.signal(syscall.SIGTERM)
	r.wait()
	r.assertNothingLeft()

	os.WriteFile(conf, []byte("not nginx\n"), 0o644)
	r = startShim(t, "--env", "DAEMON="+nginx, "--env", opts, "--job", "../examples/nginx.conf")
	if code := r.wait(); code == 0 || !strings.Contains(r.stderr.String(), "pre-start hook") {
		t.Fatalf("a broken configuration: exit %d; stderr:\n%s", code, r.stderr)
	}
}

// Upstart's rules stand in a job file; flags override stanzas.
func TestJobRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	job := dir + "/limited.conf"
	os.WriteFile(job, []byte("respawn limit 3 10\nexec sh -c 'echo run >> "+dir+"/runs; exit 1'\n"), 0o644)
	r := startShim(t, "--job", job)
	if code := r.wait(); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(dir + "/runs"); string(b) != "run\n" {
		t.Fatalf("respawn limit alone respawned: %q", b)
	}
	// --respawn on the command line turns it on, with the job's limit.
	os.Remove(dir + "/runs")
	r = startShim(t, "--respawn", "--job", job)
	r.wait()
	if b, _ := os.ReadFile(dir + "/runs"); strings.Count(string(b), "run") != 4 {
		t.Fatalf("with --respawn and respawn limit 3 10: %q", b)
	}
	// console log goes to the file --log-file names.
	os.WriteFile(job, []byte("console log\nscript\n  echo from-script\nend script\n"), 0o644)
	r = startShim(t, "--log-file", dir+"/job.log", "--job", job)
	r.wait()
	if b, _ := os.ReadFile(dir + "/job.log"); string(b) != "from-script\n" {
		t.Fatalf("job.log holds %q", b)
	}
	// Errors name the file and the line; a COMMAND and --job conflict.
	os.WriteFile(job, []byte("exec true\nfrobnicate\n"), 0o644)
	r = startShim(t, "--job", job)
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "upshim: --job "+job+":2: unknown stanza \"frobnicate\"") {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	r = startShim(t, "--job", job, "--", "true")
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "mutually exclusive") {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
}

// generate systemd: a unit systemd-analyze accepts without a word, that
// runs exactly the invocation, with absolute paths.
func TestGenerateSystemd(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOrFail(t, "systemd-analyze not installed (Debian package systemd)")
	}
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"plain":  {"--respawn-limit", "10/5", "--kill-timeout", "20", "--pre-stop", "echo 'bye'", "--", "sleep", "100 %n $HOME"},
		"nginxj": {"--job", "../examples/nginx.conf"},
	} {
		out, err := exec.Command(upshimBinary(t), append([]string{"generate", "systemd"}, args...)...).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		unit := string(out)
		for _, want := range []string{"Type=notify", "KillMode=mixed", "Restart=on-failure", "ExecStart=" + upshimBinary(t) + " "} {
			if !strings.Contains(unit, want) {
				t.Errorf("%s: unit lacks %q:\n%s", name, want, unit)
			}
		}
		path := filepath.Join(dir, "upshim-"+name+".service")
		os.WriteFile(path, out, 0o644)
		check, _ := exec.Command(analyze, "verify", path).CombinedOutput()
		if strings.Contains(string(check), path) || strings.Contains(string(check), "upshim-"+name) {
			t.Errorf("%s: systemd-analyze verify says:\n%s\nof:\n%s", name, check, unit)
		}
		switch name {
		case "plain":
			if !strings.Contains(unit, `"100 %%n $$HOME"`) || !strings.Contains(unit, "TimeoutStopSec=55") || !strings.Contains(unit, "/sleep ") {
				t.Errorf("quoting, timeout or path:\n%s", unit)
			}
		case "nginxj":
			if !strings.Contains(unit, "After=network-online.target") || !strings.Contains(unit, "--job "+mustAbs(t, "../examples/nginx.conf")) {
				t.Errorf("ordering or job path:\n%s", unit)
			}
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// generate upstart: a job that upshim --job runs back; generate
// dockerfile: the ENTRYPOINT and STOPSIGNAL lines. Output is deterministic.
func TestGenerateUpstartAndDockerfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gen := func(args ...string) string {
		out, err := exec.Command(upshimBinary(t), append([]string{"generate"}, args...)...).Output()
		if err != nil {
			t.Fatalf("generate %v: %v", args, err)
		}
		return string(out)
	}
	job := gen("upstart", "--respawn", "--", "sigrecord")
	if job != gen("upstart", "--respawn", "--", "sigrecord") {
		t.Fatal("two runs of generate upstart differ")
	}
	os.WriteFile(dir+"/gen.conf", []byte(job), 0o644)
	r := startShim(t, "--job", dir+"/gen.conf")
	if l := r.line(); !strings.HasPrefix(l, "ready ") {
		t.Fatalf("the generated job printed %q; it is:\n%s", l, job)
	}
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	r.wait()
	r.assertNothingLeft()

	docker := gen("dockerfile", "--respawn-limit", "10/5", "--", "/app/server", "--port", "8080")
	for _, want := range []string{"STOPSIGNAL SIGTERM\n", `ENTRYPOINT ["/usr/bin/upshim", "--respawn-limit", "10/5", "--", "/app/server", "--port", "8080"]` + "\n"} {
		if !strings.Contains(docker, want) {
			t.Errorf("dockerfile lacks %q:\n%s", want, docker)
		}
	}
	r = startShim(t, "generate", "launchd", "--", "true")
	if code := r.wait(); code != 2 {
		t.Fatalf("generate launchd: exit %d", code)
	}
}
