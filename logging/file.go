//go:build linux

package logging

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/natefinch/lumberjack.v2"
)

// file is one rotated log file: lumberjack plus the guards it lacks.
type file struct {
	cfg  Config
	path string
	lj   *lumberjack.Logger
	max  int64

	open       bool      // lumberjack has (or will open) the file we checked
	dev, ino   uint64    // the file at path when we last looked
	checked    time.Time // when we last looked
	size       int64     // bytes in the current file, as lumberjack counts
	lastRotate time.Time

	lostLines, lostBytes int
	lostWhy              string
	partial              bool // a failed write left a partial line
	blocked              bool // something not a file is at path: said once

	compress chan string
	zipping  sync.WaitGroup
}

// checkEvery spaces the looks at the path that notice a file deleted or
// replaced from outside: a busy service writes many batches in between.
const checkEvery = 50 * time.Millisecond

// fileMode is the mode of a log file upshim creates.
const fileMode = 0o640

func newFile(cfg Config, path string) (*file, error) {
	f := &file{
		cfg:  cfg,
		path: path,
		max:  int64(cfg.MaxSizeMiB) << 20,
		lj: &lumberjack.Logger{
			Filename: path,
			MaxSize:  cfg.MaxSizeMiB,
			// upshim prunes and compresses by itself: lumberjack does both
			// on a goroutine of its own, which has root's identity rather
			// than the writer's, and its compression outlives Close and
			// shows a .gz before it is complete.
			MaxBackups: 0,
			MaxAge:     0,
			Compress:   false,
		},
	}
	if err := f.prepare(true); err != nil {
		return nil, err
	}
	if cfg.Compress {
		f.compress = make(chan string, 64)
		f.zipping.Add(1)
		go f.compressLoop()
	}
	return f, nil
}

// notRegular is what is at a log path that upshim neither writes nor
// removes: a device, a FIFO, a socket, a directory.
type notRegular string

func (e notRegular) Error() string { return "is " + string(e) + ", not a regular file" }

// kindOf names a file type for notRegular.
func kindOf(mode uint32) notRegular {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a file"
}

// prepare makes sure that what is at path is a regular file upshim may
// append to before lumberjack opens it: a symbolic link or a hard link
// there is removed (the name only: the file it points to is left alone),
// as one the service planted would be; a missing file is created with mode
// 0640, without following links, and its directory too. Anything else
// (a device such as /dev/null, a FIFO a log shipper reads, a socket) is
// never removed: an error. So is, at start-up (first), a symbolic link to
// such a thing (/dev/stdout): a link the service plants later can only
// stand for a file the service itself can open.
func (f *file) prepare(first bool) error {
	if first && f.cfg.InitOwned {
		if err := rootOnlyDir(filepath.Dir(f.path)); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	err := unix.Lstat(f.path, &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return kindOf(st.Mode)
	}
	if err == nil && first && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		var target unix.Stat_t
		if unix.Stat(f.path, &target) == nil && target.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("is a symbolic link to %s, not a regular file", strings.TrimPrefix(string(kindOf(target.Mode)), "not "))
		}
	}
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink > 1) {
		// A link put where the log goes: not one of ours.
		if err := unix.Unlink(f.path); err != nil {
			return fmt.Errorf("is a link and cannot be removed: %v", err)
		}
		f.cfg.say(false, "warning: %s was a link; replaced it", f.path)
		err = unix.ENOENT
	}
	if err == unix.ENOENT {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		fd, err := unix.Open(f.path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, fileMode)
		if err != nil {
			return err
		}
		unix.Fchmod(fd, fileMode) // whatever the umask
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return err
		}
		unix.Close(fd)
	} else if err != nil {
		return err
	} else if st.Size >= f.max {
		// lumberjack would rotate it at once; count it as it will.
		st.Size = f.max
	}
	// Check that we may write it, as lumberjack will try.
	fd, err := unix.Open(f.path, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	f.open, f.dev, f.ino, f.size = true, uint64(st.Dev), st.Ino, st.Size
	return nil
}

// rootOnlyDir checks that dir, where upshim writes as root on the init's
// behalf, belongs to root and that no one else can write it: there, no one
// else can plant a link either. A missing dir is created so.
func rootOnlyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s must be a directory that only root can write", dir)
	}
	return nil
}

