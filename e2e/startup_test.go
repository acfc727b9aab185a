//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Start-up errors carry their kind: a log file that cannot be created for
// want of space is a resource upshim cannot have (exit 1), where a wrong
// path is a usage error (exit 2, TestLogUnopenable); nothing runs.
func TestLogFileNoSpaceExits1(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		skipOrFail(t, "mounting a small tmpfs needs root")
	}
	upshimBinary(t)
	dir := t.TempDir()
	mnt := dir + "/mnt"
	os.Mkdir(mnt, 0o755)
	// Two inodes: the root directory and one file. The log file is a third.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=2", "tmpfs", mnt).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	os.WriteFile(mnt+"/filler", nil, 0o644)
	r := startShim(t, "--log-file", mnt+"/app.log", "--", "sh", "-c", "touch "+dir+"/ran")
	if code := r.wait(); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, r.stderr)
	}
	if s := r.stderr.String(); !strings.Contains(s, "--log-file "+mnt+"/app.log") || !strings.Contains(s, "no space left on device") {
		t.Fatalf("stderr does not name the flag, the file and the reason:\n%s", s)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Fatal("the service ran")
	}
}

// --quiet silences the log writer's warnings too: they come through
// upshim's one writer, not straight to stderr.
func TestQuietSilencesLogWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.Symlink(dir+"/elsewhere", dir+"/app.log") // replaced, with a warning
	for _, quiet := range []bool{false, true} {
		args := []string{"--log-file", dir + "/app.log", "--", "sh", "-c", "echo hi"}
		if quiet {
			args = append([]string{"-q"}, args...)
		}
		r := startShim(t, args...)
		if code := r.wait(); code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
		}
		warned := strings.Contains(r.stderr.String(), "was a link; replaced it")
		if warned == quiet {
			t.Fatalf("quiet=%v: stderr:\n%s", quiet, r.stderr)
		}
		os.Remove(dir + "/app.log")
		os.Symlink(dir+"/elsewhere", dir+"/app.log")
	}
}
