//go:build linux

// Command startup measures how long a shim takes to run a command that does
// nothing: `upshim -- /bin/true` against `tini -s -- /bin/true`, dumb-init,
// catatonit and bare /bin/true, all in one hyperfine run. The difference
// from bare /bin/true is what the shim itself costs at every container or
// service start: exec of the shim, its runtime's start, one fork and exec,
// one wait.
//
// hyperfine runs with -N (no intermediate shell, whose start would dwarf
// the figures), a warmup so that page cache and the dynamic loader's caches
// are hot for every peer, and enough runs for a stable median; the median,
// not the mean, is compared because a few runs always hit a scheduling
// hiccup that would drag the mean. Without hyperfine, startup times the
// same commands itself, interleaved, and says so.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/upshim/upshim/bench/internal/benchutil"
)

// target is the most upshim's median may be, as a multiple of tini's.
const target = 1.5

func main() {
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	runs := flag.Int("runs", 1000, "timed runs per command")
	warmup := flag.Int("warmup", 100, "untimed runs per command first")
	jsonOut := flag.String("json", "", "where hyperfine's --export-json goes (default: a temporary file)")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "startup: -upshim is required")
		os.Exit(2)
	}
	// /bin/true by name, as the peers are usually compared; PATH's true
	// only where there is no /bin/true.
	truePath := "/bin/true"
	if _, err := os.Stat(truePath); err != nil {
		if truePath, err = exec.LookPath("true"); err != nil {
			fail(err)
		}
	}

	peers := append(benchutil.Peers(*upshim, "startup"), benchutil.Peer{Name: "direct"})
	var medians map[string]time.Duration
	var err error
	if _, lookErr := exec.LookPath("hyperfine"); lookErr == nil {
		medians, err = withHyperfine(peers, truePath, *runs, *warmup, *jsonOut)
	} else {
		fmt.Fprintln(os.Stderr, "startup: hyperfine not found on PATH (apt-get install -y hyperfine); "+
			"timing the commands with startup's own loop instead")
		medians, err = withOwnLoop(peers, truePath, *runs, *warmup)
	}
	if err != nil {
		fail(err)
	}

	sum := benchutil.Summary{Path: *summaryPath}
	fmt.Printf("startup: median wall time per run (%d runs, %d warmup)\n", *runs, *warmup)
	for _, p := range peers {
		m := medians[p.Name]
		fmt.Printf("  %-10s %s\n", p.Name, benchutil.Micros(m))
		sum.Add(benchutil.Row{Bench: "startup", Metric: "median " + p.Name, Value: benchutil.Micros(m), Verdict: benchutil.Info})
	}
	benchutil.TiniRatio(&sum, "startup", medians, target)
	if d := medians["direct"]; d > 0 {
		fmt.Printf("  upshim/direct %s, overhead %s\n", benchutil.Ratio(float64(medians["upshim"])/float64(d)),
			benchutil.Micros(medians["upshim"]-d))
	}
	if err := sum.Flush(); err != nil {
		fail(err)
	}
}

// hyperfineResult is the part of one entry of hyperfine's --export-json
// "results" that startup reads; times are in seconds.
type hyperfineResult struct {
	Command string  `json:"command"`
	Median  float64 `json:"median"`
	Mean    float64 `json:"mean"`
	Stddev  float64 `json:"stddev"`
	Min     float64 `json:"min"`
}

// withHyperfine runs every peer's command in one hyperfine invocation and
// returns the medians hyperfine computed, by peer name.
func withHyperfine(peers []benchutil.Peer, truePath string, runs, warmup int, jsonOut string) (map[string]time.Duration, error) {
	if jsonOut == "" {
		dir, err := os.MkdirTemp("", "upshim-startup-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		jsonOut = filepath.Join(dir, "hyperfine.json")
	}
	args := []string{"-N", "--style", "basic", "--warmup", fmt.Sprint(warmup), "--runs", fmt.Sprint(runs),
		"--export-json", jsonOut}
	for _, p := range peers {
		args = append(args, "-n", p.Name, shellJoin(p.Argv(truePath)))
	}
	cmd := exec.Command("hyperfine", args...)
	// hyperfine's own report goes to stderr, so that stdout carries only
	// startup's figures.
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hyperfine: %v", err)
	}
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		return nil, err
	}
	var report struct {
		Results []hyperfineResult `json:"results"`
	}
	if err := json.Unmarshal(b, &report); err != nil {
		return nil, fmt.Errorf("%s: %v", jsonOut, err)
	}
	if len(report.Results) != len(peers) {
		return nil, fmt.Errorf("%s: %d results for %d commands", jsonOut, len(report.Results), len(peers))
	}
	medians := make(map[string]time.Duration, len(peers))
	// hyperfine keeps the order of the commands it was given.
	for i, r := range report.Results {
		medians[peers[i].Name] = time.Duration(r.Median * float64(time.Second))
	}
	return medians, nil
}

// withOwnLoop times each peer's command by starting it and waiting for it,
// as hyperfine -N does. The peers take turns run by run, so that a change
// in the machine's load during the run affects all of them alike.
func withOwnLoop(peers []benchutil.Peer, truePath string, runs, warmup int) (map[string]time.Duration, error) {
	samples := make(map[string][]time.Duration, len(peers))
	for i := 0; i < warmup+runs; i++ {
		for _, p := range peers {
			argv := p.Argv(truePath)
			cmd := exec.Command(argv[0], argv[1:]...)
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("%s: %v", strings.Join(argv, " "), err)
			}
			if i >= warmup {
				samples[p.Name] = append(samples[p.Name], time.Since(start))
			}
		}
	}
	medians := make(map[string]time.Duration, len(peers))
	for name, s := range samples {
		medians[name] = benchutil.Median(s)
	}
	return medians, nil
}

// shellJoin quotes argv for hyperfine, which splits each command with
// shell-words rules even under -N.
func shellJoin(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			quoted[i] = a
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "startup:", err)
	os.Exit(1)
}
