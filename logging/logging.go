// Package logging writes a service's output to size-rotated files through
// lumberjack, a line at a time, without ever blocking the service on a
// failing disk.
//
// Each stream (stdout, stderr) is a pipe that upshim holds open across
// respawns, so that nothing written between runs or by a lingering
// grandchild is lost. One reader per pipe frames the bytes into whole
// lines; one writer, on a thread of its own, writes them. A slow disk
// slows the writer, then the readers, then the service (backpressure); a
// failing one makes the writer drop whole lines, count them, and say so in
// the file once writing works again.
//
// The writer's thread takes the service's file-system identity (setfsuid),
// so that a link the service plants where upshim writes can make upshim do
// nothing the service could not do itself. lumberjack opens and renames by
// path and follows links; the guards in file.go and that identity keep its
// known traps (backups named to the millisecond, a deleted file never
// recreated, compression that outlives Close, a .gz that appears before it
// is complete) from reaching users.
package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Config says where and how the service's output is kept.
type Config struct {
	// Name prefixes upshim's own lines: upshim[NAME]:.
	Name string
	// File receives stdout, and stderr unless StderrFile is set.
	File string
	// StderrFile, if set, receives stderr.
	StderrFile string
	// MaxSizeMiB rotates a file before it would grow past this many MiB.
	MaxSizeMiB int
	// MaxBackups keeps this many rotated files; 0 keeps all.
	MaxBackups int
	// MaxAgeDays deletes rotated files older than this; 0 never.
	MaxAgeDays int
	// Compress gzips rotated files.
	Compress bool
	// Timestamps prefixes each line with its RFC 3339 UTC time in
	// microseconds.
	Timestamps bool
	// Console copies every line to Stdout too.
	Console bool
	// Stdout is where Console copies go (upshim's own stdout).
	Stdout io.Writer
	// UID and GID, when not negative, are the identity the files are
	// written with (the service's).
	UID, GID int
}

// chunk is the most a reader takes from its pipe at a time.
const chunk = 256 << 10

// poolSize is how many chunks may wait for the writer: the bound of the
// backpressure buffer, 1 MiB.
const poolSize = 4

// Stream numbers.
const (
	stdout = 0
	stderr = 1
)

// batch is whole lines from one stream, in a pooled buffer.
type batch struct {
	stream int
	buf    *[]byte
	n      int
	sync   chan struct{} // if set, a drain marker: close it once written
	own    bool          // upshim's own message, already on its stderr
}

// Sink owns the pipes, the readers and the writer. Create it with Open;
// it lives as long as upshim.
type Sink struct {
	cfg      Config
	pipes    [2]*os.File // read ends
	writeEnd [2]*os.File // held open across respawns
	batches  chan batch
	free     chan *[]byte
	drainReq [2]chan chan struct{}
	readers  sync.WaitGroup
	writerWG sync.WaitGroup
	requests chan func(*writer)
}

// Open creates or opens the log files (an error here is a configuration
// error: upshim must not start the service), the pipes and the goroutines.
func Open(cfg Config) (*Sink, error) {
	if cfg.MaxSizeMiB <= 0 {
		cfg.MaxSizeMiB = 100
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	s := &Sink{
		cfg:      cfg,
		batches:  make(chan batch, poolSize),
		free:     make(chan *[]byte, poolSize+1),
		requests: make(chan func(*writer)),
	}
	for range poolSize + 1 {
		b := make([]byte, chunk+MaxLine+len(ContinuedMark)+1)
		s.free <- &b
	}
	w := &writer{cfg: cfg, scratch: make([]byte, 0, 2*(chunk+MaxLine))}
	started := make(chan error, 1)
	s.writerWG.Add(1)
	go s.writeLoop(w, started)
	if err := <-started; err != nil {
		s.writerWG.Wait()
		return nil, err
	}
	for i := range s.pipes {
		r, wr, err := os.Pipe()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("--log-file %s: cannot create a pipe for the service's output: %v", cfg.File, err)
		}
		// A larger pipe means fewer, larger reads when the service is busy.
		// (Through Control: Fd would make the read end blocking, and a
		// blocking read cannot be woken by a deadline.)
		if rc, err := r.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
		}
		s.pipes[i], s.writeEnd[i] = r, wr
		s.drainReq[i] = make(chan chan struct{}, 1)
		s.readers.Add(1)
		go s.readLoop(i)
	}
	return s, nil
}

