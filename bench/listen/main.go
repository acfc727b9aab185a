//go:build linux

// Command listen measures what clients see while a service crashes and is
// restarted over and over: refused connections, and how long a connection
// and its answer take. Three contenders run the same service in turn:
//
//   - upshim --listen: upshim holds the port across respawns and passes it
//     to every instance as fd 3 (LISTEN_FDS);
//   - upshim: each instance binds the port itself;
//   - shell loop: `while :; do service; done`, each instance binding the
//     port itself, the cheapest restarter there is.
//
// The service is this binary, re-executed with childEnv set: it answers
// each connection with one line and closes it, and exits 1 (a crash) after
// -after connections, so that no connection it accepted is left without an
// answer. Clients (-clients of them) open a new connection per request for
// the whole run and retry a refused one after 1 ms, as a load balancer or
// a retrying client would. Each request's connect and answer times run
// from its first try, retries included; a request whose connection is
// reset (one the crashing instance had accepted) is counted as failed. A
// run ends when the service has crashed -crashes times.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/upshim/upshim/bench/internal/benchutil"
)

// childEnv, set to the -after count, makes the binary run as the service.
const childEnv = "UPSHIM_BENCH_LISTEN_CHILD"

// timeout bounds every connection and every wait, so that a contender
// that loses the service fails the benchmark instead of hanging it.
const timeout = 10 * time.Second

func main() {
	if after := os.Getenv(childEnv); after != "" {
		os.Exit(child(after))
	}
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	clients := flag.Int("clients", 8, "clients opening connections at once")
	after := flag.Int("after", 200, "connections each instance answers before it crashes")
	crashes := flag.Int("crashes", 20, "crashes per contender")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "listen: -upshim is required")
		os.Exit(2)
	}
	if err := run(*upshim, *clients, *after, *crashes, *summaryPath); err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
}

// child is the service: it takes the socket on fd 3 when LISTEN_PID is its
// pid, else binds $ADDR, notes its start in $STARTS, and answers until its
// crash.
func child(afterText string) int {
	after, _ := strconv.Atoi(afterText)
	var ln net.Listener
	var err error
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		ln, err = net.FileListener(os.NewFile(3, "listen"))
	} else {
		ln, err = net.Listen("tcp", os.Getenv("ADDR"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen child:", err)
		return 1
	}
	if f, err := os.OpenFile(os.Getenv("STARTS"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.Write([]byte{'\n'})
		f.Close()
	}
	answer := []byte("ok\n")
	for n := 1; n <= after; n++ {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		c.Write(answer)
		c.Close()
	}
	return 1
}

// result is what the clients saw in one run.
type result struct {
	name                      string
	answered, refused, failed int
	connect, answer           []time.Duration
}

func run(upshim string, clients, after, crashes int, summaryPath string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "upshim-bench-listen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	contenders := []struct {
		name string
		argv func(addr string) []string
	}{
		{"upshim --listen", func(addr string) []string {
			return []string{upshim, "--listen", addr, "--respawn-limit", "unlimited", "--", self}
		}},
		{"upshim", func(string) []string { return []string{upshim, "--respawn-limit", "unlimited", "--", self} }},
		{"shell loop", func(string) []string { return []string{"/bin/sh", "-c", `while :; do "$0"; done`, self} }},
	}
	fmt.Printf("listen: %d clients, a new connection each, against a service that crashes after every %d; %d crashes\n",
		clients, after, crashes)
	fmt.Printf("  %-16s %9s %8s %7s %12s %12s\n", "", "answered", "refused", "failed", "p99 connect", "p99 answer")
	var results []result
	for i, c := range contenders {
		starts := fmt.Sprintf("%s/starts-%d", dir, i)
		res, err := runOne(c.name, c.argv, starts, clients, after, crashes)
		if err != nil {
			return fmt.Errorf("%s: %v", c.name, err)
		}
		fmt.Printf("  %-16s %9d %8d %7d %12s %12s\n", res.name, res.answered, res.refused, res.failed,
			millis(benchutil.Percentile(res.connect, 99)), millis(benchutil.Percentile(res.answer, 99)))
		results = append(results, res)
	}
	sum := benchutil.Summary{Path: summaryPath}
	for _, r := range results {
		row := benchutil.Row{Bench: "listen", Metric: "refused, " + r.name, Value: strconv.Itoa(r.refused), Verdict: benchutil.Info}
		if r.name == "upshim --listen" {
			row.Target, row.Verdict = "0", benchutil.AtMost(float64(r.refused), 0)
		}
		sum.Add(row)
		sum.Add(benchutil.Row{Bench: "listen", Metric: "p99 connect, " + r.name,
			Value: millis(benchutil.Percentile(r.connect, 99)), Verdict: benchutil.Info})
		sum.Add(benchutil.Row{Bench: "listen", Metric: "p99 answer, " + r.name,
			Value: millis(benchutil.Percentile(r.answer, 99)), Verdict: benchutil.Info})
	}
	return sum.Flush()
}

// runOne runs one contender until the service has crashed crashes times.
func runOne(name string, argv func(string) []string, starts string, clients, after, crashes int) (result, error) {
	res := result{name: name}
	if err := os.WriteFile(starts, nil, 0o644); err != nil {
		return res, err
	}
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	args := argv(addr)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(after), "ADDR="+addr, "STARTS="+starts)
	// upshim's line per respawn is not the benchmark's output.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the shell loop goes as a group
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	// The first start is not part of the crash loop.
	if err := waitFor(func() bool { return countStarts(starts) >= 1 }); err != nil {
		return res, fmt.Errorf("the service never started")
	}

	var stop atomic.Bool
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine result
			for !stop.Load() {
				// One request: connect, retrying a refusal after 1 ms,
				// then read the answer. Its times run from the first try.
				start := time.Now()
				c, err := net.DialTimeout("tcp", addr, timeout)
				for errors.Is(err, syscall.ECONNREFUSED) && !stop.Load() {
					mine.refused++
					time.Sleep(time.Millisecond)
					c, err = net.DialTimeout("tcp", addr, timeout)
				}
				if err != nil {
					if !errors.Is(err, syscall.ECONNREFUSED) {
						mine.failed++
					}
					continue
				}
				connected := time.Since(start)
				c.SetDeadline(time.Now().Add(timeout))
				b, err := io.ReadAll(c)
				c.Close()
				if err != nil || len(b) == 0 {
					mine.failed++ // reset: the crashing instance had accepted it
					continue
				}
				mine.answered++
				mine.connect = append(mine.connect, connected)
				mine.answer = append(mine.answer, time.Since(start))
			}
			mu.Lock()
			res.answered, res.refused, res.failed = res.answered+mine.answered, res.refused+mine.refused, res.failed+mine.failed
			res.connect, res.answer = append(res.connect, mine.connect...), append(res.answer, mine.answer...)
			mu.Unlock()
		}()
	}
	err = waitFor(func() bool { return countStarts(starts) > crashes })
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return res, fmt.Errorf("the service started %d times, want %d", countStarts(starts), crashes+1)
	}
	return res, nil
}

// waitFor polls cond for at most timeout per expected crash.
func waitFor(cond func() bool) error {
	end := time.Now().Add(20 * timeout)
	for !cond() {
		if time.Now().After(end) {
			return errors.New("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

func countStarts(path string) int {
	b, _ := os.ReadFile(path)
	return len(b)
}

// freeAddr is a loopback address that nothing listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
