//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A stop while pre-start hangs does not wait for it (upstart's worst
// hang): the hook's group gets the kill signal, SIGKILL at the kill
// timeout, post-stop runs, and upshim exits.
func TestStopDuringHangingPreStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startShim(t, "--kill-timeout", "300ms", "--hook-timeout", "60s",
		"--pre-start", `trap "" TERM; echo pre-start; while :; do sleep 0.05; done`,
		"--post-stop", `echo "post-stop $SERVICE_RESULT $EXIT_STATUS" > `+dir+`/post-stop`,
		"--", "sh", "-c", "echo main")
	r.expect("pre-start")
	start := time.Now()
	r.signal(syscall.SIGTERM)
	code := r.wait()
	if code != 137 {
		t.Fatalf("exit status %d, want 137 (the hook was killed); stderr:\n%s", code, r.stderr)
	}
	// Well below the hook's timeout (60s), which a stop that waited for
	// the hook would take.
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Fatalf("the stop took %s", elapsed)
	}
	b, err := os.ReadFile(dir + "/post-stop")
	if err != nil || strings.TrimSpace(string(b)) != "post-stop success KILL" {
		t.Fatalf("post-stop wrote %q, %v", b, err)
	}
	for l := range r.lines {
		if l == "main" {
			t.Fatal("the service ran after a stop during pre-start")
		}
	}
	r.assertNothingLeft()
}

// A stop while post-start runs stops the hook, then runs pre-stop and
// stops the service.
func TestStopDuringPostStart(t *testing.T) {
	t.Parallel()
	// A long kill timeout: sigrecord must end of the TERM, not of a
	// SIGKILL that a loaded machine let come first.
	r := startShim(t, "--kill-timeout", "60s",
		"--post-start", `echo post-start; sleep 60`,
		"--pre-stop", `echo pre-stop`,
		"--", "sigrecord")
	// Both run at once; the service must be ready to take the TERM.
	for seen := map[string]bool{}; !seen["post-start"] || !seen["ready"]; {
		seen[strings.Fields(r.line())[0]] = true
	}
	r.signal(syscall.SIGTERM)
	r.expect("pre-stop")
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	r.assertNothingLeft()
}

// When the service dies while post-start runs, the respawn waits for the
// hook.
func TestRespawnWaitsForPostStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startShim(t, "-v", "--respawn-limit", "1/60",
		"--post-start", `echo post-start-begin; while [ ! -e `+dir+`/go ]; do sleep 0.01; done; echo post-start-end`,
		"--", "sh", "-c", `echo main; exit 1`)
	// post-start runs alongside the service: either may print first.
	if a, b := r.line(), r.line(); a+b != "mainpost-start-begin" && a+b != "post-start-beginmain" {
		t.Fatalf("first lines %q, %q", a, b)
	}
	// The main process is gone, but no second run may start yet.
	waitStderr(t, r, "exited with status 1; waiting for post-start")
	if err := os.WriteFile(dir+"/go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := r.line(); got != "post-start-end" {
		t.Fatalf("after the main process died, %q came before post-start ended", got)
	}
	r.expect("post-start-begin")
	r.wait()
}

// pre-stop runs on a requested stop, before the kill signal reaches the
// service.
func TestPreStopBeforeKill(t *testing.T) {
	t.Parallel()
	r := startShim(t, "--pre-stop", `echo pre-stop`, "--", "sigrecord")
	r.line()
	r.signal(syscall.SIGTERM)
	if got := r.line(); got != "pre-stop" {
		t.Fatalf("first after the stop: %q, want pre-stop", got)
	}
	r.expect("TERM")
	r.wait()
}

// EXIT_CODE is "dumped" exactly when the kernel says the process dumped
// core, which depends on the machine's core_pattern.
func TestPostStopCoreDump(t *testing.T) {
	t.Parallel()
	// What this machine does with a core, seen from a plain parent.
	ref := exec.Command("sh", "-c", `ulimit -c unlimited; kill -SEGV $$`)
	ref.Dir = t.TempDir()
	ref.Run()
	dumps := ref.ProcessState.Sys().(syscall.WaitStatus).CoreDump()

	dir := t.TempDir()
	r := startShim(t, "--chdir", dir, "--limit", "core=unlimited",
		"--post-stop", `echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" > vars`,
		"--", "sh", "-c", `kill -SEGV $$`)
	if code := r.wait(); code != 139 {
		t.Fatalf("exit status %d, want 139", code)
	}
	b, _ := os.ReadFile(dir + "/vars")
	want := "signal killed SEGV"
	if dumps {
		want = "core-dump dumped SEGV"
	}
	if got := strings.TrimSpace(string(b)); got != want {
		t.Fatalf("post-stop saw %q, want %q (a plain parent saw core dumped: %v)", got, want, dumps)
	}
}

// Across a requested stop, the hooks run in upstart's order, recorded in an
// append-only file.
func TestHookOrderOnStop(t *testing.T) {
	t.Parallel()
	log := t.TempDir() + "/hooks.log"
	hook := func(name string) string { return `echo ` + name + ` >> ` + log }
	r := startShim(t, "--pre-start", hook("pre-start"), "--post-start", hook("post-start")+`; echo post-start-done`,
		"--pre-stop", hook("pre-stop"), "--post-stop", hook("post-stop $SERVICE_RESULT"),
		"--", "sh", "-c", hook("main")+`; echo main-ready; exec sigrecord`)
	for seen := map[string]bool{}; !seen["post-start-done"] || !seen["ready"]; {
		seen[strings.Fields(r.line())[0]] = true
	}
	r.signal(syscall.SIGTERM)
	r.expect("TERM")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	b, _ := os.ReadFile(log)
	got := strings.Fields(strings.ReplaceAll(string(b), "\n", " | "))
	want := "pre-start | main | post-start | pre-stop | post-stop success |"
	alt := "pre-start | post-start | main | pre-stop | post-stop success |" // post-start runs alongside main
	if g := strings.Join(got, " "); g != want && g != alt {
		t.Fatalf("hooks ran in the order %q, want %q", g, want)
	}
}
