package jobfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// continued is a job whose exec line goes on over n continuation lines.
func continued(n int) []byte {
	return []byte("exec echo" + strings.Repeat(" x \\\n", n) + " end\n")
}

// Joining continuation lines must be linear: a million of them parse in
// milliseconds; rebuilding the line at each one took minutes.
func TestParseManyContinuations(t *testing.T) {
	j, err := ParseBytes("c.conf", "c", continued(1000000))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(j.Main.Exec); len(f) != 1000002 || f[0] != "echo" || f[1000001] != "end" {
		t.Fatalf("exec has %d words", len(f))
	}
}

func BenchmarkParseContinuations(b *testing.B) {
	data := continued(20000)
	for b.Loop() {
		if _, err := ParseBytes("c.conf", "c", data); err != nil {
			b.Fatal(err)
		}
	}
}

// An endless stream or a huge file is refused once past the bound.
func TestParseBounded(t *testing.T) {
	_, err := Parse("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "/dev/zero: larger than 4 MiB") {
		t.Fatalf("/dev/zero: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.conf")
	os.WriteFile(big, []byte("script\n"+strings.Repeat("# a comment line of 31 bytes.\n", 150000)+"end script\n"), 0o644)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Fatalf("4.5 MB job: %v", err)
	}
}

// A NUL cannot reach exec or the environment: an error naming the line.
func TestParseRefusesNUL(t *testing.T) {
	for job, line := range map[string]string{"exec x\nenv FOO=a\x00b\n": "2", "exec x\nexec a\x00b\n": "2", "exec x\nscript\n\na\x00b\nend script\n": "4"} {
		_, err := ParseBytes("j.conf", "j", []byte(job))
		if err == nil || !strings.HasPrefix(err.Error(), "j.conf:"+line+": ") || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("%q: %v", job, err)
		}
	}
}
