// Package generate prints what puts an upshim invocation under another
// init or into a container: a systemd unit, an upstart job, a Dockerfile
// snippet. Each runs exactly the invocation it is given; the output
// depends on nothing else, so it can be diffed and committed.
package generate

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Invocation is one upshim command line, ready to be embedded.
type Invocation struct {
	// Upshim is the absolute path of the upshim binary.
	Upshim string
	// Args are upshim's arguments: flags, then "--" and the command, all
	// paths absolute.
	Args []string
	// Name and Description describe the service.
	Name, Description string
	// StartOn is the job's start on condition, if it came from a job.
	StartOn string
	// KillTimeout, HookTimeout and StartTimeout bound upshim's own waits;
	// PreStop and PostStop say which hooks a stop may wait for.
	KillTimeout, HookTimeout, StartTimeout time.Duration
	PreStart, PreStop, PostStop            bool
	// Expose lists the ports of the --listen sockets (8080, 53/udp), which
	// a Dockerfile declares.
	Expose []string
	// Watchdog says the invocation watches its service for hangs
	// (--watchdog, a health probe); Health, that it probes it.
	Watchdog, Health bool
	// Version is upshim's, for the header.
	Version string
	// RuntimeDirectory: upshim puts its control socket in the runtime
	// directory (--control auto), which a systemd unit then makes.
	RuntimeDirectory bool
	// ReplaceSignal is --replace-signal's name (USR2), or "": given, a
	// systemd unit's reload sends it, so that systemctl reload replaces.
	ReplaceSignal string
}

// stopBudget is the longest a stop can take inside upshim: pre-stop, the
// kill timeout, post-stop.
func (inv Invocation) stopBudget() time.Duration {
	d := inv.KillTimeout
	if inv.PreStop {
		d += inv.HookTimeout
	}
	if inv.PostStop {
		d += inv.HookTimeout
	}
	return d
}

// seconds rounds d up to whole seconds, plus a margin, so that the outer
// init never cuts upshim's own stop short.
func seconds(d time.Duration, margin int) int {
	return int(math.Ceil(d.Seconds())) + margin
}

