//go:build linux

// Command logs measures how fast upshim --log-file writes a service's
// output to rotated files, side by side with the loggers of s6 (s6-log),
// runit (svlogd) and daemontools (multilog), and with `cat > file` as the
// physical limit. Each writes the same stream of 100-byte numbered lines
// (300 MB by default) with 10 MB rotation, plain and then with timestamps;
// every tool's files are counted line by line afterwards, so a tool that
// loses lines cannot win.
//
// The generator is this binary, re-executed with genEnv set: it writes the
// lines in 1 MiB writes from a buffer built once, much faster than any of
// the loggers reads them.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/upshim/upshim/bench/internal/benchutil"
)

// genEnv, set to the number of lines, makes the binary the generator.
const genEnv = "UPSHIM_BENCH_LOGS_LINES"

// lineLen is the length of every line, newline included.
const lineLen = 100

func main() {
	if n := os.Getenv(genEnv); n != "" {
		lines, _ := strconv.Atoi(n)
		generate(lines)
		return
	}
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	megabytes := flag.Int("mb", 300, "megabytes of output per tool")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "logs: -upshim is required")
		os.Exit(2)
	}
	if err := run(*upshim, (*megabytes)*1000*1000/lineLen, *summaryPath); err != nil {
		fmt.Fprintln(os.Stderr, "logs:", err)
		os.Exit(1)
	}
}

// generate writes lines numbered 0..n-1 to stdout. The lines are laid
// out once; each write only renumbers them, so that the generator runs far
// ahead of any logger.
func generate(n int) {
	const perWrite = 1 << 20 / lineLen
	const numAt = len("line ")
	buf := make([]byte, perWrite*lineLen)
	for j := range perWrite {
		line := buf[j*lineLen : (j+1)*lineLen]
		copy(line, "line 0000000000 ")
		for k := numAt + 11; k < lineLen-1; k++ {
			line[k] = 'x'
		}
		line[lineLen-1] = '\n'
	}
	for i := 0; i < n; i += perWrite {
		count := min(perWrite, n-i)
		for j := range count {
			num := buf[j*lineLen+numAt : j*lineLen+numAt+10]
			v := i + j
			for k := 9; k >= 0; k-- {
				num[k] = byte('0' + v%10)
				v /= 10
			}
		}
		if _, err := os.Stdout.Write(buf[:count*lineLen]); err != nil {
			os.Exit(1)
		}
	}
}

// tool is one logger: how to run it on dir, and whether it timestamps.
type tool struct {
	name  string
	stamp bool
	// argv runs the logger reading stdin; nil means upshim runs the
	// generator itself.
	argv  func(dir string) []string
	setup func(dir string) error
}

