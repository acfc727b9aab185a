//go:build linux

package main

import "testing"

// The version goreleaser stamps (-X main.version/commit/date) is what
// --version prints; an unstamped build says dev. Not parallel: it changes
// the package's version variables.
func TestVersionString(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "dev", "", ""
	if got := versionString(); got != "upshim dev" {
		t.Errorf("unstamped: %q", got)
	}
	version, commit, date = "1.2.3", "abc1234", "2026-11-29T04:35:34Z"
	if got := versionString(); got != "upshim 1.2.3 (abc1234, 2026-11-29T04:35:34Z)" {
		t.Errorf("stamped: %q", got)
	}
	version, commit, date = "1.2.3", "abc1234", ""
	if got := versionString(); got != "upshim 1.2.3 (abc1234)" {
		t.Errorf("without a date: %q", got)
	}
}
