//go:build linux

package shim

import (
	"testing"
	"time"
)

// The window opens at a failure; the (COUNT+1)-th failure within INTERVAL
// of that opening gives up; a failure after INTERVAL opens a new window.
func TestRespawnWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	w := respawnWindow{limit: RespawnLimit{Count: 3, Interval: time.Second}}
	for i, ms := range []int{0, 100, 200} {
		if !w.fail(at(ms)) || w.count != i+1 {
			t.Fatalf("failure %d refused (count %d)", i+1, w.count)
		}
	}
	if w.fail(at(999)) {
		t.Fatal("the 4th failure within 1s of the first was allowed")
	}

	w = respawnWindow{limit: RespawnLimit{Count: 3, Interval: time.Second}}
	for _, ms := range []int{0, 100, 200} {
		w.fail(at(ms))
	}
	if !w.fail(at(1000)) || w.count != 1 {
		t.Fatalf("a failure at exactly INTERVAL did not open a new window (count %d)", w.count)
	}

	// A slow crash rate never fills a window: every 600ms with 2/1s.
	w = respawnWindow{limit: RespawnLimit{Count: 2, Interval: time.Second}}
	for i := range 50 {
		if !w.fail(at(600 * i)) {
			t.Fatalf("failure %d at %dms gave up", i+1, 600*i)
		}
	}

	// Unlimited never gives up.
	w = respawnWindow{}
	for i := range 1000 {
		if !w.fail(at(i)) {
			t.Fatal("unlimited gave up")
		}
	}
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		base, max   time.Duration
		consecutive int
		want        time.Duration
	}{
		{0, 0, 1, 0},
		{100 * ms, 0, 5, 100 * ms},
		{100 * ms, time.Second, 1, 100 * ms},
		{100 * ms, time.Second, 2, 200 * ms},
		{100 * ms, time.Second, 4, 800 * ms},
		{100 * ms, time.Second, 5, time.Second},
		{100 * ms, time.Second, 500, time.Second},
		{300 * ms, 500 * ms, 2, 500 * ms},
	} {
		if got := backoff(c.base, c.max, c.consecutive); got != c.want {
			t.Errorf("backoff(%s, %s, %d) = %s, want %s", c.base, c.max, c.consecutive, got, c.want)
		}
	}
}
