//go:build linux

package shim

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The status a control request reports, and its JSON.

// Status is what `ctl status --json` prints; its field names are stable.
type Status struct {
	Name  string `json:"name"`
	State string `json:"state"`
	PID   int    `json:"pid"`
	// NewPID is a replace's new main process while it is under way, 0
	// otherwise; PID stays the old one until the replace is over.
	NewPID        int     `json:"new_pid"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Respawns      int     `json:"respawns"`
	LastExit      string  `json:"last_exit"`
	LastExitCode  *int    `json:"last_exit_code"`
	Ready         bool    `json:"ready"`
	ServiceStatus string  `json:"service_status"`
	LogFile       string  `json:"log_file"`
	// Health is starting, healthy or unhealthy with a probe, "" without;
	// FailingStreak counts the failed probes in a row, and
	// LastProbeOutput is what the last probe wrote (at most 4 KiB).
	Health          string `json:"health"`
	FailingStreak   int    `json:"failing_streak"`
	LastProbeOutput string `json:"last_probe_output"`
	// Listen lists the sockets held for the service, [] when none.
	Listen []ListenStatus `json:"listen"`
}

// JSON formats the status as one JSON object, with the field names of the
// struct tags. It is written by hand: encoding/json would cost upshim
// more start-up and memory than this whole file.
func (st Status) JSON() string {
	b := []byte(`{"name":`)
	b = appendJSONString(b, st.Name)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, st.State)
	b = fmt.Appendf(b, `,"pid":%d,"new_pid":%d,"uptime_seconds":%s,"respawns":%d,"last_exit":`, st.PID, st.NewPID,
		strconv.FormatFloat(st.UptimeSeconds, 'f', -1, 64), st.Respawns)
	b = appendJSONString(b, st.LastExit)
	if st.LastExitCode != nil {
		b = fmt.Appendf(b, `,"last_exit_code":%d`, *st.LastExitCode)
	} else {
		b = append(b, `,"last_exit_code":null`...)
	}
	b = fmt.Appendf(b, `,"ready":%t,"service_status":`, st.Ready)
	b = appendJSONString(b, st.ServiceStatus)
	b = append(b, `,"log_file":`...)
	b = appendJSONString(b, st.LogFile)
	b = append(b, `,"health":`...)
	b = appendJSONString(b, st.Health)
	b = fmt.Appendf(b, `,"failing_streak":%d,"last_probe_output":`, st.FailingStreak)
	b = appendJSONString(b, st.LastProbeOutput)
	b = append(b, `,"listen":[`...)
	for i, l := range st.Listen {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, l.Name)
		b = append(b, `,"addr":`...)
		b = appendJSONString(b, l.Addr)
		b = fmt.Appendf(b, `,"fd":%d}`, l.FD)
	}
	return string(append(b, "]}"...))
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r) // invalid bytes come out as U+FFFD
		}
	}
	return append(b, '"')
}
