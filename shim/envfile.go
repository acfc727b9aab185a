//go:build linux

package shim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxEnvFile bounds an env file: half of what exec takes for argv and
// environment together (a quarter of the stack limit, 2 MiB by default),
// so no real environment is refused, and small enough that /dev/zero or a
// runaway pipe cannot exhaust memory.
const maxEnvFile = 1 << 20

// ParseEnvFile reads NAME=VALUE lines for --env-file. Blank lines and lines
// starting with # are skipped; a line may start with "export "; a value may
// be wrapped in single quotes (taken as it is) or double quotes (where \\,
// \", \$, \` and \n are escapes). An unquoted value is the rest of the line
// with surrounding blanks removed: there are no inline comments, so that a
// # in a password survives. Errors name the file and line. A file larger
// than 1 MiB is refused, as is a NUL anywhere: exec cannot pass one.
func ParseEnvFile(path string) ([]string, error) {
	data, err := readBounded(path, maxEnvFile)
	if err != nil {
		return nil, err
	}
	return parseEnv(path, data)
}

// readBounded reads the file at path, refusing one larger than limit
// bytes. It reads at most limit+1 bytes, so that an endless stream
// (/dev/zero, a pipe) fails at once rather than filling memory.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, limit>>20)
	}
	return data, nil
}

func parseEnv(path string, data []byte) ([]string, error) {
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("%s:%d: a NUL byte, which no environment can hold", path, n)
		}
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !validEnvName(name) {
			return nil, fmt.Errorf("%s:%d: want NAME=VALUE, got %q", path, n, sc.Text())
		}
		value, err := unquote(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", path, n, name, err)
		}
		env = append(env, name+"="+value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return env, nil
}

// validEnvName reports whether name is a shell variable name.
func validEnvName(name string) bool {
	for i, c := range name {
		if c != '_' && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return name != ""
}

// unquote removes one level of single or double quotes from v.
func unquote(v string) (string, error) {
	if v == "" || (v[0] != '\'' && v[0] != '"') {
		return v, nil
	}
	q := v[0]
	if len(v) < 2 || v[len(v)-1] != q {
		return "", errors.New("quote not closed")
	}
	v = v[1 : len(v)-1]
	if q == '\'' {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' {
			return "", errors.New("unescaped \" inside double quotes")
		}
		if c != '\\' || i+1 == len(v) {
			b.WriteByte(c)
			continue
		}
		i++
		switch v[i] {
		case 'n':
			b.WriteByte('\n')
		case '\\', '"', '$', '`':
			b.WriteByte(v[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(v[i])
		}
	}
	return b.String(), nil
}

// EnvList is a repeatable --env NAME=VALUE. It is a pflag.Value.
type EnvList []string

// Set adds one NAME=VALUE.
func (e *EnvList) Set(s string) error {
	name, _, ok := strings.Cut(s, "=")
	if !ok || !validEnvName(name) {
		return errors.New("want NAME=VALUE")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("a NUL byte, which no environment can hold")
	}
	*e = append(*e, s)
	return nil
}

// String lists the variables.
func (e *EnvList) String() string { return strings.Join(*e, ",") }

// Type names the value in --help.
func (e *EnvList) Type() string { return "NAME=VALUE" }

// mergeEnv applies NAME=VALUE settings over env: a later setting of a name
// replaces the earlier one in place. An index of the names keeps it linear:
// an env file may hold many thousands of variables.
func mergeEnv(env []string, settings ...string) []string {
	if len(settings) == 0 {
		return env
	}
	at := make(map[string]int, len(env)+len(settings))
	for i, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, seen := at[name]; !seen {
			at[name] = i
		}
	}
	for _, kv := range settings {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := at[name]; ok {
			env[i] = kv
			continue
		}
		at[name] = len(env)
		env = append(env, kv)
	}
	return env
}
