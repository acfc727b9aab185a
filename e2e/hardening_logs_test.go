//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A device node, a FIFO, or a link to one (as /dev/stdout is) at a log
// path is refused at start-up, exit 2, naming the flag, the path and what
// is there; it is left exactly as it was, and the service does not run.
func TestLogFileRefusesNonRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ran := dir + "/ran"
	type node struct {
		flag, name, what string
		make             func(path string) error
		needsRoot        bool
	}
	nodes := []node{
		{"--log-file", "fifo", "is a FIFO", func(p string) error { return unix.Mkfifo(p, 0o644) }, false},
		{"--log-stderr", "errfifo", "is a FIFO", func(p string) error { return unix.Mkfifo(p, 0o644) }, false},
		// Like /dev/stdout: upshim's stdout is a pipe here.
		{"--log-file", "stdout", "is a symbolic link to a FIFO", func(p string) error { return os.Symlink("/proc/self/fd/1", p) }, false},
		// Like /dev/null, made in the test's own directory.
		{"--log-file", "null", "is a character device", func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) }, true},
		{"--log-stderr", "nulllink", "is a symbolic link to a character device", func(p string) error {
			if err := unix.Mknod(p+".dev", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				return err
			}
			return os.Symlink(p+".dev", p)
		}, true},
	}
	for _, n := range nodes {
		t.Run(n.name, func(t *testing.T) {
			if n.needsRoot && os.Geteuid() != 0 {
				skipOrFail(t, "mknod needs root")
			}
			path := filepath.Join(dir, n.name)
			if err := n.make(path); err != nil {
				t.Fatal(err)
			}
			var before unix.Stat_t
			unix.Lstat(path, &before)
			args := []string{"--log-file", dir + "/app.log"}
			if n.flag == "--log-file" {
				args = args[:0]
			}
			args = append(args, n.flag, path, "--", "touch", ran)
			r := startShim(t, args...)
			want := "upshim: " + n.flag + " " + path + ": " + n.what + ", not a regular file"
			if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), want) {
				t.Fatalf("exit status %d, want 2 and %q; stderr:\n%s", code, want, r.stderr)
			}
			var after unix.Stat_t
			if err := unix.Lstat(path, &after); err != nil || after.Ino != before.Ino || after.Mode != before.Mode || after.Rdev != before.Rdev {
				t.Fatalf("%s was changed: %v", path, err)
			}
			if _, err := os.Stat(ran); err == nil {
				t.Fatal("the service ran")
			}
		})
	}
}

// A FIFO that appears at the log path while upshim runs is not removed
// either: lines are dropped and counted until it is gone, then the file
// comes back with the report.
func TestLogFIFOAppearingLaterIsKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := dir + "/app.log"
	r := startShim(t, "--log-file", log, "--", "sh", "-c",
		`i=0; while [ $i -lt 100000 ]; do echo "tick $i"; i=$((i+1)); sleep 0.005; done`)
	waitFileHas(t, log, "tick 1\n")
	os.Remove(log)
	if err := unix.Mkfifo(log, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStderr(t, r, "upshim[sh]: warning: "+log+" is a FIFO, not a regular file; its lines are dropped until it is gone")
	var st unix.Stat_t
	if err := unix.Lstat(log, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Fatalf("the FIFO at the log path was replaced (%v)", err)
	}
	os.Remove(log)
	waitFileHas(t, log, "of output: "+log+" is a FIFO, not a regular file\n")
	r.signal(syscall.SIGTERM)
	r.wait()
}

// --log-file and --log-stderr naming one file, however spelled, are
// refused before anything runs: two rotations of one file lose lines.
func TestLogSameFileRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.Symlink(dir, dir+"/alias")
	ran := dir + "/ran"
	for _, errPath := range []string{dir + "/s.log", dir + "/./x/../s.log", dir + "/alias/s.log"} {
		os.Remove(dir + "/s.log")
		r := startShim(t, "--log-file", dir+"/s.log", "--log-stderr", errPath, "--", "touch", ran)
		want := "upshim: --log-file " + dir + "/s.log and --log-stderr " + errPath + " are the same file"
		if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), want) {
			t.Fatalf("--log-stderr %s: exit status %d; stderr:\n%s", errPath, code, r.stderr)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Fatal("the service ran")
		}
	}
}