// Stdout and Stderr are the write ends every child gets as fd 1 and 2.
func (s *Sink) Stdout() *os.File { return s.writeEnd[stdout] }

// Stderr is the write end every child gets as fd 2.
func (s *Sink) Stderr() *os.File { return s.writeEnd[stderr] }

// readLoop frames one pipe into whole lines for the writer until EOF.
func (s *Sink) readLoop(stream int) {
	defer s.readers.Done()
	pipe := s.pipes[stream]
	f := newFramer(chunk)
	for {
		n, err := pipe.Read(f.space())
		if n > 0 {
			f.add(n)
			s.pass(stream, f)
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			select {
			case done := <-s.drainReq[stream]:
				pipe.SetReadDeadline(time.Time{})
				s.drainPipe(stream, f)
				s.batches <- batch{stream: stream, sync: done}
			default:
			}
		default: // EOF: every writer is gone; the partial line goes too
			if rest := f.rest(); len(rest) > 0 {
				s.send(stream, rest, "\n")
			}
			return
		}
	}
}

// drainPipe reads what the pipe holds now, without waiting for more.
func (s *Sink) drainPipe(stream int, f *framer) {
	rc, err := s.pipes[stream].SyscallConn()
	if err != nil {
		return
	}
	for {
		var n int
		rc.Control(func(fd uintptr) {
			avail, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
			if err != nil || avail == 0 {
				return
			}
			space := f.space()
			n, _ = unix.Read(int(fd), space[:min(avail, len(space))])
		})
		if n <= 0 {
			return
		}
		f.add(n)
		s.pass(stream, f)
	}
}

// pass hands every whole line the framer has to the writer.
func (s *Sink) pass(stream int, f *framer) {
	for {
		out, cut := f.next()
		if out == nil {
			return
		}
		if cut {
			s.send(stream, out, ContinuedMark+"\n")
		} else {
			s.send(stream, out, "")
		}
		f.done()
	}
}

// send copies lines (and a suffix) into a pooled buffer for the writer;
// waiting for a buffer is the backpressure a slow disk puts on the
// service.
func (s *Sink) send(stream int, lines []byte, suffix string) {
	buf := <-s.free
	n := copy(*buf, lines)
	n += copy((*buf)[n:], suffix)
	s.batches <- batch{stream: stream, buf: buf, n: n}
}

// Message writes one of upshim's own lines (newline included) to the
// stderr stream's file. It never waits for the disk: with the writer
// behind, the line is dropped and counted as lost.
func (s *Sink) Message(line []byte) {
	select {
	case buf := <-s.free:
		n := copy(*buf, line)
		s.batches <- batch{stream: stderr, buf: buf, n: n, own: true}
	default:
	}
}

// Drain returns once everything written to the pipes before the call has
// been written to the files, partial lines aside. Only the supervisor's
// loop calls it: before post-stop, and before upshim exits.
func (s *Sink) Drain() {
	var waits []chan struct{}
	for i, pipe := range s.pipes {
		if pipe == nil {
			continue
		}
		done := make(chan struct{})
		s.drainReq[i] <- done
		pipe.SetReadDeadline(time.Now()) // wakes the reader
		waits = append(waits, done)
	}
	for _, done := range waits {
		<-done
	}
}

// Rotate rotates the files now, as `upshim ctl rotate` asks.
func (s *Sink) Rotate() error {
	errc := make(chan error, 1)
	s.requests <- func(w *writer) { errc <- w.rotateAll() }
	return <-errc
}

