package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runUpshim runs upshim to its end and returns its exit status and stderr.
func runUpshim(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r := startShim(t, args...)
	code := r.wait()
	return code, r.stderr.String()
}

// An endless stream as --env-file or --job is refused at the bound, with
// exit 2 naming the flag and the file, and little memory: upshim runs
// under a 1 GB address-space limit, which reading /dev/zero whole runs
// out of (the Go runtime's own "out of memory" is exit 2 too, hence the
// message check).
func TestEnvFileAndJobReadsBounded(t *testing.T) {
	for flag, want := range map[string]string{
		"--env-file": "upshim: --env-file /dev/zero: larger than 1 MiB\n",
		"--job":      "upshim: --job /dev/zero: larger than 4 MiB\n",
	} {
		args := []string{"-c", `ulimit -v 1000000 && exec "$@"`, "sh", upshimBinary(t), flag, "/dev/zero"}
		if flag == "--env-file" {
			args = append(args, "--", "true")
		}
		r := startShimCmd(t, exec.Command("/bin/sh", args...))
		if code := r.wait(); code != 2 || r.stderr.String() != want {
			t.Errorf("%s /dev/zero: exit %d, stderr:\n%s", flag, code, r.stderr)
		}
	}
}

// A NUL in an env file, an --env value or a job file stops upshim with
// exit 2 naming the file and line, before anything runs; exec would fail
// with EINVAL.
func TestEnvFileRefusesNUL(t *testing.T) {
	dir := t.TempDir()
	env, job := filepath.Join(dir, "nul.env"), filepath.Join(dir, "nul.conf")
	os.WriteFile(env, []byte("A=1\nFOO=a\x00b\n"), 0o644)
	os.WriteFile(job, []byte("exec touch "+dir+"/ran\nenv FOO=a\x00b\n"), 0o644)
	code, stderr := runUpshim(t, "--env-file", env, "--", "touch", dir+"/ran")
	if code != 2 || !strings.Contains(stderr, "upshim: --env-file "+env+":2: a NUL byte") {
		t.Errorf("env file with a NUL: exit %d, stderr:\n%s", code, stderr)
	}
	code, stderr = runUpshim(t, "--job", job)
	if code != 2 || !strings.Contains(stderr, "upshim: --job "+job+":2: a NUL byte") {
		t.Errorf("job with a NUL: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Error("the service ran")
	}
}

// \# in an exec line is no comment: sh gets it and prints a#b, as under
// upstart.
func TestJobEscapedHash(t *testing.T) {
	job := filepath.Join(t.TempDir(), "hash.conf")
	os.WriteFile(job, []byte("exec echo a\\#b # a comment\n"), 0o644)
	r := startShim(t, "--job", job)
	if l := r.line(); l != "a#b" {
		t.Fatalf("printed %q", l)
	}
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
}