// procCPU is the user+system CPU time of a live process, from
// /proc/PID/stat, in clock ticks (100 per second).
func procCPU(pid int) int {
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(stat[i+1:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// A process that is not upshim's descendant (so never stopped by it) holds
// the service's stdout open: once the service is over, upshim waits a few
// seconds at most, idle, writes the partial line, and exits.
func TestLogCloseWithForeignWriter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := dir + "/app.log"
	r := startShim(t, "--log-file", log, "--", "sh", "-c",
		`echo $$ > `+dir+`/pid; echo hi; while [ ! -e `+dir+`/go ]; do sleep 0.02; done; printf partial`)
	waitFileHas(t, log, "hi\n")
	b, _ := os.ReadFile(dir + "/pid")
	pid := strings.TrimSpace(string(b))
	holder := exec.Command("sh", "-c", "exec 7>/proc/"+pid+"/fd/1; echo held > "+dir+"/held; exec sleep 60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitFileHas(t, dir+"/held", "held\n")
	start := time.Now()
	os.WriteFile(dir+"/go", nil, 0o644)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second): // well below the holder's 60 s
		cpu := procCPU(r.cmd.Process.Pid)
		r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("upshim still running 30 s after its service ended, with %d ticks of CPU", cpu)
	}
	cpu := r.cmd.ProcessState.UserTime() + r.cmd.ProcessState.SystemTime()
	if cpu > time.Second {
		t.Fatalf("upshim used %s of CPU in %s", cpu, time.Since(start))
	}
	if b, _ := os.ReadFile(log); string(b) != "hi\npartial\n" {
		t.Fatalf("log holds %q", b)
	}
}

// --log-console with a stdout that nobody reads: the file log goes on,
// and a stop ends upshim within seconds, saying what the console lost.
func TestLogConsoleStalledStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := dir + "/console"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR: a reader that holds the FIFO open and never reads.
	stdout, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	log := dir + "/c.log"
	cmd := exec.Command(upshimBinary(t), "--kill-timeout", "2", "--log-file", log, "--log-console", "--", "sh", "-c",
		`while :; do linegen c 2000; done`)
	mark := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	cmd.Env = append(os.Environ(), "UPSHIM_TEST_MARK="+mark)
	cmd.Stdout = stdout
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		killMarked(mark)
	})
	eventually(t, func() (bool, string) {
		var size int64
		if st, err := os.Stat(log); err == nil {
			size = st.Size()
		}
		return size > 4<<20, fmt.Sprintf("the log stopped growing at %d bytes while stdout was not read", size)
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("upshim still running 30 s after SIGTERM; stderr:\n%s", stderr.String())
	}
	if !regexp.MustCompile(`upshim\[sh\]: --log-console: dropped \d+ lines \(\d+ bytes\) that stdout did not take in time`).MatchString(stderr.String()) {
		t.Fatalf("no report of the console's loss; stderr:\n%s", stderr.String())
	}
}

// waitExists waits until path exists.
func waitExists(t *testing.T, path string) {
	t.Helper()
	eventually(t, func() (bool, string) {
		_, err := os.Lstat(path)
		return err == nil, path + " never appeared"
	})
}

// mountTmpfs mounts a tmpfs of size (e.g. 1m) in a new directory, for the
// test only.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "mounting a small tmpfs needs root")
	}
	mnt := t.TempDir() + "/mnt"
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// Lines lost on a full disk are reported once, with their exact count: at
// exit if nothing is written after the disk recovers (a), and never
// counting the failed reports themselves (b). The report goes to the file
// and to upshim's stderr.
func TestLogLossReportedExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, pace, after string
	}{
		{"at exit", "true", ""},
		{"failed reports not counted", "sleep 0.01", "echo after-recovery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mnt := mountTmpfs(t, "1m")
			dir := t.TempDir()
			log := mnt + "/app.log"
			const count = 60
			r := startShim(t, "--log-file", log, "--post-stop", "touch "+dir+"/drained; while [ ! -e "+dir+"/recovered ]; do sleep 0.02; done; "+tc.after,
				"--", "sh", "-c", `echo first; while [ ! -e `+dir+`/full ]; do sleep 0.02; done
i=0; while [ $i -lt `+strconv.Itoa(count)+` ]; do printf "lost-candidate %d %0200d\n" $i 0; i=$((i+1)); `+tc.pace+`; done`)
			waitFileHas(t, log, "first\n")
			exec.Command("sh", "-c", "cat /dev/zero > "+mnt+"/filler").Run()
			os.WriteFile(dir+"/full", nil, 0o644)
			// post-stop runs once every line has been through the writer.
			waitExists(t, dir+"/drained")
			os.Remove(mnt + "/filler")
			os.WriteFile(dir+"/recovered", nil, 0o644)
			if code := r.wait(); code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
			}
			b, _ := os.ReadFile(log)
			found := len(regexp.MustCompile(`(?m)^lost-candidate \d+ 0{200}$`).FindAll(b, -1))
			if found == count {
				t.Fatal("no line was lost: the disk was not full")
			}
			report := regexp.MustCompile(`upshim\[sh\]: lost (\d+) lines \(\d+ bytes\) of output: no space left on device\n`)
			inFile := report.FindAllSubmatch(b, -1)
			onStderr := report.FindAllStringSubmatch(r.stderr.String(), -1)
			if len(inFile) != 1 {
				t.Fatalf("%d reports in the file, want 1; file:\n%s\nstderr:\n%s", len(inFile), b, r.stderr)
			}
			if n, _ := strconv.Atoi(string(inFile[0][1])); n != count-found {
				t.Fatalf("reported %s lost, %d really lost", inFile[0][1], count-found)
			}
			if len(onStderr) != 1 || onStderr[0][1] != string(inFile[0][1]) {
				t.Fatalf("%d reports on stderr, want the one in the file; stderr:\n%s", len(onStderr), r.stderr)
			}
			if tc.after != "" && !strings.HasSuffix(string(b), "after-recovery\n") {
				t.Fatalf("the log does not end with the line written after the recovery:\n%s", b)
			}
		})
	}
}

