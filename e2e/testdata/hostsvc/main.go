//go:build linux

// Command hostsvc is the test service of the real-host tests
// (realhost_*_test.go), built static so that it runs in a FROM scratch
// image too. It serves HTTP on $ADDR (default 127.0.0.1:8080): / answers
// with its pid and its reload count, /crash answers and exits 1.
//
// It says what happens on stdout, one line each: "hostsvc ready pid=N
// stdin=PATH" once it listens, "hostsvc signal NAME" per signal. With
// $NOTIFY_SOCKET it sends READY=1 there once it listens, after
// $READY_DELAY; with RELOAD_NOTIFY=1 it also brackets each SIGHUP with
// RELOADING=1 and READY=1, else it sends READY=1 only once. SIGTERM and
// SIGINT end it with status 0, unless IGNORE_TERM=1.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var reloads atomic.Int64

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	delay, _ := time.ParseDuration(os.Getenv("READY_DELAY"))
	time.Sleep(delay)
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("hostsvc:", err)
		os.Exit(1)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hostsvc pid %d reloads %d\n", os.Getpid(), reloads.Load())
	})
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintln(w, "crashing")
		w.(http.Flusher).Flush()
		os.Exit(1)
	})
	go http.Serve(ln, nil)
	notify("READY=1")
	stdin, _ := os.Readlink("/proc/self/fd/0")
	fmt.Printf("hostsvc ready pid=%d stdin=%s\n", os.Getpid(), stdin)
	for sig := range sigs {
		fmt.Printf("hostsvc signal %v\n", sig)
		switch {
		case sig == syscall.SIGHUP:
			reload()
		case os.Getenv("IGNORE_TERM") != "1":
			os.Exit(0)
		}
	}
}

// reload counts, and follows the sd_notify reload protocol when asked to.
func reload() {
	if os.Getenv("RELOAD_NOTIFY") == "1" {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Sec*1e6+ts.Nsec/1e3, 10))
	}
	reloads.Add(1)
	if os.Getenv("RELOAD_NOTIFY") == "1" {
		notify("READY=1")
	}
}

// notify sends msg to $NOTIFY_SOCKET, if there is one.
func notify(msg string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		fmt.Println("hostsvc: NOTIFY_SOCKET:", err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		fmt.Println("hostsvc: NOTIFY_SOCKET:", err)
	}
}