// check notices that the file was deleted, renamed or replaced from
// outside: lumberjack would go on writing to the old one for ever.
func (f *file) check() error {
	if f.open && time.Since(f.checked) < checkEvery {
		return nil
	}
	f.checked = time.Now()
	if f.open {
		var st unix.Stat_t
		if err := unix.Lstat(f.path, &st); err == nil && st.Ino == f.ino && st.Nlink == 1 {
			return nil
		}
		f.lj.Close()
		f.open = false
	}
	err := f.prepare(false)
	var nr notRegular
	if errors.As(err, &nr) {
		err = fmt.Errorf("%s %v", f.path, err)
		if !f.blocked {
			f.cfg.say(false, "warning: %v; its lines are dropped until it is gone", err)
		}
	}
	f.blocked = nr != ""
	return err
}

// write writes whole lines. On failure the lines are dropped and counted
// (upshim's own, own, are on its stderr already: they are dropped, not
// counted), and the next write that works first says how many were lost
// and why.
func (f *file) write(lines []byte, own bool) {
	if err := f.check(); err != nil {
		f.lose(lines, 0, err, own)
		return
	}
	if f.lostLines > 0 {
		if err := f.report(); err != nil {
			f.lose(lines, 0, err, own)
			return
		}
	}
	if n, err := f.writeRaw(lines); err != nil {
		f.lose(lines, n, err, own)
	}
}

// report writes the loss line to the file, then to upshim's stderr, and
// starts counting again. A report that fails is not output: it is tried
// again, with the new totals, at the next write.
func (f *file) report() error {
	line := f.lossLine()
	n, err := f.writeRaw(line)
	if err != nil {
		f.partial = f.partial || n > 0
		f.lostWhy = reason(err)
		return err
	}
	f.cfg.say(true, "%s", f.loss())
	f.lostLines, f.lostBytes, f.partial = 0, 0, false
	return nil
}

// writeRaw writes p, rotating first if p would not fit; n is how much of
// it was written.
func (f *file) writeRaw(p []byte) (n int, err error) {
	if f.size+int64(len(p)) >= f.max {
		if err := f.rotate(); err != nil {
			return 0, err
		}
	}
	n, err = f.lj.Write(p)
	f.size += int64(n)
	return n, err
}

// lose counts the lines of p from byte n on as lost, unless they are
// upshim's own.
func (f *file) lose(p []byte, n int, err error, own bool) {
	if n > 0 {
		f.partial = true
	}
	if own {
		return
	}
	f.lostLines += bytes.Count(p[n:], []byte{'\n'})
	f.lostBytes += len(p) - n
	if err != nil {
		f.lostWhy = reason(err)
	}
}

// lossLine is the line that reports lost output once writing works again.
func (f *file) lossLine() []byte {
	var b []byte
	if f.partial {
		b = append(b, '\n')
	}
	return fmt.Appendf(b, "upshim[%s]: %s\n", f.cfg.Name, f.loss())
}

// loss says what was lost since the last report.
func (f *file) loss() string {
	return fmt.Sprintf("lost %d lines (%d bytes) of output: %s", f.lostLines, f.lostBytes, f.lostWhy)
}

// reason turns an error into its errno text where there is one.
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var perr *os.PathError
	if errors.As(err, &perr) {
		return perr.Err.Error()
	}
	return err.Error()
}

// rotate moves the current file aside through lumberjack. Its backups are
// named to the millisecond, so that two rotations in the same millisecond
// would overwrite one another: rotate waits for the next one first.
func (f *file) rotate() error {
	f.checked = time.Time{} // look now: lumberjack is about to rename by path
	if err := f.check(); err != nil {
		return err
	}
	now := time.Now().UTC()
	if last := f.lastRotate; !last.IsZero() && now.Truncate(time.Millisecond).Equal(last.Truncate(time.Millisecond)) {
		time.Sleep(last.Truncate(time.Millisecond).Add(time.Millisecond).Sub(now))
	}
	before := f.backups()
	if err := f.lj.Rotate(); err != nil {
		f.open = false
		return err
	}
	f.lastRotate = time.Now().UTC()
	f.size = 0
	var st unix.Stat_t
	if err := unix.Lstat(f.path, &st); err == nil {
		f.dev, f.ino = uint64(st.Dev), st.Ino
	}
	if f.compress != nil {
		// Pruned after the compression, on its thread.
		for b := range f.backups() {
			if !before[b] {
				f.compress <- b
			}
		}
	} else {
		f.prune()
	}
	return nil
}

