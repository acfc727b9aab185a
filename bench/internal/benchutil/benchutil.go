//go:build linux

// Package benchutil holds what the upshim benchmarks share: finding the
// peers to compare against, order statistics, and the summary rows that
// bench/run turns into its table.
//
// Every benchmark runs its peers side by side in one process and one run,
// so that the ratios compare figures taken on the same machine under the
// same load, minutes apart at most.
package benchutil

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Peer is one way of running a command: under a shim, or directly.
type Peer struct {
	// Name labels the peer in output: upshim, tini, dumb-init, catatonit,
	// or direct.
	Name string
	// Prefix goes before the command's argv; empty for direct.
	Prefix []string
}

// Argv returns the full argv that runs cmd under p.
func (p Peer) Argv(cmd ...string) []string {
	return append(slices.Clip(p.Prefix), cmd...)
}

// Peers returns upshim (at the given path) followed by every other shim
// found on PATH, in a fixed order. A shim that is missing is reported on
// stderr, naming the package that provides it, and left out.
//
// tini runs with -s (become a child subreaper) because upshim always does
// the same when it is not PID 1; without -s tini also prints a three-line
// warning on every start, which would make it look slower than it is.
func Peers(upshim string, bench string) []Peer {
	peers := []Peer{{Name: "upshim", Prefix: []string{upshim, "--"}}}
	others := []struct {
		name string
		args []string
	}{
		{"tini", []string{"-s", "--"}},
		{"dumb-init", []string{"--"}},
		{"catatonit", []string{"--"}},
	}
	for _, o := range others {
		path, err := exec.LookPath(o.name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s not found on PATH, skipping that peer (apt-get install -y %s)\n",
				bench, o.name, o.name)
			continue
		}
		peers = append(peers, Peer{Name: o.name, Prefix: append([]string{path}, o.args...)})
	}
	return peers
}

// Find returns the peer called name and whether it is there.
func Find(peers []Peer, name string) (Peer, bool) {
	for _, p := range peers {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// Percentile returns the p-th percentile (0 ≤ p ≤ 100) of samples by the
// nearest-rank method, which always returns a value that was measured. It
// sorts samples in place.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(p/100*float64(len(samples))+0.999999) - 1
	return samples[max(0, min(rank, len(samples)-1))]
}

// Median returns the median of samples: the mean of the two middle values
// when there is an even number of them. It sorts samples in place.
func Median(samples []time.Duration) time.Duration {
	n := len(samples)
	if n == 0 {
		return 0
	}
	slices.Sort(samples)
	if n%2 == 1 {
		return samples[n/2]
	}
	return (samples[n/2-1] + samples[n/2]) / 2
}

// Verdict values for a Row.
const (
	Pass = "PASS"
	Miss = "MISS"
	Skip = "SKIP"
	Info = "-" // a figure reported without a target
)

// AtMost returns Pass when got ≤ limit, else Miss.
func AtMost(got, limit float64) string {
	if got <= limit {
		return Pass
	}
	return Miss
}

// AtLeast returns Pass when got ≥ limit, else Miss.
func AtLeast(got, limit float64) string {
	if got >= limit {
		return Pass
	}
	return Miss
}

// Row is one line of the summary table.
type Row struct {
	Bench   string // startup, relay, idle, crashloop
	Metric  string // what was measured, e.g. "median upshim/tini"
	Value   string // the figure, with its unit
	Target  string // e.g. "<= 1.5", or "" when there is none
	Verdict string // Pass, Miss, Skip or Info
}

// Summary collects rows for bench/run's table. It appends them, as
// tab-separated lines, to the file named by the -summary flag, so that each
// benchmark, a separate program, adds its own rows; with no file it prints
// them to stdout.
type Summary struct {
	Path string
	rows []Row
}

// Add records a row.
func (s *Summary) Add(r Row) {
	if r.Target == "" {
		r.Target = "-"
	}
	s.rows = append(s.rows, r)
}

// Flush writes the rows recorded so far.
func (s *Summary) Flush() error {
	var b strings.Builder
	for _, r := range s.rows {
		for i, f := range []string{r.Bench, r.Metric, r.Value, r.Target, r.Verdict} {
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(strings.ReplaceAll(f, "\t", " "))
		}
		b.WriteByte('\n')
	}
	s.rows = s.rows[:0]
	if s.Path == "" {
		_, err := os.Stdout.WriteString(b.String())
		return err
	}
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Ratio formats a/b as a ratio with two decimals and an ×.
func Ratio(r float64) string { return fmt.Sprintf("%.2fx", r) }

// Micros formats d in microseconds with one decimal.
func Micros(d time.Duration) string {
	return fmt.Sprintf("%.1f us", float64(d)/float64(time.Microsecond))
}

// TiniRatio reports upshim's median as a multiple of tini's, against a
// "<= target" goal, printing it and adding its summary row; without tini
// the row says so and the verdict is Skip.
func TiniRatio(sum *Summary, bench string, medians map[string]time.Duration, target float64) {
	row := Row{Bench: bench, Metric: "median upshim/tini", Target: fmt.Sprintf("<= %.1fx", target)}
	if tini, ok := medians["tini"]; ok && tini > 0 {
		r := float64(medians["upshim"]) / float64(tini)
		fmt.Printf("  upshim/tini %s (target <= %.1fx)\n", Ratio(r), target)
		row.Value, row.Verdict = Ratio(r), AtMost(r, target)
	} else {
		row.Value, row.Verdict = "no tini", Skip
	}
	sum.Add(row)
}
