//go:build linux

// Command crashloop measures how fast upshim respawns a service that fails
// at once: `upshim --respawn-limit unlimited -- /bin/false` runs for a fixed
// time and is then stopped with SIGTERM; its runs per second are compared
// with those of the cheapest supervisor there is, a shell loop
// `while :; do /bin/false; done` run for the same time. A crash loop is
// where a supervisor's per-run cost (spawn, reap, bookkeeping, its log
// line) is all there is to see.
//
// upshim's runs are counted from its stderr, which goes to a file: at its
// default verbosity it writes one "respawning" line per respawn, which is
// what it does in production too, so counting costs it nothing extra. The
// shell counts its own iterations and prints the count when SIGTERM ends
// it. The two take turns (shell, upshim, shell, upshim, …) rather than run
// together, since they would compete for the same CPUs.
package main

import (
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

// target is the least upshim's runs/s may be, as a fraction of the loop's.
const target = 0.5

// shellLoop counts iterations of the bare loop. A trapped signal is run
// once the foreground /bin/false has ended, so the count is exact.
const shellLoop = `n=0; trap 'echo $n; exit 0' TERM; while :; do "$1"; n=$((n+1)); done`

func main() {
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	duration := flag.Duration("duration", 3*time.Second, "how long each round runs before SIGTERM")
	rounds := flag.Int("rounds", 2, "rounds per contender, alternating")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "crashloop: -upshim is required")
		os.Exit(2)
	}
	if err := run(*upshim, *duration, *rounds, *summaryPath); err != nil {
		fmt.Fprintln(os.Stderr, "crashloop:", err)
		os.Exit(1)
	}
}

func run(upshim string, duration time.Duration, rounds int, summaryPath string) error {
	falsePath := "/bin/false"
	if _, err := os.Stat(falsePath); err != nil {
		if falsePath, err = exec.LookPath("false"); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "upshim-crashloop-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var shellRuns, upshimRuns int
	var shellTime, upshimTime time.Duration
	for i := 0; i < rounds; i++ {
		n, d, err := runShell(falsePath, duration)
		if err != nil {
			return fmt.Errorf("shell loop: %v", err)
		}
		shellRuns, shellTime = shellRuns+n, shellTime+d
		n, d, err = runUpshim(upshim, falsePath, filepath.Join(dir, "stderr"), duration)
		if err != nil {
			return fmt.Errorf("upshim: %v", err)
		}
		upshimRuns, upshimTime = upshimRuns+n, upshimTime+d
	}

	shellRate := float64(shellRuns) / shellTime.Seconds()
	upshimRate := float64(upshimRuns) / upshimTime.Seconds()
	ratio := upshimRate / shellRate
	fmt.Printf("crashloop: %s runs, %d rounds of %s each\n", falsePath, rounds, duration)
	fmt.Printf("  %-10s %8d runs %10.0f runs/s\n", "shell", shellRuns, shellRate)
	fmt.Printf("  %-10s %8d runs %10.0f runs/s\n", "upshim", upshimRuns, upshimRate)
	fmt.Printf("  upshim/shell %s (target >= %.1fx)\n", benchutil.Ratio(ratio), target)

	sum := benchutil.Summary{Path: summaryPath}
	sum.Add(benchutil.Row{Bench: "crashloop", Metric: "runs/s shell loop", Value: fmt.Sprintf("%.0f", shellRate), Verdict: benchutil.Info})
	sum.Add(benchutil.Row{Bench: "crashloop", Metric: "runs/s upshim", Value: fmt.Sprintf("%.0f", upshimRate), Verdict: benchutil.Info})
	sum.Add(benchutil.Row{Bench: "crashloop", Metric: "runs/s upshim/shell", Value: benchutil.Ratio(ratio),
		Target: fmt.Sprintf(">= %.1fx", target), Verdict: benchutil.AtLeast(ratio, target)})
	return sum.Flush()
}

// runShell runs the bare loop for duration and returns its iterations and
// the time it ran.
func runShell(falsePath string, duration time.Duration) (int, time.Duration, error) {
	var out bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", shellLoop, "sh", falsePath)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	elapsed, err := runFor(cmd, duration)
	if err != nil {
		return 0, 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		return 0, 0, fmt.Errorf("bad count %q", out.String())
	}
	return n, elapsed, nil
}

// runUpshim runs the crash loop under upshim for duration and returns the
// runs (the first start plus one per "respawning" line) and the time it ran.
func runUpshim(upshim, falsePath, stderrPath string, duration time.Duration) (int, time.Duration, error) {
	f, err := os.Create(stderrPath)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cmd := exec.Command(upshim, "--respawn-limit", "unlimited", "--", falsePath)
	cmd.Stderr = f
	elapsed, err := runFor(cmd, duration)
	// Stopped while /bin/false was running or between runs, upshim exits
	// with the last run's status, 1, or with 143 for the SIGTERM: both are
	// expected here.
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return 0, 0, err
		}
	}
	b, err := os.ReadFile(stderrPath)
	if err != nil {
		return 0, 0, err
	}
	n := bytes.Count(b, []byte("; respawning"))
	if n == 0 {
		return 0, 0, fmt.Errorf("no respawns in its stderr: %q", firstLine(b))
	}
	return n + 1, elapsed, nil
}

// runFor starts cmd, sends it SIGTERM after duration and waits for it. The
// fixed duration is the measurement window, not a synchronisation; elapsed
// is measured from just before the start to the signal.
func runFor(cmd *exec.Cmd, duration time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	time.Sleep(duration)
	elapsed := time.Since(start)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	return elapsed, cmd.Wait()
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}
