//go:build linux

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
// the file and on upshim's stderr once writing works again, or at exit.
// The console copy (--log-console) has a bounded buffer of its own: a
// stdout nobody reads loses console lines, never file lines.
//
// The writer's thread takes the service's file-system identity (its groups,
// setfsgid, setfsuid), so that a link the service plants where upshim
// writes can make upshim do nothing the service could not do itself. lumberjack opens and renames by
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
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
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
	// written with (the service's), with the supplementary groups Groups
	// unless KeepGroups (the service keeps upshim's).
	UID, GID   int
	Groups     []int
	KeepGroups bool
	// InitOwned says that upshim, as the init did, owns the file and its
	// directory (a job's console log in /var/log/upstart): they are
	// written as upshim, not with the service's identity, and the
	// directory must be one that only root can write.
	InitOwned bool
	// Say prints one of upshim's own lines about the logs, without prefix
	// or newline; serious says it reports lost output, which --quiet must
	// not hide. Nil prints to os.Stderr with the prefix upshim[NAME]:. It
	// is called from the logs' own goroutines.
	Say func(serious bool, msg string)
}

// say prints msg as Config.Say says.
func (c *Config) say(serious bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.Say != nil {
		c.Say(serious, msg)
		return
	}
	fmt.Fprintf(os.Stderr, "upshim[%s]: %s\n", c.Name, msg)
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
	ownFree  chan *[]byte // upshim's own lines have buffers of their own
	ownLost  atomic.Int64 // own lines dropped since the last one written
	drainReq [2]chan chan struct{}
	readers  sync.WaitGroup
	writerWG sync.WaitGroup
	requests chan func(*writer)
	closing  atomic.Bool // Close has begun: a read deadline means stop
}

// The log defaults, which shim/defaults.go lists with every other default:
// they are here because shim imports logging, not the other way round.
const (
	// DefaultMaxSizeMiB is --log-max-size's default, and the size a Config
	// without one rotates at.
	DefaultMaxSizeMiB = 100
	// DefaultMaxBackups is --log-max-backups's default.
	DefaultMaxBackups = 10
)

// Open creates or opens the log files (an error here is a configuration
// error: upshim must not start the service), the pipes and the goroutines.
func Open(cfg Config) (*Sink, error) {
	if cfg.MaxSizeMiB <= 0 {
		cfg.MaxSizeMiB = DefaultMaxSizeMiB
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.InitOwned {
		cfg.UID, cfg.GID, cfg.Groups = -1, -1, nil
	}
	s := &Sink{
		cfg:      cfg,
		batches:  make(chan batch, poolSize+ownBuffers),
		free:     make(chan *[]byte, poolSize+1),
		ownFree:  make(chan *[]byte, ownBuffers),
		requests: make(chan func(*writer)),
	}
	for range poolSize + 1 {
		b := make([]byte, chunk+MaxLine+len(ContinuedMark)+1)
		s.free <- &b
	}
	for range ownBuffers {
		b := make([]byte, ownLineMax)
		s.ownFree <- &b
	}
	w := &writer{cfg: cfg, scratch: make([]byte, 0, 2*(chunk+MaxLine))}
	if cfg.Console {
		w.console = newConsole(cfg.Stdout)
	}
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
			return nil, fmt.Errorf("--log-file %s: cannot create a pipe for the service's output: %w", cfg.File, err)
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
				continue
			default:
			}
			if s.closing.Load() {
				// Close's deadline: a process that is not upshim's
				// descendant still holds a write end. Take what the pipe
				// holds and stop; past its deadline the poller fails every
				// read at once, so reading on would spin, and EOF might
				// never come.
				s.drainPipe(stream, f)
				s.flushRest(stream, f)
				return
			}
		default: // EOF: every writer is gone; the partial line goes too
			s.flushRest(stream, f)
			return
		}
	}
}

