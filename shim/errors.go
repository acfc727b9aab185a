package shim

import "errors"

// Start-up errors carry their kind, and exitCodeOf turns the kind into
// upshim's exit status in one place: 2 for usage and configuration, 126 or
// 127 for a command that cannot be executed, 1 for anything else (a
// resource upshim cannot set up).

// usageError is a usage or configuration error: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// execError is a command that cannot be executed: exit 126 or 127.
type execError struct{ err error }

func (e execError) Error() string { return e.err.Error() }
func (e execError) Unwrap() error { return e.err }

// exitCodeOf is upshim's exit status for a start-up error.
func exitCodeOf(err error) int {
	var usage usageError
	var exec execError
	switch {
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &exec):
		return spawnFailureCode(exec.err)
	}
	return 1
}
