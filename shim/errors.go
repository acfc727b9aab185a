//go:build linux

package shim

import (
	"errors"
	"syscall"
)

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

// setupError classes an error setting up a file upshim was told to use: a
// lack of space, descriptors or memory is a resource upshim cannot have
// now (exit 1); anything else is the path as given (exit 2).
func setupError(err error) error {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EMFILE, syscall.ENFILE,
		syscall.ENOMEM, syscall.EIO} {
		if errors.Is(err, errno) {
			return err
		}
	}
	return usageError{err}
}
