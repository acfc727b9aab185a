//go:build linux

// Command health measures upshim's watchdog and health probes:
//
//   - detection latency: a service that answers HTTP and then hangs while
//     alive (accepting, never answering, ignoring SIGTERM) is restarted by
//     --health-http; the time from its last answer to the new instance,
//     against start period + retries × (interval + timeout) + kill
//     timeout. And a service that stops sending WATCHDOG=1 gets the
//     watchdog signal; the time from its last ping, against --watchdog.
//   - the cost of probing: upshim runs a healthy service with each probe
//     kind at a short interval for a while; its CPU time (all threads, and
//     the command probes it reaped) per probe, times 3600, is the CPU time
//     of an hour of probing at a 1 s interval.
//
// The service is this binary, re-executed with childEnv set to its mode.
// Its events carry their wall-clock time, so that the latencies do not
// include the reading of a pipe.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/upshim/upshim/bench/internal/benchutil"
)

// childEnv, set to a mode, makes the binary run as the service.
const childEnv = "UPSHIM_BENCH_HEALTH_CHILD"

// timeout bounds every wait, so that a lost service fails the benchmark
// instead of hanging it.
const timeout = 30 * time.Second

// The probe parameters of the latency runs.
const (
	interval     = 200 * time.Millisecond
	probeTimeout = 200 * time.Millisecond
	retries      = 3
	killTimeout  = 300 * time.Millisecond
	watchdog     = 500 * time.Millisecond
)

func main() {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	rounds := flag.Int("rounds", 5, "hangs detected per latency figure")
	window := flag.Duration("window", 10*time.Second, "how long each probe kind runs for the CPU figure")
	every := flag.Duration("every", 100*time.Millisecond, "--health-interval of the CPU runs")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "health: -upshim is required")
		os.Exit(2)
	}
	if err := run(*upshim, *rounds, *window, *every, *summaryPath); err != nil {
		fmt.Fprintln(os.Stderr, "health:", err)
		os.Exit(1)
	}
}

// child is the service:
//
//	hang:N  answers N HTTP requests on fd 3 with 200, prints "hung T",
//	        then accepts and never answers, ignoring SIGTERM
//	serve   answers every HTTP request (or bare connection) on fd 3,
//	        printing "conn" for each
//	ping:N  sends WATCHDOG=1 N times 50ms apart, prints "silent T"; on
//	        SIGABRT prints "abrt T" and exits 1
//
// Every mode prints "up T" first. T is the wall clock in nanoseconds.
func child(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	say := func(what string) {
		fmt.Fprintf(out, "%s %d\n", what, time.Now().UnixNano())
		out.Flush()
	}
	say("up")
	name, arg, _ := strings.Cut(mode, ":")
	n, _ := strconv.Atoi(arg)
	switch name {
	case "hang", "serve":
		ln, err := net.FileListener(os.NewFile(3, "listen"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		var held []net.Conn
		for answered := 0; ; {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			if name == "hang" && answered >= n {
				held = append(held, c)
				continue
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 512)
			c.Read(buf) // a TCP probe sends nothing and closes
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			c.Close()
			answered++
			if name == "serve" {
				fmt.Fprintln(out, "conn")
				out.Flush()
			}
			if name == "hang" && answered == n {
				signal.Ignore(syscall.SIGTERM)
				say("hung")
			}
		}
	case "ping":
		abrt := make(chan os.Signal, 1)
		signal.Notify(abrt, syscall.SIGABRT)
		conn, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		for range n {
			conn.Write([]byte("WATCHDOG=1"))
			time.Sleep(50 * time.Millisecond)
		}
		say("silent")
		<-abrt
		say("abrt")
		return 1
	}
	fmt.Fprintln(os.Stderr, "child: unknown mode", mode)
	return 2
}

// event is one line of the service's, with its time.
type event struct {
	what string
	at   time.Time
}

// shim is one upshim run with the service's events.
type shim struct {
	cmd    *exec.Cmd
	events chan event
}

func start(upshim string, env string, args ...string) (*shim, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(upshim, append(append(args, "--env", childEnv+"="+env), "--", self)...)
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &shim{cmd: cmd, events: make(chan event, 4096)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			what, t, _ := strings.Cut(sc.Text(), " ")
			ns, _ := strconv.ParseInt(t, 10, 64)
			s.events <- event{what, time.Unix(0, ns)}
		}
		close(s.events)
	}()
	return s, nil
}

// next waits for the service's next event called what.
func (s *shim) next(what string) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return time.Time{}, fmt.Errorf("upshim's output ended while waiting for %q", what)
			}
			if e.what == what {
				return e.at, nil
			}
		case <-deadline:
			return time.Time{}, fmt.Errorf("no %q after %s", what, timeout)
		}
	}
}

