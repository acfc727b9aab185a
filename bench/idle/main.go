//go:build linux

// Command idle measures what a shim costs while its service just runs: it
// starts `SHIM -- sleep 1000` for every peer at once, lets them settle,
// then counts the context switches of every thread of each shim process
// (voluntary and involuntary, from /proc/PID/task/*/status) over a quiet
// window. A shim that never wakes up while nothing happens scores 0; a
// runtime that polls (a timer, a monitor thread) shows up here as a steady
// rate. It also reports each shim's resident memory (VmRSS) and threads.
//
// All threads are counted, not just the main one, because in a Go program
// the thread that wakes may be any of them: sysmon, a timer, the garbage
// collector's workers.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/upshim/upshim/bench/internal/benchutil"
)

// Targets for upshim.
const (
	targetSwitches = 0
	targetRSSKiB   = 3 * 1024
)

func main() {
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	settle := flag.Duration("settle", 2*time.Second, "time the shims get to finish starting before the window opens")
	window := flag.Duration("window", 10*time.Second, "how long the context switches are counted")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "idle: -upshim is required")
		os.Exit(2)
	}
	if err := run(*upshim, *settle, *window, *summaryPath); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

// sample is what /proc says about one process at one moment.
type sample struct {
	switches int64 // voluntary + nonvoluntary, summed over threads
	threads  int
	rssKiB   int64
}

func run(upshim string, settle, window time.Duration, summaryPath string) error {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return err
	}
	peers := benchutil.Peers(upshim, "idle")
	cmds := make([]*exec.Cmd, 0, len(peers))
	defer func() {
		for _, c := range cmds {
			stop(c)
		}
	}()
	for _, p := range peers {
		argv := p.Argv(sleep, "1000")
		c := exec.Command(argv[0], argv[1:]...)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Start(); err != nil {
			return fmt.Errorf("%s: %v", p.Name, err)
		}
		cmds = append(cmds, c)
	}

	// The settle time is part of what is measured, not a synchronisation:
	// a shim that is still busy after it is not idle.
	time.Sleep(settle)
	before := make([]sample, len(peers))
	for i, c := range cmds {
		if before[i], err = read(c.Process.Pid); err != nil {
			return fmt.Errorf("%s: %v", peers[i].Name, err)
		}
	}
	time.Sleep(window)
	sum := benchutil.Summary{Path: summaryPath}
	fmt.Printf("idle: `SHIM -- sleep 1000`, context switches of all the shim's threads over %s after %s\n", window, settle)
	fmt.Printf("  %-10s %9s %9s %8s\n", "peer", "switches", "VmRSS", "threads")
	for i, c := range cmds {
		after, err := read(c.Process.Pid)
		if err != nil {
			return fmt.Errorf("%s: %v", peers[i].Name, err)
		}
		d := after.switches - before[i].switches
		rss := fmt.Sprintf("%.2f MiB", float64(after.rssKiB)/1024)
		fmt.Printf("  %-10s %9d %9s %8d\n", peers[i].Name, d, rss, after.threads)
		swRow := benchutil.Row{Bench: "idle", Metric: "ctx switches/" + window.String() + " " + peers[i].Name,
			Value: strconv.FormatInt(d, 10), Verdict: benchutil.Info}
		rssRow := benchutil.Row{Bench: "idle", Metric: "VmRSS " + peers[i].Name, Value: rss, Verdict: benchutil.Info}
		if peers[i].Name == "upshim" {
			swRow.Target, swRow.Verdict = "= 0", benchutil.AtMost(float64(d), targetSwitches)
			rssRow.Target, rssRow.Verdict = "<= 3 MiB", benchutil.AtMost(float64(after.rssKiB), targetRSSKiB)
		}
		sum.Add(swRow)
		sum.Add(rssRow)
	}
	return sum.Flush()
}

// read sums the context switches over every thread of pid and reads its
// resident set and thread count. A thread that ends between the listing
// and the read is skipped: its switches are gone from /proc either way.
func read(pid int) (sample, error) {
	var s sample
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	s.rssKiB = field(status, "VmRSS:")
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "status"))
		if err != nil {
			continue
		}
		s.threads++
		s.switches += field(b, "voluntary_ctxt_switches:") + field(b, "nonvoluntary_ctxt_switches:")
	}
	return s, nil
}

// field returns the number after key at the start of a line of a
// /proc/.../status file ("VmRSS:   1234 kB" gives 1234), or 0.
func field(status []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// stop ends a shim with SIGTERM, which all of them pass on to sleep, and
// SIGKILL if that has not worked within five seconds.
func stop(c *exec.Cmd) {
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}
