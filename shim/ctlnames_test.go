//go:build linux

package shim

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"web", "nginx-1.2", "my service", "é", "a.b"} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	for name, want := range map[string]string{
		"": "empty", "a/b": "'/'", "/": "'/'", ".": "'.'", "..": "'.'", ".hidden": "'.'",
		"a\x00b": "control", "a\nb": "control", "a\x1b[31m": "control", "a\x7f": "control", "a\u0085": "control",
		"\xff": "UTF-8",
	} {
		if err := CheckName(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckName(%q) = %v, want an error saying %s", name, err, want)
		}
	}
}

// jsonFields reads what Status.JSON writes, and what a later upshim may
// add to it; anything that is not one object is refused.
func TestJSONFields(t *testing.T) {
	code := 143
	st := Status{Name: "we\"b\\\n\x01é", State: "running", PID: 42, UptimeSeconds: 1.5, Respawns: 3,
		LastExitCode: &code, Listen: []ListenStatus{{Name: "a", Addr: "[::1]:80", FD: 3}}}
	f, ok := jsonFields(st.JSON())
	if !ok {
		t.Fatalf("jsonFields(%s) failed", st.JSON())
	}
	if name, ok := jsonString(f["name"]); !ok || name != st.Name {
		t.Errorf("name %q, %v", name, ok)
	}
	if f["pid"] != "42" || f["uptime_seconds"] != "1.5" || f["last_exit_code"] != "143" || f["ready"] != "false" {
		t.Errorf("fields %v", f)
	}
	row := listRow("web", f)
	if strings.Join(row, " ") != "web running 42 2s 3 -" {
		t.Errorf("listRow = %q", row)
	}

	// Health, as a string or as an object with a status.
	for raw, want := range map[string]string{
		`{"pid":0,"health":"healthy"}`:                         "- - - - healthy",
		`{"pid":0,"health":{"status":"unhealthy","streak":3}}`: "- - - - unhealthy",
		`{"pid":0,"health":null}`:                              "- - - - -",
	} {
		f, ok := jsonFields(raw)
		if !ok {
			t.Fatalf("jsonFields(%s) failed", raw)
		}
		if got := strings.Join(listRow("", f)[1:], " "); got != want {
			t.Errorf("listRow of %s: %q, want %q", raw, got, want)
		}
	}

	for _, raw := range []string{
		` { "a" : [1, -2.5e3, {"b": [true, false, null]}], "c": "\u00e9\ud83d\ude00\/" } `, `{}`,
	} {
		if _, ok := jsonFields(raw); !ok {
			t.Errorf("jsonFields(%s) refused", raw)
		}
	}
	if s, _ := jsonString(`"\u00e9\ud83d\ude00\/\ud800"`); s != "é😀/\uFFFD" {
		t.Errorf("jsonString decoded %q", s)
	}
	for _, raw := range []string{
		``, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1}x`, `{"a":01x}`, `{"a":nan}`, `{"a":.5}`,
		`{"a":"x` + "\n" + `"}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{a:1}`, strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100),
	} {
		if f, ok := jsonFields(raw); ok {
			t.Errorf("jsonFields(%q) = %v, want refused", raw, f)
		}
	}
}
