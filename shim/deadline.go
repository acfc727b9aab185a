//go:build linux

package shim

import "time"

// deadlines is the loop's one timer. The machine arms and disarms its
// deadlines as effects; each has a slot (the service's, the hook's, the
// watchdog's, the probes'), and the loop has two of its own: for the
// signals it registers late, and for its pings to an outer watchdog. One
// time.Timer is set for the earliest; an idle upshim without --watchdog,
// a probe or an outer watchdog has none set.
type deadlines struct {
	at      [machineSlots + 2]time.Time // zero: the slot is free
	purpose [machineSlots + 2]deadline  // what the machine armed the slot for
	timer   *time.Timer
	c       <-chan time.Time
}

// The slots: the machine's (deadline.slot), then the loop's own.
const (
	slotLate = machineSlots + iota
	slotPing
)

// arm sets dl's slot to fire at at, replacing what it held.
func (d *deadlines) arm(dl deadline, at time.Time) {
	d.at[dl.slot()], d.purpose[dl.slot()] = at, dl
	d.rearm()
}

// disarm frees dl's slot.
func (d *deadlines) disarm(dl deadline) {
	d.at[dl.slot()], d.purpose[dl.slot()] = time.Time{}, dlNone
	d.rearm()
}

// set arms a slot of the loop's own.
func (d *deadlines) set(slot int, at time.Time) {
	d.at[slot] = at
	d.rearm()
}

// due frees and returns the slots whose time has come, earliest first.
func (d *deadlines) due(now time.Time) []int {
	var slots []int
	for {
		next := -1
		for i, at := range d.at {
			if !at.IsZero() && !at.After(now) && (next < 0 || at.Before(d.at[next])) {
				next = i
			}
		}
		if next < 0 {
			return slots
		}
		slots = append(slots, next)
		d.at[next] = time.Time{}
	}
}

// rearm sets the timer for the earliest armed slot, or stops it.
func (d *deadlines) rearm() {
	var first time.Time
	for _, at := range d.at {
		if !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	if first.IsZero() {
		d.c = nil
		return
	}
	d.timer = time.NewTimer(time.Until(first))
	d.c = d.timer.C
}

// stop stops the timer.
func (d *deadlines) stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
	d.c = nil
}
