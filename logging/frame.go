//go:build linux

package logging

import "bytes"

// MaxLine is the longest line written whole, newline included. A longer
// one is cut into pieces of MaxLine bytes, each but the last followed by
// ContinuedMark and a newline, so that a reader can join them again.
const MaxLine = 64 << 10

// ContinuedMark ends every piece of a cut line but the last.
const ContinuedMark = " \\"

// framer turns a byte stream into whole lines. It keeps the bytes after
// the last newline (a partial line) until the rest comes, and allocates
// nothing after newFramer: each read lands in buf right after what is
// still held.
//
// Use: read into space(), add(n), then take next() and done() in turn
// until next returns nothing, and read again.
type framer struct {
	buf  []byte // unwritten input, starting at a line's start
	held int    // bytes of input in buf
	used int    // bytes next handed out, dropped by done
}

// newFramer returns a framer that reads up to size bytes at a time.
func newFramer(size int) *framer { return &framer{buf: make([]byte, size+MaxLine)} }

// space is where the next read goes.
func (f *framer) space() []byte { return f.buf[f.held:] }

// add records n bytes read into space().
func (f *framer) add(n int) { f.held += n }

// next returns the next thing to write: whole lines, or (cut) a piece of
// an overlong line, which must be followed by ContinuedMark and a newline.
// It returns nil when it needs more input. The slice is valid until done.
func (f *framer) next() (out []byte, cut bool) {
	// Fast path: no line can be MaxLine long if every aligned window of
	// MaxLine/2 bytes holds a newline, which a few IndexByte calls show
	// where a line-by-line scan would take thousands.
	if last := bytes.LastIndexByte(f.buf[:f.held], '\n'); last >= 0 && shortLines(f.buf[:last+1]) {
		f.used = last + 1
		return f.buf[:last+1], false
	}
	pos := 0
	for {
		j := bytes.IndexByte(f.buf[pos:f.held], '\n')
		if j < 0 {
			break
		}
		if j >= MaxLine {
			if pos > 0 {
				break // write the lines before the long one first
			}
			f.used = MaxLine
			return f.buf[:MaxLine], true
		}
		pos += j + 1
	}
	if pos > 0 {
		f.used = pos
		return f.buf[:pos], false
	}
	if f.held >= MaxLine {
		f.used = MaxLine
		return f.buf[:MaxLine], true
	}
	return nil, false
}

// done drops what next handed out.
func (f *framer) done() {
	if f.used > 0 {
		f.held = copy(f.buf, f.buf[f.used:f.held])
		f.used = 0
	}
}

// rest returns the partial line left when the stream ends, and forgets it.
func (f *framer) rest() []byte {
	out := f.buf[:f.held]
	f.held = 0
	return out
}

// shortLines reports whether every line of b (which ends with a newline)
// is shorter than MaxLine: a line of MaxLine bytes or more would cover a
// whole aligned window of MaxLine/2 bytes, and every window holds a
// newline. It may say false for lines between MaxLine/2 and MaxLine; the
// caller then looks line by line.
func shortLines(b []byte) bool {
	const window = MaxLine / 2
	for at := 0; at+window <= len(b); at += window {
		if bytes.IndexByte(b[at:at+window], '\n') < 0 {
			return false
		}
	}
	return true
}