// backupTime is how lumberjack names a backup: NAME-TIME.EXT, in UTC.
const backupTime = "2006-01-02T15-04-05.000"

// prune deletes the backups past --log-max-backups and older than
// --log-max-age, as lumberjack would, but on a thread with the writer's
// identity: a backup the service could not delete itself stays.
func (f *file) prune() {
	if f.cfg.MaxBackups <= 0 && f.cfg.MaxAgeDays <= 0 {
		return
	}
	dir := filepath.Dir(f.path)
	ext := filepath.Ext(f.path)
	prefix := strings.TrimSuffix(filepath.Base(f.path), ext) + "-"
	type backup struct {
		name, base string // base: without .gz
		t          time.Time
	}
	var all []backup
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".gz")
		if e.IsDir() || !strings.HasPrefix(base, prefix) || !strings.HasSuffix(base, ext) {
			continue
		}
		t, err := time.Parse(backupTime, base[len(prefix):len(base)-len(ext)])
		if err == nil {
			all = append(all, backup{e.Name(), base, t})
		}
	}
	slices.SortStableFunc(all, func(a, b backup) int { return b.t.Compare(a.t) }) // newest first
	cutoff := time.Now().Add(-time.Duration(f.cfg.MaxAgeDays) * 24 * time.Hour)
	kept := map[string]bool{} // a backup and its .gz count once
	for _, b := range all {
		old := f.cfg.MaxAgeDays > 0 && b.t.Before(cutoff)
		over := f.cfg.MaxBackups > 0 && !kept[b.base] && len(kept) >= f.cfg.MaxBackups
		if !old && !over {
			kept[b.base] = true
			continue
		}
		if err := unix.Unlink(filepath.Join(dir, b.name)); err != nil && err != unix.ENOENT {
			f.cfg.say(false, "warning: cannot remove old log %s: %v", filepath.Join(dir, b.name), err)
		}
	}
}

// backups lists the uncompressed backups lumberjack has made of path.
func (f *file) backups() map[string]bool {
	dir := filepath.Dir(f.path)
	base := filepath.Base(f.path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	entries, _ := os.ReadDir(dir)
	out := map[string]bool{}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ext) && n != base {
			out[filepath.Join(dir, n)] = true
		}
	}
	return out
}

// compressLoop gzips backups one at a time, on a thread with the writer's
// file-system identity. A .gz appears only once complete: it is written
// under a hidden name that lumberjack does not count, then renamed.
func (f *file) compressLoop() {
	defer f.zipping.Done()
	if err := takeIdentity(f.cfg); err != nil {
		f.cfg.say(false, "warning: backups left uncompressed: %v", err)
		for range f.compress {
		}
		return
	}
	for name := range f.compress {
		if err := gzipFile(name); err != nil {
			f.cfg.say(false, "warning: compress %s: %v", name, err)
		}
		if len(f.compress) == 0 {
			f.prune()
		}
	}
}

// gzipFile compresses name into name.gz and removes name.
func gzipFile(name string) error {
	src, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := filepath.Join(filepath.Dir(name), ".upshim-"+strconv.Itoa(os.Getpid())+"-"+filepath.Base(name)+".gz")
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(dst)
	_, err = io.Copy(zw, src)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name+".gz")
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Remove(name)
}

// close reports output lost since the last write that worked (in the file
// if it can be written now, on upshim's stderr in any case), then closes
// the file and waits for the compressions it started.
func (f *file) close() {
	if f.lostLines > 0 {
		err := f.check()
		if err == nil {
			err = f.report()
		}
		if err != nil {
			f.cfg.say(true, "%s", f.loss())
		}
	}
	f.lj.Close()
	if f.compress != nil {
		close(f.compress)
		f.zipping.Wait()
	}
}
