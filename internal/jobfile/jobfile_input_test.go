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

// \# is not a comment: it stays in the exec line, backslash and all, for
// the shell (which prints a#b), as upstart kept it; in a stanza's words it
// is a # of its own.
func TestParseEscapedHash(t *testing.T) {
	j, err := ParseBytes("h.conf", "h", []byte("env A=x\\#y # a comment\nexec echo a\\#b # a comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Main.Exec != `echo a\#b` || !NeedsShell(j.Main.Exec) {
		t.Errorf("exec %q", j.Main.Exec)
	}
	if len(j.Env) != 1 || j.Env[0] != "A=x#y" {
		t.Errorf("env %q", j.Env)
	}
}

// Quoting is the shell's, which the exec line is run with: a ' inside
// double quotes or escaped, a ' written as generate upstart writes it
// (close the quotes, \', reopen), \" inside double quotes. None of these
// is an unterminated quote, and a # in any of them is no comment.
func TestParseShellQuoting(t *testing.T) {
	for line, want := range map[string]string{
		`exec sh -c 'echo '\''a # b'\''' # c`: `sh -c 'echo '\''a # b'\'''`,
		`exec echo "it's # \"x\"" # c`:        `echo "it's # \"x\""`,
		`exec echo it\'s\ \# # c`:             `echo it\'s\ \#`,
		`exec echo 'a\' b # c`:                `echo 'a\' b`,
	} {
		j, err := ParseBytes("q.conf", "q", []byte(line+"\n"))
		if err != nil {
			t.Errorf("%s: %v", line, err)
		} else if j.Main.Exec != want {
			t.Errorf("%s: exec %q, want %q", line, j.Main.Exec, want)
		}
	}
	j, err := ParseBytes("q.conf", "q", []byte(`description 'it'\''s "x"'`+"\nenv A=\"b\\\"c\\\\d\\e\"\nexec x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Description != `it's "x"` || len(j.Env) != 1 || j.Env[0] != `A=b"c\d\e` {
		t.Errorf("description %q, env %q", j.Description, j.Env)
	}
}
