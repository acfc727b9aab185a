//go:build linux

package shim

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON reader just large enough for `ctl list` to read `status --json`:
// the members of one object, each value as its raw text. It is written by
// hand for the reason Status.JSON is: encoding/json would add a tenth to
// upshim's binary.

// jsonMaxDepth bounds the nesting jsonFields follows.
const jsonMaxDepth = 32

// jsonFields splits the JSON object s into its members, each value as
// its raw JSON text. ok is false when s is not one well-formed object.
func jsonFields(s string) (fields map[string]string, ok bool) {
	p := &jsonScanner{s: s}
	p.space()
	start := p.i
	if !p.value(0) || s[start] != '{' {
		return nil, false
	}
	p.space()
	if p.i != len(s) {
		return nil, false
	}
	// Read again, keeping the members: value has checked it all.
	p.i = start + 1
	fields = map[string]string{}
	for p.space(); p.s[p.i] != '}'; p.space() {
		key, _ := p.str()
		p.space()
		p.i++ // ':'
		p.space()
		from := p.i
		p.value(1)
		fields[key] = s[from:p.i]
		p.space()
		if p.s[p.i] == ',' {
			p.i++
		}
	}
	return fields, true
}

// jsonString decodes raw, a JSON string.
func jsonString(raw string) (string, bool) {
	p := &jsonScanner{s: raw}
	s, ok := p.str()
	return s, ok && p.i == len(raw)
}

type jsonScanner struct {
	s string
	i int
}

func (p *jsonScanner) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

// eat consumes c, if it is next.
func (p *jsonScanner) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// value consumes one JSON value.
func (p *jsonScanner) value(depth int) bool {
	if p.i >= len(p.s) || depth > jsonMaxDepth {
		return false
	}
	switch p.s[p.i] {
	case '"':
		_, ok := p.str()
		return ok
	case '{':
		p.i++
		p.space()
		if p.eat('}') {
			return true
		}
		for {
			p.space()
			if _, ok := p.str(); !ok {
				return false
			}
			p.space()
			if !p.eat(':') {
				return false
			}
			p.space()
			if !p.value(depth + 1) {
				return false
			}
			p.space()
			if p.eat('}') {
				return true
			}
			if !p.eat(',') {
				return false
			}
		}
	case '[':
		p.i++
		p.space()
		if p.eat(']') {
			return true
		}
		for {
			p.space()
			if !p.value(depth + 1) {
				return false
			}
			p.space()
			if p.eat(']') {
				return true
			}
			if !p.eat(',') {
				return false
			}
		}
	}
	// A literal: true, false, null or a number.
	start := p.i
	for p.i < len(p.s) && strings.IndexByte("+-.0123456789eEtrufalsn", p.s[p.i]) >= 0 {
		p.i++
	}
	switch lit := p.s[start:p.i]; lit {
	case "true", "false", "null":
		return true
	case "":
		return false
	default:
		digits := strings.TrimPrefix(lit, "-")
		_, err := strconv.ParseFloat(lit, 64)
		return err == nil && digits != "" && digits[0] >= '0' && digits[0] <= '9'
	}
}

// str consumes and decodes one JSON string.
func (p *jsonScanner) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return "", false
		}
		esc := p.s[p.i+1]
		p.i += 2
		if i := strings.IndexByte(`"\/bfnrt`, esc); i >= 0 {
			b = append(b, "\"\\/\b\f\n\r\t"[i])
			continue
		}
		if esc != 'u' {
			return "", false
		}
		r, ok := p.hex4()
		if !ok {
			return "", false
		}
		if utf16.IsSurrogate(r) && strings.HasPrefix(p.s[p.i:], `\u`) {
			save := p.i
			p.i += 2
			if r2, ok := p.hex4(); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
				r = utf16.DecodeRune(r, r2)
			} else {
				p.i = save
			}
		}
		b = utf8.AppendRune(b, r) // a lone surrogate comes out as U+FFFD
	}
	return "", false
}

// hex4 consumes the four hex digits of a \u escape.
func (p *jsonScanner) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
