//go:build linux

package shim

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Every form of --listen ADDR parses to the socket it names.
func TestParseListenForms(t *testing.T) {
	for _, c := range []struct {
		in             string
		name           string
		family, sotype int
		v6only         bool
		port           int
		path           string
	}{
		{"127.0.0.1:8080", "unknown", unix.AF_INET, unix.SOCK_STREAM, false, 8080, ""},
		{":8080", "unknown", 0, unix.SOCK_STREAM, false, 8080, ""}, // IPv6 and IPv4
		{"tcp4::8080", "unknown", unix.AF_INET, unix.SOCK_STREAM, false, 8080, ""},
		{"tcp6::8080", "unknown", unix.AF_INET6, unix.SOCK_STREAM, true, 8080, ""},
		{"[::1]:0", "unknown", unix.AF_INET6, unix.SOCK_STREAM, false, 0, ""},
		{"tcp6:[::1]:80", "unknown", unix.AF_INET6, unix.SOCK_STREAM, true, 80, ""},
		{"web=tcp:127.0.0.1:80", "web", unix.AF_INET, unix.SOCK_STREAM, false, 80, ""},
		{"dns=udp:127.0.0.1:53", "dns", unix.AF_INET, unix.SOCK_DGRAM, false, 53, ""},
		{"udp6:[::1]:53", "unknown", unix.AF_INET6, unix.SOCK_DGRAM, true, 53, ""},
		{"unix:/run/a=b.sock", "unknown", unix.AF_UNIX, unix.SOCK_STREAM, false, 0, "/run/a=b.sock"},
		{"a b=unix:@x", "a b", unix.AF_UNIX, unix.SOCK_STREAM, false, 0, "@x"},
	} {
		a, err := ParseListen(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if a.Name != c.name || a.family != c.family || a.sotype != c.sotype || a.v6only != c.v6only || a.port != c.port || a.path != c.path {
			t.Errorf("%s: %+v", c.in, a)
		}
	}
	if got := AbsUnixPath("web=unix:rel.sock", func(p string) string { return "/abs/" + p }); got != "web=unix:/abs/rel.sock" {
		t.Errorf("AbsUnixPath: %q", got)
	}
	for in, want := range map[string]string{"127.0.0.1:80": "80", "udp::53": "53/udp", "unix:@x": "", ":0": ""} {
		if got := ExposedPort(in); got != want {
			t.Errorf("ExposedPort(%q) = %q, want %q", in, got, want)
		}
	}
}