// Systemd is a service unit: Type=notify (upshim sends READY=1),
// KillMode=mixed (SIGTERM to upshim alone, which stops its service; SIGKILL
// to the whole cgroup only if upshim overruns), Restart=on-failure to pick
// up where upshim's respawn limit gives up.
func Systemd(inv Invocation) string {
	var b strings.Builder
	header(&b, inv, "systemd")
	b.WriteString("[Unit]\n")
	desc := inv.Description
	if desc == "" {
		desc = inv.Name + " under upshim"
	}
	fmt.Fprintf(&b, "Description=%s\n", escapeSpecifiers(desc))
	if needsNetwork(inv.StartOn) {
		b.WriteString("Wants=network-online.target\nAfter=network-online.target\n")
	}
	b.WriteString("\n[Service]\nType=notify\n")
	fmt.Fprintf(&b, "ExecStart=%s\n", systemdCommand(append([]string{inv.Upshim}, inv.Args...)))
	if inv.ReplaceSignal != "" {
		// Asked for with --replace-signal: systemctl reload replaces the
		// service (upshim ctl NAME reload still reloads it).
		fmt.Fprintf(&b, "ExecReload=/bin/kill -%s $MAINPID\n", inv.ReplaceSignal)
	} else {
		b.WriteString("ExecReload=/bin/kill -HUP $MAINPID\n")
	}
	b.WriteString("KillMode=mixed\n")
	fmt.Fprintf(&b, "TimeoutStopSec=%d\n", seconds(inv.stopBudget(), 5))
	start := inv.StartTimeout
	if inv.PreStart {
		start += inv.HookTimeout
	}
	if start > 0 {
		fmt.Fprintf(&b, "TimeoutStartSec=%d\n", seconds(start, 5))
	}
	if inv.Watchdog {
		// Who watches the watcher: upshim's loop pings every half
		// interval, so a hung upshim is restarted too.
		fmt.Fprintf(&b, "WatchdogSec=%d\n", int(upshimWatchdog/time.Second))
	}
	b.WriteString("Restart=on-failure\n")
	if inv.RuntimeDirectory {
		// /run/upshim, as upshim run by hand as root uses, so that
		// upshim ctl NAME finds it there. Every upshim unit shares it: it
		// is kept when one stops (each upshim removes its own socket).
		b.WriteString("RuntimeDirectory=upshim\nRuntimeDirectoryMode=0700\nRuntimeDirectoryPreserve=yes\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

// upshimWatchdog is the WatchdogSec= of a unit whose upshim watches its
// service. upshim's loop answers in milliseconds; the margin is for a
// loaded machine and for the log files' drain before post-stop, which
// waits for the disk.
const upshimWatchdog = 30 * time.Second

// needsNetwork reports whether an upstart start on condition waited for
// the network, which systemd orders with network-online.target.
func needsNetwork(startOn string) bool {
	return strings.Contains(startOn, "net-device-up") || strings.Contains(startOn, "started networking") ||
		strings.Contains(startOn, "static-network-up")
}

// systemdCommand quotes argv for ExecStart=: words that need it go in
// double quotes with \ and " escaped and control characters as C escapes
// (\n, \x01), which systemd decodes there, so that no argument can end
// the line; $ and % are doubled, since systemd expands variables and
// specifiers there.
func systemdCommand(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		a = escapeSpecifiers(strings.ReplaceAll(a, "$", "$$"))
		if a == "" || strings.ContainsAny(a, " \"'\\;") || ControlChar(a) >= 0 || (i == 0 && strings.ContainsAny(a[:1], "@-:+!|")) {
			var b strings.Builder
			b.WriteByte('"')
			cEscape(&b, a, '"')
			b.WriteByte('"')
			a = b.String()
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// header is the first line: the command that made the file, its words
// quoted as a shell takes them back, control characters as bash's $'\n',
// so that no argument ends the comment.
func header(b *strings.Builder, inv Invocation, kind string) {
	fmt.Fprintf(b, "# Generated by upshim %s: upshim generate %s", inv.Version, kind)
	for _, a := range inv.Args {
		b.WriteByte(' ')
		if ControlChar(a) < 0 {
			b.WriteString(shellQuote(a))
			continue
		}
		b.WriteString("$'")
		cEscape(b, a, '\'')
		b.WriteByte('\'')
	}
	b.WriteByte('\n')
}

// cEscape writes s with C escapes for a backslash, quote and control
// characters (\n, \t, \x01), as systemd's ExecStart= and bash's $'…'
// both decode them.
func cEscape(b *strings.Builder, s string, quote byte) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == quote:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case isControl(c):
			fmt.Fprintf(b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
}

// isControl reports whether c is an ASCII control character: a newline
// or a carriage return ends a line in a unit, job or Dockerfile, and the
// others have no business in one either.
func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

// ControlChar returns the index of the first control character in s, or -1.
func ControlChar(s string) int {
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			return i
		}
	}
	return -1
}

// A ValueError is a value that a kind of output would print as it is, in
// a line it could end or extend: its Field is "name", "description",
// "start on", "argument" or "upshim".
type ValueError struct {
	Field, Value, Why string
}

func (e *ValueError) Error() string { return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Why) }

// Check finds a value that kind's output cannot hold. A systemd unit's
// Description= and an upstart job's description and start on have no
// escape for a control character, which could end the line and start a
// directive of its own (ExecStartPre=, setuid root); an upstart job's
// exec line has none either, so every argument counts there. systemd's
// ExecStart= and the Dockerfile's JSON escape them instead, and the
// header comment is written with escapes for every kind.
func (inv Invocation) Check(kind string) error {
	desc, descField := inv.Description, "description"
	if desc == "" {
		desc, descField = inv.Name, "name"
	}
	var values [][2]string // field, value
	where := "a systemd unit"
	switch kind {
	case "systemd":
		if strings.HasSuffix(desc, `\`) {
			return &ValueError{descField, desc, "a trailing backslash would join the next line of the unit"}
		}
		values = [][2]string{{descField, desc}}
	case "upstart":
		where = "an upstart job"
		values = [][2]string{{descField, desc}, {"start on", inv.StartOn}, {"upshim", inv.Upshim}}
		for _, a := range inv.Args {
			values = append(values, [2]string{"argument", a})
		}
	}
	for _, v := range values {
		if i := ControlChar(v[1]); i >= 0 {
			return &ValueError{v[0], v[1], fmt.Sprintf("a control character (%q) cannot be written in %s", v[1][i], where)}
		}
	}
	return nil
}

// Upstart is a job that runs the invocation, for hosts that still run
// upstart; upshim --job runs it too.
func Upstart(inv Invocation) string {
	var b strings.Builder
	header(&b, inv, "upstart")
	desc := inv.Description
	if desc == "" {
		desc = inv.Name + " under upshim"
	}
	fmt.Fprintf(&b, "description %s\n", shellQuote(desc))
	startOn := inv.StartOn
	if startOn == "" {
		startOn = "runlevel [2345]"
	}
	fmt.Fprintf(&b, "start on %s\nstop on runlevel [!2345]\n", startOn)
	fmt.Fprintf(&b, "kill timeout %d\n", seconds(inv.stopBudget(), 5))
	quoted := make([]string, 0, len(inv.Args)+1)
	for _, a := range append([]string{inv.Upshim}, inv.Args...) {
		quoted = append(quoted, shellQuote(a))
	}
	fmt.Fprintf(&b, "exec %s\n", strings.Join(quoted, " "))
	return b.String()
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,+-@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Dockerfile is the snippet that makes upshim a container's ENTRYPOINT.
// The paths are the container's: upshim at /usr/bin/upshim, the command as
// given. docker stop sends SIGTERM, which stops upshim's service; its
// timeout must outlast upshim's own stop.
func Dockerfile(inv Invocation) string {
	var b strings.Builder
	header(&b, inv, "dockerfile")
	b.WriteString("COPY upshim /usr/bin/upshim\n")
	b.WriteString("STOPSIGNAL SIGTERM\n")
	fmt.Fprintf(&b, "# docker stop needs more than upshim's own stop: docker run --stop-timeout %d\n", seconds(inv.stopBudget(), 5))
	if len(inv.Expose) > 0 {
		// upshim holds these across respawns (--listen).
		fmt.Fprintf(&b, "EXPOSE %s\n", strings.Join(inv.Expose, " "))
	}
	if inv.Health {
		// A HEALTHCHECK would probe the service a second time, and Docker
		// would only mark it unhealthy; upshim restarts it.
		b.WriteString("# upshim probes the service itself (--health-*): no HEALTHCHECK, which would probe it twice\n")
	}
	parts := []string{jsonString("/usr/bin/upshim")}
	for _, a := range inv.Args {
		parts = append(parts, jsonString(a))
	}
	fmt.Fprintf(&b, "ENTRYPOINT [%s]\n", strings.Join(parts, ", "))
	return b.String()
}

// jsonString quotes s as a JSON string, as the exec form of ENTRYPOINT
// wants.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