// flushRest passes the partial line left at the end, with a newline.
func (s *Sink) flushRest(stream int, f *framer) {
	if rest := f.rest(); len(rest) > 0 {
		s.send(stream, rest, "\n")
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

// ownBuffers is how many of upshim's own lines may wait for the writer at
// once; ownLineMax is the most of one that is kept. They do not share the
// service's buffers, so that a service that keeps the writer busy cannot
// crowd upshim's lines out.
const (
	ownBuffers = 16
	ownLineMax = 4096
)

// Message writes one of upshim's own lines (newline included) to the
// stderr stream's file. It never waits for the disk: with the writer that
// far behind, the line is dropped (it is on upshim's stderr already), and
// the next line that gets through says how many were.
func (s *Sink) Message(line []byte) {
	select {
	case buf := <-s.ownFree:
		n := 0
		if lost := s.ownLost.Swap(0); lost > 0 {
			n = copy(*buf, fmt.Sprintf("upshim[%s]: (%d of upshim's own lines left out here: the log writer was behind)\n", s.cfg.Name, lost))
		}
		if len(line) > len(*buf)-n {
			line = append(line[:len(*buf)-n-1:len(*buf)-n-1], '\n')
		}
		n += copy((*buf)[n:], line)
		s.batches <- batch{stream: stderr, buf: buf, n: n, own: true}
	default:
		s.ownLost.Add(1)
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
// which reports lost output and finishes its compressions and the console
// copy (that one, too, for a few seconds at most).
func (s *Sink) Close() {
	s.closing.Store(true)
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
	if err := takeIdentity(s.cfg); err != nil {
		started <- err
		return
	}
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
			if b.own {
				s.ownFree <- b.buf
			} else {
				s.free <- b.buf
			}
		case req := <-s.requests:
			req(w)
		}
	}
}

// takeIdentity locks the calling goroutine to its thread for good (the
// thread ends with the goroutine) and gives that thread the service's
// file-system identity: its supplementary groups, then setfsgid and
// setfsuid. All three are per thread on Linux (unix.Setgroups is the raw
// call; syscall.Setgroups would change every thread of upshim), and
// setfsuid drops the capabilities that would let root's files be touched.
// Neither setfs call reports failure, so both are read back.
func takeIdentity(cfg Config) error {
	runtime.LockOSThread()
	if cfg.UID < 0 || cfg.GID < 0 {
		return nil
	}
	if !cfg.KeepGroups && os.Geteuid() == 0 {
		if err := unix.Setgroups(cfg.Groups); err != nil {
			return fmt.Errorf("cannot take the groups %v of the service to write its logs: %v", cfg.Groups, err)
		}
	}
	unix.Setfsgid(cfg.GID)
	unix.Setfsuid(cfg.UID)
	gid, _ := unix.SetfsgidRetGid(-1) // -1 changes nothing: the current one
	uid, _ := unix.SetfsuidRetUid(-1)
	if uid != cfg.UID || gid != cfg.GID {
		return fmt.Errorf("cannot take the identity %d:%d of the service to write its logs (have %d:%d)", cfg.UID, cfg.GID, uid, gid)
	}
	return nil
}

// writer writes batches to the files. Only writeLoop's goroutine uses it.
type writer struct {
	cfg     Config
	files   [2]*file // by stream; both the same file without StderrFile
	console *console // with Console
	scratch []byte
	stamp   [32]byte
}

// open opens the files; an error names the flag and the path.
func (w *writer) open() error {
	same := func() error {
		return fmt.Errorf("--log-file %s and --log-stderr %s are the same file; leave out --log-stderr to log both streams there", w.cfg.File, w.cfg.StderrFile)
	}
	// Two lumberjacks rotating one file would overwrite each other's
	// backups: the same path, however written, is refused before anything
	// is created, and the same file under another name once the first
	// exists.
	if w.cfg.StderrFile != "" && absClean(w.cfg.File) == absClean(w.cfg.StderrFile) {
		return same()
	}
	main, err := newFile(w.cfg, w.cfg.File)
	if err != nil {
		return fmt.Errorf("--log-file %s: %w", w.cfg.File, err)
	}
	w.files = [2]*file{main, main}
	if w.cfg.StderrFile != "" {
		var st unix.Stat_t
		if unix.Stat(w.cfg.StderrFile, &st) == nil && uint64(st.Dev) == main.dev && st.Ino == main.ino {
			main.close()
			return same()
		}
		errf, err := newFile(w.cfg, w.cfg.StderrFile)
		if err != nil {
			main.close()
			return fmt.Errorf("--log-stderr %s: %w", w.cfg.StderrFile, err)
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
	if w.console != nil && !own {
		w.console.put(lines)
	}
	w.files[stream].write(lines, own)
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

// close stops the console copy, reports what it and the files lost, and
// closes the files, waiting for their compressions.
func (w *writer) close() {
	if w.console != nil {
		if lines, n := w.console.close(); lines > 0 || n > 0 {
			what := fmt.Sprintf("--log-console: dropped %d lines (%d bytes) that stdout did not take in time", lines, n)
			w.cfg.say(false, "%s", what)
			w.files[stderr].write(fmt.Appendf(nil, "upshim[%s]: %s\n", w.cfg.Name, what), true)
		}
	}
	w.files[stdout].close()
	if w.files[stderr] != w.files[stdout] {
		w.files[stderr].close()
	}
}

// absClean is path made absolute and clean, for comparing paths.
func absClean(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// indexNewline is the end of the first line of b (its last byte if b
// ends without a newline).
func indexNewline(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i
	}
	return len(b) - 1
}
