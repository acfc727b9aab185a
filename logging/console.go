//go:build linux

package logging

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// consoleSize bounds what --log-console holds for a stdout that is behind:
// a consumer (docker logs, a pipe) that reads slowly or not at all costs
// the console copy lines, never the files or the service.
const consoleSize = 1 << 20

// consoleWait bounds how long Close waits for the console to take what is
// left: a stdout that nobody reads must not keep upshim from exiting.
const consoleWait = 2 * time.Second

// console copies lines to upshim's stdout on a goroutine of its own,
// through a fixed ring, so that the writer never waits for the console's
// reader. Lines that do not fit are dropped, whole, and counted.
type console struct {
	out  io.Writer
	wake chan struct{} // a put or close since the copier last looked
	done chan struct{} // closed when the copier has written everything

	mu                   sync.Mutex
	ring                 []byte
	start, held          int  // the bytes waiting: ring[start:], wrapping
	closing              bool // no more puts; finish and stop
	lostLines, lostBytes int  // dropped because the ring was full, or stdout failed
}

func newConsole(out io.Writer) *console {
	c := &console{out: out, ring: make([]byte, consoleSize), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.copyLoop()
	return c
}

// put queues whole lines for stdout, or drops and counts them if the ring
// has no room for all of them. It never waits for stdout.
func (c *console) put(lines []byte) {
	c.mu.Lock()
	if len(lines) > len(c.ring)-c.held {
		c.lostLines += bytes.Count(lines, []byte{'\n'})
		c.lostBytes += len(lines)
		c.mu.Unlock()
		return
	}
	end := (c.start + c.held) % len(c.ring)
	n := copy(c.ring[end:], lines)
	copy(c.ring, lines[n:])
	c.held += len(lines)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// copyLoop writes what the ring holds to stdout until close. Only the
// bytes it is writing are outside the lock: put writes elsewhere.
func (c *console) copyLoop() {
	defer close(c.done)
	for {
		c.mu.Lock()
		if c.held == 0 {
			closing := c.closing
			c.mu.Unlock()
			if closing {
				return
			}
			<-c.wake
			continue
		}
		part := c.ring[c.start:min(c.start+c.held, len(c.ring))]
		c.mu.Unlock()
		n, err := c.out.Write(part)
		if err != nil && n < len(part) {
			// stdout is gone or broken: what was not written is lost.
			n = len(part)
			c.mu.Lock()
			c.lostLines += bytes.Count(part, []byte{'\n'})
			c.lostBytes += len(part)
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.start = (c.start + n) % len(c.ring)
		c.held -= n
		c.mu.Unlock()
	}
}

// close waits, at most consoleWait, for stdout to take what is queued,
// and returns how much was dropped, what it did not take included.
func (c *console) close() (lostLines, lostBytes int) {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	timer := time.NewTimer(consoleWait)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		// The copier is stuck in a write; it ends with the process.
		c.mu.Lock()
		defer c.mu.Unlock()
		lostLines, lostBytes = c.lostLines, c.lostBytes+c.held
		lostLines += bytes.Count(c.ring[c.start:min(c.start+c.held, len(c.ring))], []byte{'\n'})
		lostLines += bytes.Count(c.ring[:max(0, c.start+c.held-len(c.ring))], []byte{'\n'})
		return lostLines, lostBytes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostLines, c.lostBytes
}
