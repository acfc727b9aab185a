package logging

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	ino        uint64    // the inode at path when we last looked
	checked    time.Time // when we last looked
	size       int64     // bytes in the current file, as lumberjack counts
	lastRotate time.Time

	lostLines, lostBytes int
	lostWhy              string
	partial              bool // a failed write left a partial line

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
			Filename:   path,
			MaxSize:    cfg.MaxSizeMiB,
			MaxBackups: cfg.MaxBackups,
			MaxAge:     cfg.MaxAgeDays,
			// upshim compresses by itself: lumberjack's compression
			// outlives Close and shows a .gz before it is complete.
			Compress: false,
		},
	}
	if err := f.prepare(); err != nil {
		return nil, err
	}
	if cfg.Compress {
		f.compress = make(chan string, 64)
		f.zipping.Add(1)
		go f.compressLoop()
	}
	return f, nil
}

// prepare makes sure that what is at path is a regular file upshim may
// append to before lumberjack opens it: a symbolic link or a hard link
// planted there is removed (the name only: the file it points to is left
// alone), a missing file is created with mode 0640, without following
// links, and its directory too.
func (f *file) prepare() error {
	var st unix.Stat_t
	err := unix.Lstat(f.path, &st)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink > 1) {
		// Not one of ours: a link or a special file put where the log goes.
		if err := unix.Unlink(f.path); err != nil {
			return fmt.Errorf("%s is not a regular file and cannot be removed: %v", f.path, err)
		}
		fmt.Fprintf(os.Stderr, "upshim[%s]: warning: %s was a link or not a regular file; replaced it\n", f.cfg.Name, f.path)
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
	f.open, f.ino, f.size = true, st.Ino, st.Size
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
	return f.prepare()
}

// write writes whole lines. On failure the lines are dropped and counted,
// and the next write that works first says how many were lost and why.
func (f *file) write(lines []byte) {
	if err := f.check(); err != nil {
		f.lose(lines, 0, err)
		return
	}
	if f.lostLines > 0 || f.lostBytes > 0 {
		if !f.writeRaw(f.lossLine()) {
			f.lose(lines, 0, nil)
			return
		}
		f.lostLines, f.lostBytes, f.partial = 0, 0, false
	}
	f.writeRaw(lines)
}

// writeRaw writes p, rotating first if p would not fit, and reports
// whether all of it was written.
func (f *file) writeRaw(p []byte) bool {
	if f.size+int64(len(p)) >= f.max {
		if err := f.rotate(); err != nil {
			f.lose(p, 0, err)
			return false
		}
	}
	n, err := f.lj.Write(p)
	f.size += int64(n)
	if err != nil {
		f.lose(p, n, err)
		return false
	}
	return true
}

// lose counts the lines of p from byte n on as lost.
func (f *file) lose(p []byte, n int, err error) {
	if n > 0 {
		f.partial = true
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
	return fmt.Appendf(b, "upshim[%s]: lost %d lines (%d bytes) of output: %s\n", f.cfg.Name, f.lostLines, f.lostBytes, f.lostWhy)
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
		f.ino = st.Ino
	}
	if f.compress != nil {
		for b := range f.backups() {
			if !before[b] {
				f.compress <- b
			}
		}
	}
	return nil
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
	takeIdentity(f.cfg)
	for name := range f.compress {
		if err := gzipFile(name); err != nil {
			fmt.Fprintf(os.Stderr, "upshim[%s]: warning: compress %s: %v\n", f.cfg.Name, name, err)
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

// close closes the file and waits for the compressions it started.
func (f *file) close() {
	f.lj.Close()
	if f.compress != nil {
		close(f.compress)
		f.zipping.Wait()
	}
}