// Close closes upshim's write ends, waits (at most a few seconds) for the
// readers to reach EOF, which flushes partial lines, then stops the writer,
// which finishes its compressions.
func (s *Sink) Close() {
	for i, wr := range s.writeEnd {
		if wr != nil {
			wr.Close()
			// Whatever still holds a write end (nothing should, once every
			// descendant is gone) cannot keep upshim from exiting.
			s.pipes[i].SetReadDeadline(time.Now().Add(closeWait))
		}
	}
	s.readers.Wait()
	close(s.batches)
	s.writerWG.Wait()
}

// closeWait bounds how long Close waits for the pipes to drain.
const closeWait = 3 * time.Second

// writeLoop runs the writer on a thread of its own that takes the
// service's file-system identity, so that every file operation, lumberjack's
// included, is checked as the service's would be.
func (s *Sink) writeLoop(w *writer, started chan<- error) {
	defer s.writerWG.Done()
	takeIdentity(s.cfg)
	if err := w.open(); err != nil {
		started <- err
		return
	}
	started <- nil
	for {
		select {
		case b, ok := <-s.batches:
			if !ok {
				w.close()
				return
			}
			if b.sync != nil {
				close(b.sync)
				continue
			}
			w.write(b.stream, (*b.buf)[:b.n], b.own)
			s.free <- b.buf
		case req := <-s.requests:
			req(w)
		}
	}
}

// takeIdentity locks the calling goroutine to its thread for good (the
// thread ends with the goroutine) and gives that thread the service's
// file-system identity: setfsuid and setfsgid are per thread on Linux, and
// they drop the capabilities that would let root's files be touched.
func takeIdentity(cfg Config) {
	runtime.LockOSThread()
	if cfg.UID >= 0 && cfg.GID >= 0 {
		unix.Setfsgid(cfg.GID)
		unix.Setfsuid(cfg.UID)
	}
}

// writer writes batches to the files. Only writeLoop's goroutine uses it.
type writer struct {
	cfg     Config
	files   [2]*file // by stream; both the same file without StderrFile
	scratch []byte
	stamp   [32]byte
}

// open opens the files; an error names the flag and the path.
func (w *writer) open() error {
	main, err := newFile(w.cfg, w.cfg.File)
	if err != nil {
		return fmt.Errorf("--log-file %s: %v", w.cfg.File, err)
	}
	w.files = [2]*file{main, main}
	if w.cfg.StderrFile != "" {
		errf, err := newFile(w.cfg, w.cfg.StderrFile)
		if err != nil {
			main.close()
			return fmt.Errorf("--log-stderr %s: %v", w.cfg.StderrFile, err)
		}
		w.files[stderr] = errf
	}
	return nil
}

// write writes one batch of whole lines, with timestamps if asked. The
// console copy leaves out upshim's own lines, which it wrote to its stderr
// already.
func (w *writer) write(stream int, lines []byte, own bool) {
	if w.cfg.Timestamps {
		lines = w.stampLines(lines)
	}
	if w.cfg.Console && !own {
		w.cfg.Stdout.Write(lines)
	}
	w.files[stream].write(lines)
}

// stampLines prefixes each line with the time, into scratch.
func (w *writer) stampLines(lines []byte) []byte {
	stamp := time.Now().UTC().AppendFormat(w.stamp[:0], "2006-01-02T15:04:05.000000Z")
	stamp = append(stamp, ' ')
	out := w.scratch[:0]
	for len(lines) > 0 {
		i := indexNewline(lines)
		out = append(out, stamp...)
		out = append(out, lines[:i+1]...)
		lines = lines[i+1:]
	}
	w.scratch = out
	return out
}

// rotateAll rotates every file.
func (w *writer) rotateAll() error {
	err := w.files[stdout].rotate()
	if w.files[stderr] != w.files[stdout] {
		err = errors.Join(err, w.files[stderr].rotate())
	}
	return err
}

// close closes the files and waits for their compressions.
func (w *writer) close() {
	w.files[stdout].close()
	if w.files[stderr] != w.files[stdout] {
		w.files[stderr].close()
	}
}

// indexNewline is the end of the first line of b (its last byte if b
// ends without a newline).
func indexNewline(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i
	}
	return len(b) - 1
}
