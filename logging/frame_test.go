//go:build linux

package logging

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

// feed runs input through a framer in chunks of the given sizes and
// returns what it would write, marks included, and the partial rest.
func feed(input []byte, sizes func() int) (out []byte, rest []byte) {
	f := newFramer(chunk)
	for len(input) > 0 {
		space := f.space()
		n := min(sizes(), len(space), len(input))
		copy(space, input[:n])
		input = input[n:]
		f.add(n)
		for {
			lines, cut := f.next()
			if lines == nil {
				break
			}
			out = append(out, lines...)
			if cut {
				out = append(out, ContinuedMark+"\n"...)
			}
			f.done()
		}
	}
	return out, append([]byte(nil), f.rest()...)
}

func TestFramerRandomChunks(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var input bytes.Buffer
	for i := range 20000 {
		input.WriteString(strings.Repeat("x", rng.Intn(300)))
		input.WriteString("line ")
		input.WriteString(strings.Repeat("y", i%7))
		input.WriteByte('\n')
	}
	input.WriteString("partial")
	for _, max := range []int{1, 7, 100, 4096, chunk} {
		out, rest := feed(input.Bytes(), func() int { return 1 + rng.Intn(max) })
		if want := input.Bytes()[:input.Len()-len("partial")]; !bytes.Equal(out, want) {
			t.Fatalf("chunks up to %d: output differs from the whole lines of the input", max)
		}
		if string(rest) != "partial" {
			t.Fatalf("chunks up to %d: rest %q", max, rest)
		}
	}
}

func TestFramerLongLines(t *testing.T) {
	long := strings.Repeat("a", 2*MaxLine+123)
	input := []byte("short\n" + long + "\nafter\n")
	out, rest := feed(input, func() int { return 5000 })
	if len(rest) != 0 {
		t.Fatalf("rest %d bytes", len(rest))
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	want := []string{"short", strings.Repeat("a", MaxLine) + ContinuedMark, strings.Repeat("a", MaxLine) + ContinuedMark,
		strings.Repeat("a", 2*MaxLine+123-2*MaxLine), "after"}
	// The pieces hold MaxLine bytes; the last piece ends with the newline.
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d", len(lines), len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %d bytes, want %d", i, len(lines[i]), len(want[i]))
		}
	}
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte("a\nbc\n\nd"), uint8(3))
	f.Add([]byte(strings.Repeat("z", MaxLine+5)+"\n"), uint8(200))
	f.Fuzz(func(t *testing.T, input []byte, step uint8) {
		n := int(step) + 1
		out, rest := feed(input, func() int { return n })
		// Taking the marks out and the rest back gives the input.
		joined := bytes.ReplaceAll(out, []byte(ContinuedMark+"\n"), nil)
		joined = append(joined, rest...)
		if !bytes.Equal(joined, input) && !bytes.Contains(input, []byte(ContinuedMark+"\n")) {
			t.Fatalf("framing lost or changed bytes")
		}
		for _, line := range bytes.SplitAfter(out, []byte("\n")) {
			if len(line) > MaxLine+len(ContinuedMark)+1 {
				t.Fatalf("a line of %d bytes was written whole", len(line))
			}
		}
	})
}

// The hot path allocates nothing per line: framing and timestamping a
// chunk of short lines.
func TestNoAllocationPerLine(t *testing.T) {
	var input bytes.Buffer
	for input.Len() < chunk-200 {
		input.WriteString("0123456789 some log line of a hundred bytes or so ...................................\n")
	}
	f := newFramer(chunk)
	w := &writer{cfg: Config{Timestamps: true}, scratch: make([]byte, 0, 2*(chunk+MaxLine))}
	allocs := testing.AllocsPerRun(100, func() {
		n := copy(f.space(), input.Bytes())
		f.add(n)
		for {
			lines, _ := f.next()
			if lines == nil {
				break
			}
			w.stampLines(lines)
			f.done()
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per chunk of %d lines", allocs, bytes.Count(input.Bytes(), []byte{'\n'}))
	}
}
