package shim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ParseEnvFile reads NAME=VALUE lines for --env-file. Blank lines and lines
// starting with # are skipped; a line may start with "export "; a value may
// be wrapped in single quotes (taken as it is) or double quotes (where \\,
// \", \$, \` and \n are escapes). An unquoted value is the rest of the line
// with surrounding blanks removed: there are no inline comments, so that a
// # in a password survives. Errors name the file and line.
func ParseEnvFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseEnv(path, data)
}

func parseEnv(path string, data []byte) ([]string, error) {
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
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
	*e = append(*e, s)
	return nil
}

// String lists the variables.
func (e *EnvList) String() string { return strings.Join(*e, ",") }

// Type names the value in --help.
func (e *EnvList) Type() string { return "NAME=VALUE" }

// mergeEnv applies NAME=VALUE settings over env: a later setting of a name
// replaces the earlier one in place.
func mergeEnv(env []string, settings ...string) []string {
	for _, kv := range settings {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range env {
			if strings.HasPrefix(old, name+"=") {
				env[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			env = append(env, kv)
		}
	}
	return env
}
