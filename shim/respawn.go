//go:build linux

package shim

import "time"

// respawnWindow counts respawns the way upstart's job_process_catch_runaway
// did: a window opens at a failure, and the (Count+1)-th failure inside
// Interval of that opening gives up. A failure after the window has passed
// opens a new one. Unlike upstart, which compared whole seconds, the window
// is measured on the monotonic clock to the nanosecond.
//
// It is pure: the caller passes the time, so tests need no clock.
type respawnWindow struct {
	limit  RespawnLimit
	opened time.Time
	count  int // failures inside the current window
}

// fail records a failure at now and reports whether the service may be
// respawned; count is the failure's number within the window.
func (w *respawnWindow) fail(now time.Time) (ok bool) {
	if w.count == 0 || now.Sub(w.opened) >= w.limit.Interval {
		w.opened, w.count = now, 1
	} else {
		w.count++
	}
	return w.limit.Unlimited() || w.count <= w.limit.Count
}

// backoff computes the delay before a respawn: base, doubled for each
// consecutive failure after the first, capped at max. A zero max means a
// fixed delay.
func backoff(base, max time.Duration, consecutive int) time.Duration {
	if max == 0 || consecutive <= 1 {
		return base
	}
	d := base
	for i := 1; i < consecutive && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
