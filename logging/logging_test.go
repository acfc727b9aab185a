//go:build linux

package logging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Rotate, the entry point for `upshim ctl rotate`, moves the live file
// aside at once; Close flushes a partial line.
func TestSinkRotateAndClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Name: "t", File: filepath.Join(dir, "app.log"), UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.Stdout().WriteString("before\n")
	s.Drain()
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	s.Stdout().WriteString("after\npartial")
	s.Close()
	backups, _ := filepath.Glob(filepath.Join(dir, "app-*.log"))
	if len(backups) != 1 {
		t.Fatalf("%d backups after Rotate", len(backups))
	}
	old, _ := os.ReadFile(backups[0])
	live, _ := os.ReadFile(filepath.Join(dir, "app.log"))
	if string(old) != "before\n" || string(live) != "after\npartial\n" {
		t.Fatalf("rotated %q, live %q", old, live)
	}
	if st, _ := os.Stat(filepath.Join(dir, "app.log")); st.Mode().Perm() != fileMode {
		t.Fatalf("new file mode %o", st.Mode().Perm())
	}
	if strings.Contains(string(live), "upshim[t]") {
		t.Fatalf("unexpected message in the log: %q", live)
	}
}
