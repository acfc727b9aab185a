//go:build linux

package e2e

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// logLines reads every line of every log file in dir (the live ones, the
// rotated ones, gunzipped), and fails on a temporary file left behind.
func logLines(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			r = zr
		}
		data, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%s does not end with a whole line", name)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")...)
	}
	return lines
}

// checkNumbered checks that each numbered line of linegen TAG COUNT
// appears exactly once, whole.
func checkNumbered(t *testing.T, lines []string, tag string, count int) {
	t.Helper()
	seenOut := make([]int, count)
	seenErr := make([]int, count)
	re := regexp.MustCompile(`^` + tag + `-(out|err) (\d{8})( \.*)?$`)
	for _, l := range lines {
		if !strings.HasPrefix(l, tag+"-") {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("broken line %q", l)
		}
		n, _ := strconv.Atoi(m[2])
		if m[1] == "out" {
			seenOut[n]++
		} else {
			seenErr[n]++
		}
	}
	for i := range count {
		if seenOut[i] != 1 || (i%3 == 0 && seenErr[i] != 1) {
			t.Fatalf("line %d seen %d times on stdout, %d on stderr", i, seenOut[i], seenErr[i])
		}
	}
}

// Every line of a multi-megabyte run, stdout and stderr interleaved,
// forced through many 1 MiB rotations (many per second, where lumberjack's
// millisecond backup names would collide), is in the files exactly once.
func TestLogEveryLineOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const count = 150000 // about 16 MB
	r := startShim(t, "--log-file", dir+"/app.log", "--log-max-size", "1M", "--log-max-backups", "0", "--", "linegen", "run", strconv.Itoa(count))
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	checkNumbered(t, logLines(t, dir), "run", count)
	files, _ := os.ReadDir(dir)
	if len(files) < 12 {
		t.Fatalf("only %d files for 16 MB rotated at 1 MiB", len(files))
	}
}

// A crash-looping service: the pipes outlive every run, nothing is lost
// between runs, and upshim's own lines are in the file too.
func TestLogAcrossRespawns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runs := dir + "/runs"
	r := startShim(t, "--log-file", dir+"/logs/app.log", "--log-max-size", "1M", "--log-max-backups", "0",
		"--respawn-limit", "unlimited", "--normal-exit", "0", "--", "sh", "-c",
		`echo x >> `+runs+`; n=$(wc -l < `+runs+`); linegen r$n 20000; [ $n -ge 8 ] && exit 0; exit 1`)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	lines := logLines(t, dir+"/logs")
	for n := 1; n <= 8; n++ {
		checkNumbered(t, lines, "r"+strconv.Itoa(n), 20000)
	}
	own := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "upshim[sh]: main process (") && strings.Contains(l, "respawning") {
			own++
		}
	}
	if own != 7 {
		t.Fatalf("%d of upshim's respawn lines in the log, want 7", own)
	}
}

func TestLogOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// --log-timestamps: RFC 3339, UTC, microseconds.
	r := startShim(t, "--log-file", dir+"/ts.log", "--log-timestamps", "--", "sh", "-c", "echo hello; echo oops >&2")
	r.wait()
	b, _ := os.ReadFile(dir + "/ts.log")
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z `
	if !regexp.MustCompile(`(?m)^`+stamp+`hello$`).Match(b) || !regexp.MustCompile(`(?m)^`+stamp+`oops$`).Match(b) {
		t.Fatalf("timestamped log:\n%s", b)
	}

	// --log-stderr: stderr to its own file; --log-console: a copy on stdout.
	r = startShim(t, "--log-file", dir+"/out.log", "--log-stderr", dir+"/err.log", "--log-console", "--", "sh", "-c", "echo to-out; echo to-err >&2")
	var console []string
	for l := range r.lines {
		console = append(console, l)
	}
	r.wait()
	out, _ := os.ReadFile(dir + "/out.log")
	errs, _ := os.ReadFile(dir + "/err.log")
	if string(out) != "to-out\n" || string(errs) != "to-err\n" {
		t.Fatalf("out.log %q, err.log %q", out, errs)
	}
	if strings.Join(console, ",") != "to-out,to-err" && strings.Join(console, ",") != "to-err,to-out" {
		t.Fatalf("console got %q", console)
	}

	// Files are created 0640; a partial last line is flushed at exit; a
	// long line is cut into marked pieces.
	long := strings.Repeat("L", 150000)
	r = startShim(t, "--log-file", dir+"/p.log", "--", "sh", "-c", `head -c 150000 /dev/zero | tr '\0' L; echo; printf 'no newline at the end'`)
	r.wait()
	st, _ := os.Stat(dir + "/p.log")
	if st.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %o, want 640", st.Mode().Perm())
	}
	lines := logLines(t, dir)
	var pieces []string
	for _, l := range lines {
		if strings.HasPrefix(l, "L") {
			pieces = append(pieces, l)
		}
	}
	if len(pieces) != 3 || !strings.HasSuffix(pieces[0], ` \`) || !strings.HasSuffix(pieces[1], ` \`) {
		t.Fatalf("the 150000-byte line came out as %d pieces", len(pieces))
	}
	joined := strings.TrimSuffix(pieces[0], ` \`) + strings.TrimSuffix(pieces[1], ` \`) + pieces[2]
	if joined != long {
		t.Fatalf("the pieces of the long line do not join back (%d bytes)", len(joined))
	}
	if b, _ := os.ReadFile(dir + "/p.log"); !strings.HasSuffix(string(b), "no newline at the end\n") {
		t.Fatalf("the partial last line was not flushed")
	}
}

// --log-compress: rotated files become complete .gz files, and every line
// is in them or in the live file.
func TestLogCompress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const count = 60000
	r := startShim(t, "--log-file", dir+"/app.log", "--log-max-size", "1M", "--log-max-backups", "0", "--log-compress", "--", "linegen", "gz", strconv.Itoa(count))
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	gz, _ := filepath.Glob(dir + "/app-*.log.gz")
	plain, _ := filepath.Glob(dir + "/app-*.log")
	if len(gz) < 3 || len(plain) != 0 {
		t.Fatalf("%d compressed and %d uncompressed backups", len(gz), len(plain))
	}
	checkNumbered(t, logLines(t, dir), "gz", count)
}

// post-stop sees the whole run's output in the file.
func TestLogDrainedBeforePostStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startShim(t, "--log-file", dir+"/app.log", "--post-stop", `grep -c '^d-out' `+dir+`/app.log > `+dir+`/count`,
		"--", "linegen", "d", "30000")
	r.wait()
	b, _ := os.ReadFile(dir + "/count")
	if strings.TrimSpace(string(b)) != "30000" {
		t.Fatalf("post-stop counted %q lines, want 30000", b)
	}
}

// A log file deleted, or its whole directory removed, while the service
// runs: writing goes on in a new file.
func TestLogFileRemoved(t *testing.T) {
	t.Parallel()
	for _, what := range []string{"file", "directory"} {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir() + "/logs"
			r := startShim(t, "--log-file", dir+"/app.log", "--", "sh", "-c",
				`i=0; while [ $i -lt 100000 ]; do echo "tick $i"; i=$((i+1)); sleep 0.005; done`)
			waitFileHas(t, dir+"/app.log", "tick 5\n")
			target := dir + "/app.log"
			if what == "directory" {
				target = dir
			}
			if err := os.RemoveAll(target); err != nil {
				t.Fatal(err)
			}
			waitFileHas(t, dir+"/app.log", "tick ")
			r.signal(syscall.SIGTERM)
			r.wait()
		})
	}
}

// waitFileHas waits until path exists and holds s.
func waitFileHas(t *testing.T, path, s string) {
	t.Helper()
	eventually(t, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), s), fmt.Sprintf("%s never held %q", path, s)
	})
}

// A log path that cannot be opened is a usage error, before the service
// runs.
func TestLogUnopenable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(dir+"/afile", nil, 0o644)
	for _, path := range []string{dir + "/afile/app.log", "/proc/no-such-dir/app.log"} {
		r := startShim(t, "--log-file", path, "--", "sh", "-c", "touch "+dir+"/ran")
		if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "upshim: --log-file "+path+": ") {
			t.Fatalf("--log-file %s: exit status %d; stderr:\n%s", path, code, r.stderr)
		}
	}
	r := startShim(t, "--log-timestamps", "--", "true")
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "upshim: --log-timestamps needs --log-file") {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	r = startShim(t, "--log-file", dir+"/x.log", "--log-max-size", "1.5M", "--", "true")
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), `upshim: --log-max-size "1.5M": want a size in whole MiB`) {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Fatal("the service ran")
	}
}

// A full disk never blocks or kills the service: upshim drops whole lines,
// counts them, and says so once writing works again.
func TestLogDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		skipOrFail(t, "mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	mnt := dir + "/mnt"
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	heartbeat := dir + "/heartbeat"
	r := startShim(t, "--log-file", mnt+"/app.log", "--log-max-size", "100M", "--", "sh", "-c",
		`i=0; while :; do linegen hb$i 200; echo $i > `+heartbeat+`; i=$((i+1)); done`)
	// Fill what is left of the disk.
	exec.Command("sh", "-c", "cat /dev/zero > "+mnt+"/filler").Run()
	beat := func() int {
		b, _ := os.ReadFile(heartbeat)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	// While the disk is full, the service keeps going.
	first := beat()
	eventually(t, func() (bool, string) { return beat() > first+20, "the heartbeat stopped while the disk was full" })
	if err := r.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("upshim died on a full disk")
	}
	os.Remove(mnt + "/filler")
	waitFileHas(t, mnt+"/app.log", "upshim[sh]: lost ")
	b, _ := os.ReadFile(mnt + "/app.log")
	m := regexp.MustCompile(`upshim\[sh\]: lost (\d+) lines \((\d+) bytes\) of output: no space left on device`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no loss line naming the cause in the log")
	}
	r.signal(syscall.SIGTERM)
	r.wait()
}

// Root writing logs for an unprivileged service that can write its own
// log directory: a symbolic link it plants at the log path must never make
// upshim write outside what it created.
func TestLogPlantedSymlink(t *testing.T) {
	t.Parallel()
	testUser(t) // root, and the user upshimtest
	// Not t.TempDir: the service's user must be able to reach its logs.
	dir, err := os.MkdirTemp("", "upshim-symlink-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	secret := dir + "/secret"
	os.WriteFile(secret, []byte("root only\n"), 0o600)
	logs := dir + "/logs"
	os.Mkdir(logs, 0o755)
	exec.Command("chown", "upshimtest", logs).Run()
	// Planted before upshim starts...
	os.Symlink(secret, logs+"/app.log")
	// ...and again while it runs, by the service itself.
	r := startShim(t, "--user", "upshimtest", "--log-file", logs+"/app.log", "--log-max-size", "1M", "--", "sh", "-c",
		`echo first; rm -f `+logs+`/app.log; ln -s `+secret+` `+logs+`/app.log; sleep 0.2; linegen s 30000; echo last`)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Fatalf("the file behind the planted link was changed: %q", b)
	}
	st, _ := os.Stat(secret)
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("the file behind the planted link changed mode or owner: %v", st.Mode())
	}
	var found bool
	for _, l := range logLines(t, logs) {
		found = found || l == "last"
	}
	if !found {
		t.Fatal("the service's output did not reach a log file of its own")
	}
}

// --log-max-backups keeps that many rotated files; hooks write to the log
// like the service.
func TestLogBackupsAndHooks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	done := dir + "/done"
	r := startShim(t, "--log-file", dir+"/logs/app.log", "--log-max-size", "1M", "--log-max-backups", "2",
		"--", "sh", "-c", `linegen b 60000; touch `+done+`; sleep 300`)
	waitFileHas(t, done, "")
	eventually(t, func() (bool, string) {
		backups, _ := filepath.Glob(dir + "/logs/app-*.log")
		return len(backups) == 2, fmt.Sprintf("%d backups kept, want 2", len(backups))
	})
	r.signal(syscall.SIGTERM)
	r.wait()

	r = startShim(t, "--log-file", dir+"/hooks.log", "--pre-start", "echo from-pre-start",
		"--post-stop", "echo from-post-stop >&2", "--", "echo", "from-main")
	r.wait()
	b, _ := os.ReadFile(dir + "/hooks.log")
	if string(b) != "from-pre-start\nfrom-main\nfrom-post-stop\n" {
		t.Fatalf("hooks.log holds %q", b)
	}
}