func run(upshim string, lines int, summaryPath string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "upshim-bench-logs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	have := func(name string) bool {
		_, err := exec.LookPath(name)
		if err != nil {
			fmt.Printf("  %s: not found, skipped (apt-get install -y %s)\n", name,
				map[string]string{"s6-log": "s6", "svlogd": "runit", "multilog": "daemontools"}[name])
		}
		return err == nil
	}
	svConfig := func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "config"), []byte("s10000000\nn1000\n"), 0o644)
	}
	tools := []tool{
		{name: "cat", argv: func(d string) []string { return []string{"sh", "-c", "cat > " + d + "/current"} }},
		{name: "upshim", argv: nil},
	}
	if have("s6-log") {
		tools = append(tools, tool{name: "s6-log", argv: func(d string) []string { return []string{"s6-log", "n1000", "s10000000", d} }})
	}
	if have("svlogd") {
		tools = append(tools, tool{name: "svlogd", argv: func(d string) []string { return []string{"svlogd", d} }, setup: svConfig})
	}
	if have("multilog") {
		tools = append(tools, tool{name: "multilog", argv: func(d string) []string { return []string{"multilog", "s10000000", "n1000", d} }})
	}
	stamped := []tool{{name: "upshim", stamp: true}}
	if have("s6-log") {
		stamped = append(stamped, tool{name: "s6-log", stamp: true, argv: func(d string) []string { return []string{"s6-log", "n1000", "s10000000", "T", d} }})
	}
	if have("svlogd") {
		stamped = append(stamped, tool{name: "svlogd", stamp: true, argv: func(d string) []string { return []string{"svlogd", "-tt", d} }, setup: svConfig})
	}
	if have("multilog") {
		stamped = append(stamped, tool{name: "multilog", stamp: true, argv: func(d string) []string { return []string{"multilog", "t", "s10000000", "n1000", d} }})
	}

	sum := benchutil.Summary{Path: summaryPath}
	mb := float64(lines*lineLen) / 1e6
	fmt.Printf("logs: %.0f MB of %d-byte lines per tool, 10 MB rotation\n", mb, lineLen)
	for _, set := range [][]tool{tools, stamped} {
		rates := map[string]float64{}
		for _, t := range set {
			dir := filepath.Join(tmp, fmt.Sprintf("%s-%v", t.name, t.stamp))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if t.setup != nil {
				if err := t.setup(dir); err != nil {
					return err
				}
			}
			elapsed, err := runTool(t, dir, upshim, self, lines)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			got, err := countLines(dir)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			rate := mb / elapsed.Seconds()
			rates[t.name] = rate
			label := t.name
			if t.stamp {
				label += " (timestamps)"
			}
			lost := lines - got
			fmt.Printf("  %-24s %8.1f MB/s  %6.2fs  lines %d (lost %d)\n", label, rate, elapsed.Seconds(), got, lost)
			verdict := benchutil.AtLeast(-float64(lost), 0) // zero lines lost
			sum.Add(benchutil.Row{Bench: "logs", Metric: "MB/s " + label, Value: fmt.Sprintf("%.0f MB/s", rate), Verdict: "INFO"})
			if t.name == "upshim" {
				sum.Add(benchutil.Row{Bench: "logs", Metric: "lines lost " + label, Value: strconv.Itoa(lost), Target: "= 0", Verdict: verdict})
			}
			os.RemoveAll(dir)
		}
		best, bestName := 0.0, ""
		for _, name := range []string{"s6-log", "svlogd", "multilog"} {
			if rates[name] > best {
				best, bestName = rates[name], name
			}
		}
		target, label := 5.0, "plain"
		if set[0].stamp {
			target, label = 4.0, "timestamps"
		}
		if best > 0 {
			r := rates["upshim"] / best
			fmt.Printf("  upshim/%s (%s): %s (target >= %.0fx)\n", bestName, label, benchutil.Ratio(r), target)
			sum.Add(benchutil.Row{Bench: "logs", Metric: "upshim/" + bestName + " " + label, Value: benchutil.Ratio(r),
				Target: fmt.Sprintf(">= %.0fx", target), Verdict: benchutil.AtLeast(r, target)})
		}
		if c := rates["cat"]; c > 0 {
			r := rates["upshim"] / c
			fmt.Printf("  upshim/cat: %s (target >= 0.5x)\n", benchutil.Ratio(r))
			sum.Add(benchutil.Row{Bench: "logs", Metric: "upshim/cat", Value: benchutil.Ratio(r), Target: ">= 0.5x", Verdict: benchutil.AtLeast(r, 0.5)})
		}
	}
	return sum.Flush()
}

// runTool runs the generator into tool t writing to dir and returns the
// time until both are done.
func runTool(t tool, dir, upshim, self string, lines int) (time.Duration, error) {
	env := append(os.Environ(), genEnv+"="+strconv.Itoa(lines))
	start := time.Now()
	if t.argv == nil {
		args := []string{"--log-file", dir + "/current", "--log-max-size", "10M", "--log-max-backups", "0"}
		if t.stamp {
			args = append(args, "--log-timestamps")
		}
		cmd := exec.Command(upshim, append(args, "--", self)...)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		return time.Since(start), err
	}
	argv := t.argv(dir)
	logger := exec.Command(argv[0], argv[1:]...)
	gen := exec.Command(self)
	gen.Env = env
	pipe, err := gen.StdoutPipe()
	if err != nil {
		return 0, err
	}
	logger.Stdin = pipe
	if err := gen.Start(); err != nil {
		return 0, err
	}
	if err := logger.Start(); err != nil {
		return 0, err
	}
	err1 := gen.Wait()
	err2 := logger.Wait()
	return time.Since(start), errors.Join(err1, err2)
}

// countLines counts the lines in every file in dir, bar svlogd's config
// and the loggers' lock and state files: the generator's are the only
// lines written.
func countLines(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		switch e.Name() {
		case "config", "lock", "state", "newstate":
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, err
		}
		n += bytes.Count(b, []byte{'\n'})
	}
	return n, nil
}
