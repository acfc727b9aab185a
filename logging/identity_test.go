//go:build linux

package logging

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// statusField is a field of a /proc status file, e.g. "Groups".
func statusField(status []byte, name string) []string {
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

// The writer's thread, and only it, has the service's file-system identity,
// supplementary groups included.
func TestWriterThreadIdentity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change identity")
	}
	dir, err := os.MkdirTemp("", "upshim-identity-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	// The test's own thread stands for every thread but the writer's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, _ := os.ReadFile("/proc/thread-self/status")
	s, err := Open(Config{Name: "t", File: filepath.Join(dir, "app.log"), UID: 65534, GID: 65533, Groups: []int{65533, 12345}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	status := make(chan []byte, 1)
	s.requests <- func(*writer) {
		b, _ := os.ReadFile("/proc/thread-self/status")
		status <- b
	}
	thread := <-status
	if uid := statusField(thread, "Uid"); len(uid) != 4 || uid[3] != "65534" {
		t.Errorf("writer's Uid: %v, want fs uid 65534", uid)
	}
	if gid := statusField(thread, "Gid"); len(gid) != 4 || gid[3] != "65533" {
		t.Errorf("writer's Gid: %v, want fs gid 65533", gid)
	}
	if groups := strings.Join(statusField(thread, "Groups"), " "); groups != "12345 65533" {
		t.Errorf("writer's Groups: %q, want 12345 65533", groups)
	}
	after, _ := os.ReadFile("/proc/thread-self/status")
	if a, b := statusField(after, "Groups"), statusField(before, "Groups"); strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("another thread's groups changed from %v to %v", b, a)
	}
	if st, err := os.Stat(filepath.Join(dir, "app.log")); err != nil || st.Sys() == nil {
		t.Fatal(err)
	}
}

// Pruning keeps the newest --log-max-backups backups (a backup and its .gz
// count once) and deletes those older than --log-max-age; other files stay.
func TestPruneBackups(t *testing.T) {
	dir := t.TempDir()
	name := func(ago time.Duration, ext string) string {
		return filepath.Join(dir, "app-"+time.Now().UTC().Add(-ago).Format(backupTime)+ext)
	}
	newest, newestGz := name(time.Hour, ".log"), name(time.Hour, ".log.gz")
	second := name(2*time.Hour, ".log.gz")
	third := name(3*time.Hour, ".log")
	ancient := name(40*24*time.Hour, ".log")
	other := filepath.Join(dir, "app-notatime.log")
	for _, p := range []string{newest, newestGz, second, third, ancient, other} {
		os.WriteFile(p, nil, 0o644)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	f := &file{cfg: Config{Name: "t", MaxAgeDays: 30}, path: filepath.Join(dir, "app.log")}
	f.prune()
	if exists(ancient) || !exists(third) || !exists(other) {
		t.Fatalf("--log-max-age 30: ancient %v, third %v, other %v", exists(ancient), exists(third), exists(other))
	}
	f.cfg = Config{Name: "t", MaxBackups: 2}
	f.prune()
	if !exists(newest) || !exists(newestGz) || !exists(second) || exists(third) || !exists(other) {
		t.Fatalf("--log-max-backups 2: newest %v %v, second %v, third %v, other %v",
			exists(newest), exists(newestGz), exists(second), exists(third), exists(other))
	}
}

// The console copy never holds up the files: with a stdout that takes
// nothing, lines are dropped and counted, and close returns in time.
func TestConsoleDropsWhenStalled(t *testing.T) {
	r, w, err := os.Pipe() // nobody reads r
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	c := newConsole(w)
	line := []byte(strings.Repeat("x", 999) + "\n")
	for range 4000 { // 4 MB: more than the pipe and the ring hold
		c.put(line)
	}
	start := time.Now()
	lines, n := c.close()
	if waited := time.Since(start); waited > consoleWait+time.Second {
		t.Fatalf("close waited %s", waited)
	}
	if lines < 4000-(consoleSize+1<<20)/1000 || n != lines*1000 {
		t.Fatalf("dropped %d lines (%d bytes)", lines, n)
	}
}