func (s *shim) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-done
	}
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func run(upshim string, rounds int, window, every time.Duration, summaryPath string) error {
	sum := benchutil.Summary{Path: summaryPath}
	defer sum.Flush()

	// Health: hang, restart, hang again.
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	bound := retries*(interval+probeTimeout) + killTimeout
	s, err := start(upshim, "hang:3", "--respawn-limit", "unlimited", "--listen", addr,
		"--health-http", "http://"+addr+"/", "--health-interval", interval.String(),
		"--health-timeout", probeTimeout.String(), "--health-retries", strconv.Itoa(retries),
		"--kill-timeout", killTimeout.String())
	if err != nil {
		return err
	}
	var health []time.Duration
	for range rounds {
		hung, err := s.next("hung")
		if err != nil {
			s.stop()
			return err
		}
		up, err := s.next("up")
		if err != nil {
			s.stop()
			return err
		}
		health = append(health, up.Sub(hung))
	}
	s.stop()
	report(&sum, "hang to restart", health, bound,
		fmt.Sprintf("--health-http, interval %s, timeout %s, retries %d, kill timeout %s, service ignores TERM",
			interval, probeTimeout, retries, killTimeout))

	// Watchdog: ping, go silent, get ABRT, again.
	s, err = start(upshim, "ping:10", "--respawn-limit", "unlimited", "--watchdog", watchdog.String(),
		"--kill-timeout", killTimeout.String())
	if err != nil {
		return err
	}
	var wd []time.Duration
	for range rounds {
		silent, err := s.next("silent")
		if err != nil {
			s.stop()
			return err
		}
		abrt, err := s.next("abrt")
		if err != nil {
			s.stop()
			return err
		}
		wd = append(wd, abrt.Sub(silent))
	}
	s.stop()
	// The last ping went 50 ms before "silent".
	report(&sum, "silence to ABRT", wd, watchdog-50*time.Millisecond,
		fmt.Sprintf("--watchdog %s, from the last ping (50 ms before silence)", watchdog))

	// CPU per probe, for each kind, and upshim without a probe.
	dir, err := os.MkdirTemp("", "upshim-bench-health")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("CPU time of probing, %s at --health-interval %s, scaled to an hour at 1s:\n", window, every)
	for _, kind := range []string{"none", "tcp", "http", "cmd"} {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		args := []string{"--listen", addr}
		counts := filepath.Join(dir, kind)
		switch kind {
		case "tcp":
			args = append(args, "--health-tcp", addr)
		case "http":
			args = append(args, "--health-http", "http://"+addr+"/")
		case "cmd":
			args = append(args, "--health-cmd", "echo >> "+counts)
		}
		if kind != "none" {
			args = append(args, "--health-interval", every.String(), "--health-start-interval", every.String())
		}
		cpu, probes, err := probeCost(upshim, args, window, counts)
		if err != nil {
			return err
		}
		if kind == "none" {
			fmt.Printf("  no probe       upshim %s over %s\n", cpu.Round(time.Microsecond), window)
			sum.Add(benchutil.Row{Bench: "health", Metric: "CPU over " + window.String() + ", no probe",
				Value: cpu.Round(time.Microsecond).String(), Verdict: benchutil.Info})
			continue
		}
		if probes == 0 {
			return fmt.Errorf("%s: no probe ran", kind)
		}
		hour := time.Duration(float64(cpu) / float64(probes) * 3600)
		fmt.Printf("  --health-%-5s %d probes, %s CPU, %s per probe: %s per hour at 1s\n", kind, probes,
			cpu.Round(time.Microsecond), (cpu / time.Duration(probes)).Round(time.Microsecond), hour.Round(time.Millisecond))
		sum.Add(benchutil.Row{Bench: "health", Metric: "CPU/hour at 1s, " + kind + " probe",
			Value: hour.Round(time.Millisecond).String(), Verdict: benchutil.Info})
	}
	return nil
}

// report prints a latency figure and adds its row: the worst must be
// within the bound plus 250 ms for the scheduler.
func report(sum *benchutil.Summary, what string, samples []time.Duration, bound time.Duration, how string) {
	worst := benchutil.Percentile(samples, 100)
	median := benchutil.Median(samples)
	fmt.Printf("%s: median %s, worst %s of %d, bound %s (%s)\n", what, median.Round(time.Millisecond),
		worst.Round(time.Millisecond), len(samples), bound, how)
	limit := bound + 250*time.Millisecond
	sum.Add(benchutil.Row{Bench: "health", Metric: what + ", worst", Value: worst.Round(time.Millisecond).String(),
		Target: "<= " + limit.String(), Verdict: benchutil.AtMost(float64(worst), float64(limit))})
}

// probeCost runs upshim with args and a healthy service for window, and
// returns the CPU time upshim used meanwhile (its threads, and the probes
// it reaped) and how many probes ran, counted by the service (a line per
// connection) or, for a command probe, by the lines it appended to counts.
func probeCost(upshim string, args []string, window time.Duration, counts string) (time.Duration, int, error) {
	s, err := start(upshim, "serve", args...)
	if err != nil {
		return 0, 0, err
	}
	defer s.stop()
	if _, err := s.next("up"); err != nil {
		return 0, 0, err
	}
	// What upshim does once at start-up is not probing.
	time.Sleep(time.Second)
	pid := s.cmd.Process.Pid
	before, err := cpuOf(pid)
	if err != nil {
		return 0, 0, err
	}
	linesBefore := countLines(counts)
	conns := 0
	for drained := false; !drained; {
		select {
		case <-s.events:
		default:
			drained = true
		}
	}
	end := time.After(window)
	for waiting := true; waiting; {
		select {
		case e := <-s.events:
			if e.what == "conn" {
				conns++
			}
		case <-end:
			waiting = false
		}
	}
	after, err := cpuOf(pid)
	if err != nil {
		return 0, 0, err
	}
	if n := countLines(counts) - linesBefore; n > 0 {
		conns = n
	}
	return after - before, conns, nil
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// cpuOf is the CPU time of pid: the runtime of all its threads (schedstat,
// in nanoseconds) plus the user and system time of the children it reaped
// (stat's cutime and cstime, in clock ticks of 10 ms).
func cpuOf(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		total += time.Duration(ns)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	// After the state (f[0]): ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime.
	cutime, _ := strconv.ParseInt(f[13], 10, 64)
	cstime, _ := strconv.ParseInt(f[14], 10, 64)
	return total + time.Duration(cutime+cstime)*10*time.Millisecond, nil
}
