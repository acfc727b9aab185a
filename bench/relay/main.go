//go:build linux

// Command relay measures the signal relay round trip of a shim: the time
// from kill(SIGUSR1) sent to the shim's pid until the service it runs has
// handled the signal. Each peer (upshim, tini, dumb-init, catatonit, and
// the service alone as the baseline) runs its own copy of the child at
// the same time, and the peers take turns sample by sample, so that a
// change in the machine's load during the run affects all of them alike.
//
// The child is this same binary, re-executed with relayChildEnv set: a
// separate program, as a real service would be, that catches SIGUSR1 and
// writes one byte to an inherited pipe (fd 3) each time it gets it. The
// round trip is kill → shim wakes → shim kills the child → child wakes →
// write → the bench's read returns; direct measures the same path without
// the shim in the middle.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/upshim/upshim/bench/internal/benchutil"
)

// relayChildEnv, set to 1, makes the binary run as the child.
const relayChildEnv = "UPSHIM_BENCH_RELAY_CHILD"

// target is the most upshim's median may be, as a multiple of tini's.
const target = 1.2

// timeout bounds every wait for a byte, so that a shim that does not relay
// (or does not pass fd 3 on) fails the benchmark instead of hanging it.
const timeout = 5 * time.Second

func main() {
	if os.Getenv(relayChildEnv) == "1" {
		child()
		return
	}
	upshim := flag.String("upshim", "", "path to the upshim binary (required)")
	samples := flag.Int("n", 2000, "timed round trips per peer")
	warmup := flag.Int("warmup", 200, "untimed round trips per peer first")
	summaryPath := flag.String("summary", "", "append summary rows to this file (default: stdout)")
	flag.Parse()
	if *upshim == "" {
		fmt.Fprintln(os.Stderr, "relay: -upshim is required")
		os.Exit(2)
	}
	if err := run(*upshim, *samples, *warmup, *summaryPath); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

// child is the service: it reports readiness with 'R' once its SIGUSR1
// handler is in place, then writes 'x' per SIGUSR1. It ends when the pipe
// is gone or, since it does not catch SIGTERM, when a shim stops it.
func child() {
	pipe := os.NewFile(3, "relay-pipe")
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	if _, err := pipe.Write([]byte{'R'}); err != nil {
		os.Exit(1)
	}
	for range usr1 {
		if _, err := pipe.Write([]byte{'x'}); err != nil {
			os.Exit(0) // the bench is gone
		}
	}
}

// peerRun is one peer with its child running.
type peerRun struct {
	benchutil.Peer
	cmd     *exec.Cmd
	rfd     int // read end of the child's pipe
	samples []time.Duration
}

func run(upshim string, n, warmup int, summaryPath string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	peers := append(benchutil.Peers(upshim, "relay"), benchutil.Peer{Name: "direct"})
	runs := make([]*peerRun, 0, len(peers))
	defer func() {
		for _, r := range runs {
			r.stop()
		}
	}()
	for _, p := range peers {
		r, err := start(p, self)
		if err != nil {
			return err
		}
		r.samples = make([]time.Duration, 0, n)
		runs = append(runs, r)
	}

	// The timed loop should measure the peers, not this process: keep it
	// on one thread so a read's wake-up is not a goroutine migration, and
	// keep the garbage collector out (the loop allocates nothing anyway).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for i := 0; i < warmup+n; i++ {
		for _, r := range runs {
			d, err := r.roundTrip()
			if err != nil {
				return err
			}
			if i >= warmup {
				r.samples = append(r.samples, d)
			}
		}
	}

	sum := benchutil.Summary{Path: summaryPath}
	medians := map[string]time.Duration{}
	fmt.Printf("relay: SIGUSR1 round trip (%d samples, %d warmup)\n", n, warmup)
	fmt.Printf("  %-10s %12s %12s\n", "peer", "median", "p99")
	for _, r := range runs {
		m := benchutil.Median(r.samples)
		p99 := benchutil.Percentile(r.samples, 99)
		medians[r.Name] = m
		fmt.Printf("  %-10s %12s %12s\n", r.Name, benchutil.Micros(m), benchutil.Micros(p99))
		sum.Add(benchutil.Row{Bench: "relay", Metric: "median " + r.Name, Value: benchutil.Micros(m), Verdict: benchutil.Info})
		sum.Add(benchutil.Row{Bench: "relay", Metric: "p99 " + r.Name, Value: benchutil.Micros(p99), Verdict: benchutil.Info})
	}
	benchutil.TiniRatio(&sum, "relay", medians, target)
	fmt.Printf("  upshim adds %s to the direct round trip\n", benchutil.Micros(medians["upshim"]-medians["direct"]))
	return sum.Flush()
}

// start runs p's child with its own pipe on fd 3 and waits for the child
// to say it is ready.
func start(p benchutil.Peer, self string) (*peerRun, error) {
	var fds [2]int
	// Blocking, close-on-exec ends: the read end is read with plain
	// syscalls, outside Go's poller, whose wake-up path would add its own
	// latency to every sample; ExtraFiles hands the child a copy of the
	// write end without close-on-exec.
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	w := os.NewFile(uintptr(fds[1]), "relay-pipe")
	defer w.Close()
	argv := p.Argv(self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), relayChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("%s: %v", p.Name, err)
	}
	r := &peerRun{Peer: p, cmd: cmd, rfd: fds[0]}
	b, err := r.readByte()
	if err != nil || b != 'R' {
		r.stop()
		return nil, fmt.Errorf("%s: the child did not report ready (does the shim pass fd 3 on?): %v %q", p.Name, err, b)
	}
	return r, nil
}

// roundTrip sends SIGUSR1 to the peer's top process (the shim, or the
// child for direct) and times the child's answer.
func (r *peerRun) roundTrip() (time.Duration, error) {
	t0 := time.Now()
	if err := unix.Kill(r.cmd.Process.Pid, unix.SIGUSR1); err != nil {
		return 0, fmt.Errorf("%s: kill: %v", r.Name, err)
	}
	b, err := r.readByte()
	d := time.Since(t0)
	if err != nil || b != 'x' {
		return 0, fmt.Errorf("%s: no answer to SIGUSR1: %v %q", r.Name, err, b)
	}
	return d, nil
}

// readByte reads one byte from the child's pipe, waiting at most timeout.
// The poll costs one syscall per sample, the same for every peer.
func (r *peerRun) readByte() (byte, error) {
	pfd := []unix.PollFd{{Fd: int32(r.rfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, int(timeout/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("timed out")
		}
		break
	}
	var buf [1]byte
	for {
		n, err := unix.Read(r.rfd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("the child closed the pipe")
		}
		return buf[0], nil
	}
}

// stop ends the peer with SIGTERM (which the shims relay and the child does
// not catch), then SIGKILL if it has not ended within timeout.
func (r *peerRun) stop() {
	if r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		r.cmd.Process.Kill()
		<-done
	}
	unix.Close(r.rfd)
}
