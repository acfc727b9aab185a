//go:build !linux

package main

// upshim supervises Linux processes with Linux system calls (wait4 on
// every child, PR_SET_CHILD_SUBREAPER, pidfds, SCM_CREDENTIALS, /proc),
// so every other file builds for Linux only, and on another system this
// file stops the build with the one message below.
const _ = "upshim is Linux only: build it with GOOS=linux" + 0
