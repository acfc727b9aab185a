package generate

import (
	"strings"
	"testing"
)

// Every control character in an argument is escaped in ExecStart=, the
// ENTRYPOINT's JSON and the header comment: each stays one line.
func TestControlCharactersEscaped(t *testing.T) {
	var all []byte
	for c := byte(1); c < 0x20; c++ {
		all = append(all, c)
	}
	arg := "a" + string(all) + "\x7f'\"\\z"
	inv := Invocation{Upshim: "/usr/bin/upshim", Args: []string{"--", "/bin/sh", "-c", arg}, Name: "sh"}
	if err := inv.Check("systemd"); err != nil {
		t.Fatal(err)
	}
	unit := Systemd(inv)
	if !strings.Contains(unit, `ExecStart=/usr/bin/upshim -- /bin/sh -c "a\x01\x02`) || !strings.Contains(unit, `\x1f\x7f'\"\\z"`+"\n") {
		t.Errorf("ExecStart=:\n%s", unit)
	}
	for kind, out := range map[string]string{"systemd": unit, "dockerfile": Dockerfile(inv)} {
		lines := strings.Split(out, "\n")
		if !strings.HasSuffix(lines[0], `-c $'a\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f\'"\\z'`) {
			t.Errorf("%s header: %s", kind, lines[0])
		}
		for i, l := range lines {
			if ControlChar(l) >= 0 {
				t.Errorf("%s line %d holds a control character: %q", kind, i+1, l)
			}
		}
	}
	if err := inv.Check("upstart"); err == nil || !strings.HasPrefix(err.Error(), `argument "a\x01`) {
		t.Errorf("upstart: %v", err)
	}
	for kind, inv := range map[string]Invocation{
		"systemd": {Name: "x\ny"}, "upstart": {Name: "x", Description: "a\rb"},
	} {
		if err := inv.Check(kind); err == nil {
			t.Errorf("%s: %+v passed", kind, inv)
		}
	}
	if err := (Invocation{Name: `x\`}).Check("systemd"); err == nil || !strings.Contains(err.Error(), "trailing backslash") {
		t.Errorf("a trailing backslash in Description=: %v", err)
	}
}
