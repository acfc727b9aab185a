// Command naivehttpserver is a tiny HTTP server to try upshim with. It
// behaves the way an upstart job expects of a service: it stays in the
// foreground, is usable as soon as it is started, reloads on SIGHUP without
// changing its pid, and exits cleanly on SIGTERM. It can also be told to
// crash, so that upshim's respawn can be watched:
//
//	upshim --respawn-limit 10/5 -- ./naivehttpserver
//	curl localhost:8080/crash; curl localhost:8080/
//
// Endpoints: / answers with the pid (which changes after a respawn) and the
// number of reloads, /crash answers and then exits with status 1, /healthz
// answers "ok". The address comes from -addr, else $ADDR, else
// 127.0.0.1:8080; but a socket passed with systemd's socket-activation
// protocol (upshim --listen, a systemd .socket unit) comes first, so that
// connections made while it is down wait for the next one:
//
//	upshim --listen 127.0.0.1:8080 --respawn-limit 10/5 -- ./naivehttpserver
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// shutdownTimeout bounds the graceful shutdown. It is shorter than upshim's
// default --kill-timeout (5s) so that a SIGTERM ends in a clean exit 0
// rather than in upshim's SIGKILL.
const shutdownTimeout = 4 * time.Second

// reloads counts SIGHUPs. A real server would re-read its configuration;
// this one only counts, so that a reload can be seen on /.
var reloads atomic.Int64

// logger writes to stdout, which upshim passes straight through, with the
// pid in every line so that a respawn is visible in the log.
var logger = log.New(os.Stdout, "naivehttpserver["+strconv.Itoa(os.Getpid())+"]: ", log.LstdFlags|log.Lmsgprefix)

func main() {
	defaultAddr := "127.0.0.1:8080"
	if v := os.Getenv("ADDR"); v != "" {
		defaultAddr = v
	}
	addr := flag.String("addr", defaultAddr, "`address` to listen on (default from $ADDR)")
	flag.Parse()

	// Ask for the signals before listening: once the port answers, a SIGTERM
	// must already mean a graceful shutdown rather than Go's default death.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)

	// Listen before serving, so that a port already in use is a plain exit 1
	// (which upshim respawns, then gives up on) instead of a log line later.
	ln, err := inheritedListener()
	if ln == nil && err == nil {
		ln, err = net.Listen("tcp", *addr)
	}
	if err != nil {
		logger.Printf("%v", err)
		os.Exit(1)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	mux.HandleFunc("/crash", crash)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := &http.Server{Handler: logRequests(mux), ReadHeaderTimeout: 10 * time.Second}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Printf("listening on http://%s", ln.Addr())

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				logger.Printf("reloading (reload %d)", reloads.Add(1))
				continue
			}
			// SIGTERM: stop accepting, let requests in flight finish, exit 0.
			// Exit 0 tells upshim the stop went well.
			logger.Printf("got SIGTERM; shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				logger.Printf("shutdown: %v", err)
				os.Exit(1)
			}
			logger.Printf("bye")
			os.Exit(0)
		case err := <-served:
			logger.Printf("serve: %v", err)
			os.Exit(1)
		}
	}
}

// inheritedListener returns the socket passed on fd 3 by the socket-
// activation protocol, or nil when there is none: LISTEN_PID must be this
// process (the variables may have been meant for a parent). The variables
// are unset, so that no child of this server takes fd 3 for its own.
func inheritedListener() (net.Listener, error) {
	pid, fds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pid != strconv.Itoa(os.Getpid()) || fds == "" || fds == "0" {
		return nil, nil
	}
	// FileListener works on a close-on-exec duplicate; fd 3 itself is
	// not needed any more.
	f := os.NewFile(3, "LISTEN_FDS")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("LISTEN_FDS: fd 3: %v", err)
	}
	return ln, nil
}

// hello answers with the pid, which changes when upshim respawns the server,
// and the number of reloads, which grows on SIGHUP while the pid stays.
func hello(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	fmt.Fprintf(w, "hello from naivehttpserver pid %d\nreloads: %d\n", os.Getpid(), reloads.Load())
}

// crash answers, then exits with status 1, as a service that fails would.
// The body has a Content-Length and is flushed before the exit, so the
// client gets a complete answer rather than a reset connection.
func crash(w http.ResponseWriter, r *http.Request) {
	const body = "crashing\n"
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Connection", "close")
	io.WriteString(w, body)
	w.(http.Flusher).Flush()
	logger.Printf("crashing on request (exit 1)")
	os.Exit(1)
}

// logRequests writes one line per request, before the handler runs, so that
// /crash is logged too.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		next.ServeHTTP(w, r)
	})
}