// privateDir is a directory that the test user can reach, removed at the
// end (t.TempDir's parents are root's only).
func privateDir(t *testing.T) string {
	t.Helper()
	testUser(t) // root, and the user upshimtest
	dir, err := os.MkdirTemp("", "upshim-identity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return dir
}

// The log writer has the service's supplementary groups, not upshim's:
// root's group 0 does not let a --user service's log into root's 0770
// directory.
func TestLogWriterDropsSupplementaryGroups(t *testing.T) {
	t.Parallel()
	dir := privateDir(t)
	grp := dir + "/grp"
	os.Mkdir(grp, 0o770)
	os.Chmod(grp, 0o770)
	cmd := exec.Command(upshimBinary(t), "--user", "upshimtest", "--log-file", grp+"/app.log", "--", "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{0}}}
	r := startShimCmd(t, cmd)
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "upshim: --log-file "+grp+"/app.log: ") ||
		!strings.Contains(r.stderr.String(), "permission denied") {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	if _, err := os.Lstat(grp + "/app.log"); err == nil {
		t.Fatal("the log was created in root's directory")
	}
}

// Backup pruning (--log-max-backups) has the service's identity: in a
// sticky world-writable directory it deletes the service's own old
// backups, and not root's files named like backups.
func TestLogPruneWithServiceIdentity(t *testing.T) {
	t.Parallel()
	dir := privateDir(t)
	logs := dir + "/logs"
	os.Mkdir(logs, 0o777)
	os.Chmod(logs, 0o777|os.ModeSticky)
	rootOwned := []string{logs + "/app-2000-01-01T00-00-00.000.log", logs + "/app-2000-01-02T00-00-00.000.log"}
	for _, p := range rootOwned {
		os.WriteFile(p, []byte("root's\n"), 0o644)
	}
	r := startShim(t, "--user", "upshimtest", "--log-file", logs+"/app.log", "--log-max-size", "1M", "--log-max-backups", "1",
		"--", "sh", "-c", `head -c 4000000 /dev/zero | tr '\0' x | fold -w 100`)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	for _, p := range rootOwned {
		if b, err := os.ReadFile(p); err != nil || string(b) != "root's\n" {
			t.Fatalf("root's %s was deleted or changed (%v)", p, err)
		}
	}
	backups, _ := filepath.Glob(logs + "/app-20[1-9]*.log")
	if len(backups) != 1 {
		t.Fatalf("%d of the service's backups kept, want 1: %v", len(backups), backups)
	}
	if !strings.Contains(r.stderr.String(), "cannot remove old log "+rootOwned[0]) {
		t.Fatalf("no warning about the backup it could not remove; stderr:\n%s", r.stderr)
	}
}

// A job's console log is upstart's: /var/log/upstart/NAME.log, written by
// root, also for a job that runs as another user (setuid). Not parallel:
// it may create and remove /var/log/upstart, a path of the whole machine.
func TestJobConsoleLogWithSetuid(t *testing.T) {
	testUser(t) // root, and the user upshimtest
	const logDir = "/var/log/upstart"
	if _, err := os.Stat(logDir); err != nil {
		t.Cleanup(func() { os.Remove(logDir) }) // only if empty: ours
	}
	name := fmt.Sprintf("upshim-test-%d", os.Getpid())
	log := logDir + "/" + name + ".log"
	t.Cleanup(func() { os.Remove(log) })
	job := t.TempDir() + "/" + name + ".conf"
	os.WriteFile(job, []byte("console log\nsetuid upshimtest\nexec sh -c 'echo from $(id -un)'\n"), 0o644)
	r := startShim(t, "--job", job)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, r.stderr)
	}
	b, _ := os.ReadFile(log)
	if string(b) != "from upshimtest\n" {
		t.Fatalf("%s holds %q", log, b)
	}
	st, _ := os.Stat(log)
	if st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("%s is not root's", log)
	}
}
