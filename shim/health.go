//go:build linux

package shim

// Health probes, Docker's HEALTHCHECK with an action: a command, an HTTP
// GET or a TCP connect, one at a time, the next one interval after the
// previous one ended. This file holds the flags' values and the machine's
// side of it: when a probe is due, what its result means, and what
// `retries` failures in a row lead to. The probes themselves (processes,
// sockets) are the Supervisor's, in probe_linux.go.

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProbeKind is which of the three probes --health-* chose.
type ProbeKind int

// The probe kinds; the zero value is none.
const (
	ProbeNone ProbeKind = iota
	ProbeCmd            // --health-cmd: /bin/sh -c CMD, exit 0 is healthy
	ProbeHTTP           // --health-http: a GET, 200-399 is healthy
	ProbeTCP            // --health-tcp: a connect is healthy
)

var probeFlags = [...]string{"", "--health-cmd", "--health-http", "--health-tcp"}

// HealthProbe is the one probe of the service.
type HealthProbe struct {
	Kind ProbeKind
	Cmd  string // ProbeCmd
	Addr string // ProbeHTTP, ProbeTCP: HOST:PORT to connect to
	Host string // ProbeHTTP: the Host header, as the URL gave it
	Path string // ProbeHTTP: the request target, "/" at least
	Text string // what the flag was given, for messages
}

// ProbeFlag is one of the three --health-* probe flags, all writing the
// same HealthProbe: a second kind is refused. It is a pflag.Value.
type ProbeFlag struct {
	Probe *HealthProbe
	Kind  ProbeKind
}

