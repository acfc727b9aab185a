//go:build linux

package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envLines is an env file of n variables.
func envLines(n int) []string {
	vars := make([]string, n)
	for i := range vars {
		vars[i] = fmt.Sprintf("V%d=%d", i, i)
	}
	return vars
}

// mergeEnv must be linear: 200k variables over 200k (half of them new)
// take milliseconds; a scan per setting took minutes.
func TestMergeEnvManyVariables(t *testing.T) {
	base := envLines(200000)
	settings := envLines(300000)[100000:]
	settings = append(settings, "V0=first-replaced", "V0=last-wins")
	env := mergeEnv(append([]string(nil), base...), settings...)
	if len(env) != 300000 {
		t.Fatalf("%d variables, want 300000", len(env))
	}
	if env[0] != "V0=last-wins" || env[150000] != "V150000=150000" || env[299999] != "V299999=299999" {
		t.Fatalf("merged wrong: %q %q %q", env[0], env[150000], env[299999])
	}
}

func TestMergeEnvReplacesInPlace(t *testing.T) {
	env := mergeEnv([]string{"A=1", "B=2", "AB=3"}, "B=x", "C=y", "A=z", "C=w")
	if got := strings.Join(env, " "); got != "A=z B=x AB=3 C=w" {
		t.Fatalf("got %q", got)
	}
}

func BenchmarkMergeEnv(b *testing.B) {
	base, settings := envLines(20000), envLines(40000)[10000:]
	for b.Loop() {
		mergeEnv(append([]string(nil), base...), settings...)
	}
}

// An endless stream (/dev/zero) or a huge file is refused once past the
// bound, without reading it all.
func TestEnvFileBounded(t *testing.T) {
	_, err := ParseEnvFile("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "/dev/zero") || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Fatalf("/dev/zero: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.env")
	os.WriteFile(big, []byte(strings.Repeat("A=1234567\n", 110000)), 0o644)
	if _, err := ParseEnvFile(big); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Fatalf("1.1 MB env file: %v", err)
	}
	ok := filepath.Join(t.TempDir(), "ok.env")
	os.WriteFile(ok, []byte(strings.Repeat("A=1234567\n", 100000)), 0o644)
	if vars, err := ParseEnvFile(ok); err != nil || len(vars) != 100000 {
		t.Fatalf("1 MB env file: %d variables, %v", len(vars), err)
	}
}

// A NUL cannot reach exec: it is an error naming file and line.
func TestParseEnvRefusesNUL(t *testing.T) {
	for _, data := range []string{"A=1\nFOO=a\x00b\n", "A=1\nFOO=\"a\x00b\"\n", "A=1\nFOO\x00=b\n"} {
		_, err := parseEnv("x.env", []byte(data))
		if err == nil || !strings.HasPrefix(err.Error(), "x.env:2: ") || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("%q: %v", data, err)
		}
	}
	var e EnvList
	if err := e.Set("FOO=a\x00b"); err == nil {
		t.Error("--env FOO=a\\0b accepted")
	}
}