// Set parses the flag's value into the probe.
func (f ProbeFlag) Set(s string) error {
	p := f.Probe
	if p.Kind != ProbeNone && p.Kind != f.Kind {
		return fmt.Errorf("%s is given too; one probe only", probeFlags[p.Kind])
	}
	q := HealthProbe{Kind: f.Kind, Text: s}
	var err error
	switch f.Kind {
	case ProbeCmd:
		if strings.TrimSpace(s) == "" {
			return errors.New("want a shell command")
		}
		q.Cmd = s
	case ProbeHTTP:
		q.Addr, q.Host, q.Path, err = parseHTTPURL(s)
	case ProbeTCP:
		q.Addr, err = parseHostPort(s, "")
	}
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// String is the value as given.
func (f ProbeFlag) String() string {
	if f.Probe == nil || f.Probe.Kind != f.Kind {
		return ""
	}
	return f.Probe.Text
}

// Type names the value in --help.
func (f ProbeFlag) Type() string {
	return [...]string{"", "CMD", "URL", "HOST:PORT"}[f.Kind]
}

// parseHTTPURL splits http://HOST[:PORT][/PATH] into the address to
// connect to, the Host header and the request target. There is no TLS:
// an https:// URL needs --health-cmd (curl, wget).
func parseHTTPURL(s string) (addr, host, path string, err error) {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		if strings.HasPrefix(s, "https://") {
			return "", "", "", errors.New("https is not supported (no TLS in upshim); use --health-cmd with curl or wget")
		}
		return "", "", "", errors.New("want http://HOST[:PORT][/PATH]")
	}
	host, path = rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	if strings.Contains(host, "@") {
		return "", "", "", errors.New("user information in the URL is not supported")
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	for _, c := range []byte(path) {
		if c <= ' ' || c == 0x7f {
			return "", "", "", errors.New("the path has a space or a control character; escape it (%20)")
		}
	}
	addr, err = parseHostPort(host, "80")
	return addr, host, path, err
}

// parseHostPort checks HOST:PORT, or HOST alone when defPort is given.
func parseHostPort(s, defPort string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil && defPort != "" && !strings.HasSuffix(s, "]:") {
		host, port, err = strings.Trim(s, "[]"), defPort, nil
		if strings.Contains(host, ":") && !strings.HasPrefix(s, "[") {
			err = errors.New("bad")
		}
	}
	if err != nil || host == "" {
		if defPort != "" {
			return "", errors.New("want http://HOST[:PORT][/PATH], with an IPv6 HOST in brackets")
		}
		return "", errors.New("want HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

// HealthAction is what `retries` failed probes in a row lead to.
type HealthAction int

// The actions, as --health-action names them.
const (
	// ActionRestart stops the main process as a stop would, but without
	// pre-stop, and starts it again.
	ActionRestart HealthAction = iota
	// ActionExit stops it, and upshim exits non-zero.
	ActionExit
	// ActionNone only reports.
	ActionNone
)

var actionNames = [...]string{"restart", "exit", "none"}

// Set parses restart, exit or none.
func (a *HealthAction) Set(s string) error {
	for i, name := range actionNames {
		if s == name {
			*a = HealthAction(i)
			return nil
		}
	}
	return errors.New("want restart, exit or none")
}

// String names the action.
func (a HealthAction) String() string { return actionNames[a] }

// Type names the value in --help.
func (a *HealthAction) Type() string { return "ACTION" }

// maxProbeOutput is how much of a probe's output is kept, as Docker keeps.
const maxProbeOutput = 4096

// The machine's side.

// Health states, as `ctl status` shows them.
const (
	healthStarting  = "starting"
	healthHealthy   = "healthy"
	healthUnhealthy = "unhealthy"
)

// probeRun is the one probe in flight.
type probeRun struct {
	seq      int                // its number; results of older probes are ignored
	pid      int                // a command probe's process, until reaped
	exited   bool               // the probe is over: reaped, or a network probe's result came
	status   syscall.WaitStatus // how a command probe ended
	output   string             // what it wrote, or what the network probe saw
	outDone  bool               // the output is complete
	timedOut bool
}

// probing reports whether probes run in the current phase: while the
// service is ready, and while it starts under --expect health, where a
// passing probe is what makes it ready.
func (m *machine) probing() bool {
	if m.cfg.Health.Kind == ProbeNone || m.then != intentNone || m.inst.ending != "" || m.inst.pid == 0 {
		return false
	}
	switch m.phase {
	case phRunning, phPostStart:
		return true
	case phStarting, phReplaceStarting:
		return m.readyByProbe()
	}
	return false
}

// startProbing begins the probes of this run: the streak and the start
// period are the run's own.
func (m *machine) startProbing() {
	if m.cfg.Health.Kind == ProbeNone {
		return
	}
	m.inst.health = healthStarting
	m.arm(dlProbe, m.probeDelay())
}

// resumeProbes starts probing again after a pause within the run (a
// forking service's successor is followed), unless a probe is due or in
// flight already.
func (m *machine) resumeProbes() {
	if m.probing() && m.probe == nil && m.armed[dlProbe.slot()] == dlNone {
		m.arm(dlProbe, m.probeDelay())
	}
}

// inStartPeriod reports whether failures do not count yet: before the
// first success, while --health-start-period runs from the start of the
// run, or while the service is not ready under --expect health.
func (m *machine) inStartPeriod() bool {
	if m.inst.periodOver {
		return false
	}
	return m.starting() || m.now.Sub(m.inst.started) < time.Duration(m.cfg.HealthStartPeriod)
}

// probeDelay is the wait before the next probe: the start interval in
// the start period, the interval after it.
func (m *machine) probeDelay() time.Duration {
	if m.inStartPeriod() {
		return time.Duration(m.cfg.HealthStartInterval)
	}
	return time.Duration(m.cfg.HealthInterval)
}

// runProbe starts a probe: the loop answers evProbeStarted (a command's
// pid) and evProbeResult.
func (m *machine) runProbe() {
	if !m.probing() || m.probe != nil {
		return
	}
	m.probeSeq++
	m.probe = &probeRun{seq: m.probeSeq}
	m.emit(effect{kind: effProbe, seq: m.probeSeq})
	m.arm(dlProbeTimeout, time.Duration(m.cfg.HealthTimeout))
}

// pauseProbes stops probing: the run is over or stopping. A command probe
// still running is killed with its group; its exit is then an orphan's.
func (m *machine) pauseProbes() {
	m.disarm(dlProbe)
	if p := m.probe; p != nil {
		if p.pid != 0 {
			m.emit(effect{kind: effSignal, to: toProbeGroup, sig: syscall.SIGKILL, pid: p.pid, what: "probe"})
		}
		m.probe = nil
	}
}

// onProbeStarted records a command probe's process.
func (m *machine) onProbeStarted(ev event) {
	if p := m.probe; p != nil && p.seq == ev.seq && p.pid == 0 && !p.exited {
		p.pid = ev.pid
	}
}

// onProbeExit records how a command probe's process ended; the result
// waits for its output.
func (m *machine) onProbeExit(ev event) {
	p := m.probe
	p.pid, p.exited, p.status = 0, true, ev.status
	m.probeDone()
}

// onProbeResult takes a probe's output; a network probe's (final) is its
// whole result.
func (m *machine) onProbeResult(ev event) {
	p := m.probe
	if p == nil || p.seq != ev.seq {
		return // an older probe's, given up on
	}
	p.output, p.outDone = ev.output, true
	if ev.final {
		p.exited = true
		if !ev.ok {
			p.status = exited(1)
		}
	}
	m.probeDone()
}

// onProbeTimeout handles a probe still running at --health-timeout: a
// command's group is killed, and its end judged once reaped; a network
// probe has failed.
func (m *machine) onProbeTimeout() {
	p := m.probe
	if p == nil {
		return
	}
	p.timedOut = true
	if p.pid != 0 {
		m.signal(toProbeGroup, syscall.SIGKILL, "probe timeout")
		return
	}
	p.exited, p.outDone = true, true
	m.probeDone()
}

// probeDone judges the probe once it is over and its output is in.
func (m *machine) probeDone() {
	p := m.probe
	if p == nil || !p.exited || !p.outDone {
		return
	}
	m.probe = nil
	m.disarm(dlProbeTimeout)
	ok := !p.timedOut && p.status.Exited() && p.status.ExitStatus() == 0
	out := p.output
	if p.timedOut {
		out = fmt.Sprintf("timed out after %s", m.cfg.HealthTimeout)
		if p.output != "" {
			out += ": " + p.output
		}
	} else if !ok && m.cfg.Health.Kind == ProbeCmd {
		out = strings.TrimRight(out, "\n")
		if out != "" {
			out += "\n"
		}
		out += describeStatus(p.status)
	}
	if len(out) > maxProbeOutput {
		out = out[:maxProbeOutput]
	}
	m.lastProbe = out
	if !m.probing() {
		return // the run ended or is stopping meanwhile: the result means nothing now
	}
	if ok {
		m.probePassed()
	} else {
		m.probeFailed(out)
	}
	if m.probing() {
		m.arm(dlProbe, m.probeDelay())
	}
}

// probePassed ends the start period and the failing streak; under
// --expect health, the first pass makes the service ready.
func (m *machine) probePassed() {
	was := m.inst.health
	m.inst.periodOver, m.inst.streak, m.inst.health = true, 0, healthHealthy
	if m.starting() && m.readyByProbe() {
		m.becomeReady() // its STATUS= says healthy
		return
	}
	switch was {
	case healthHealthy:
		return
	case healthUnhealthy:
		m.logf(levelInfo, "healthy again")
	default:
		m.logf(levelDebug, "healthy")
	}
	m.announce(m.runningStatus())
}

// probeFailed counts a failure outside the start period; `retries` in a
// row make the service unhealthy, and the action follows.
func (m *machine) probeFailed(out string) {
	if m.inStartPeriod() {
		m.logf(levelDebug, "health probe failed in the start period (not counted): %s", firstLine(out))
		return
	}
	m.inst.streak++
	retries := m.cfg.HealthRetries
	if m.inst.streak < retries {
		m.logf(levelInfo, "health probe failed (%d/%d): %s", m.inst.streak, retries, firstLine(out))
		return
	}
	if m.inst.health == healthUnhealthy {
		m.logf(levelDebug, "health probe failed (%d in a row): %s", m.inst.streak, firstLine(out))
		return
	}
	m.inst.health = healthUnhealthy
	what := fmt.Sprintf("unhealthy (%d consecutive failures)", m.inst.streak)
	m.announce("STATUS=" + what)
	switch m.cfg.HealthAction {
	case ActionNone:
		m.logf(levelError, "%s: %s", what, firstLine(out))
	case ActionExit:
		m.logf(levelError, "%s: %s; stopping, and upshim exits", what, firstLine(out))
		m.failStop("unhealthy")
	default:
		m.logf(levelError, "%s: %s; restarting", what, firstLine(out))
		m.failStop("unhealthy")
	}
}

// firstLine is the first line of a probe's output, short enough for a
// message; `ctl status` has the whole of it.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}

// validateHealth checks the probe's parameters; the flags without a
// probe are main.go's to refuse.
func (c *Config) validateHealth() error {
	if c.Expect == ExpectHealth && c.Health.Kind == ProbeNone {
		return errors.New("--expect health needs a probe: --health-cmd, --health-http or --health-tcp")
	}
	if c.Health.Kind == ProbeNone {
		return nil
	}
	if c.HealthRetries < 1 {
		return fmt.Errorf("--health-retries %d: want 1 or more", c.HealthRetries)
	}
	for _, d := range []struct {
		flag string
		v    Duration
	}{{"--health-interval", c.HealthInterval}, {"--health-timeout", c.HealthTimeout},
		{"--health-start-interval", c.HealthStartInterval}} {
		if d.v <= 0 {
			return fmt.Errorf("%s %s: want more than 0", d.flag, d.v)
		}
	}
	return nil
}
