// Package jobfile reads upstart job files (/etc/init/NAME.conf), so that
// upshim can run a job as upstart did. It only parses: main.go turns a Job
// into upshim's configuration, under the flags given on the command line.
//
// The grammar is upstart's: one stanza a line, a trailing backslash joins
// the next line, # starts a comment outside quotes, words are split at
// blanks and may be quoted with ' or " or escaped with a backslash, as sh
// quotes them (exec lines go to sh as written), and script … end script
// blocks are taken verbatim. Stanzas that belong to an init (start on, stop on,
// manual, emits, export, instance) are accepted and listed in Ignored;
// anything unknown is an error naming the file and the line.
package jobfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxJobFile bounds a job file. Real jobs are a few KiB; a long script
// block fits many times over, and /dev/zero or a runaway pipe given as
// --job cannot exhaust memory.
const maxJobFile = 4 << 20

// Process is how one of the job's processes runs: an exec line (a command,
// run through sh -e -c when it holds shell metacharacters, as upstart did)
// or a script block (run with sh -e).
type Process struct {
	Exec   string // the exec line, as written
	Script string // the script block's body, if a script
}

// Set reports whether the job gives this process.
func (p Process) Set() bool { return p.Exec != "" || p.Script != "" }

// Job is what a job file says.
type Job struct {
	Name        string // the file's base name without .conf
	Description string
	Main        Process
	PreStart    Process
	PostStart   Process
	PreStop     Process
	PostStop    Process

	Respawn      bool
	RespawnLimit string // "COUNT/INTERVAL" or "unlimited"; "" if not given
	Expect       string
	NormalExit   []string
	KillSignal   string
	KillTimeout  string
	ReloadSignal string
	Task         bool

	Chdir       string
	Env         []string // NAME=VALUE, in order
	Setuid      string
	Setgid      string
	Umask       string
	Nice        string
	OOMScore    string   // a number, or "never"
	Limits      []string // RES=SOFT:HARD
	Console     string   // log, none, output or owner
	StartOn     string
	Ignored     []string // stanzas that belong to an init, once each
	ignoredSeen map[string]bool
}

// shellChars are the characters that made upstart run an exec line through
// a shell (init/job_process.c).
const shellChars = "~`!$^&*()=|\\{}[];\"'<>?"

// NeedsShell reports whether an exec line must run through sh -e -c.
func NeedsShell(line string) bool { return strings.ContainsAny(line, shellChars) }

// Parse reads the job file at path; one larger than 4 MiB is refused.
func Parse(path string) (*Job, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// At most one byte past the bound: an endless stream fails at once.
	data, err := io.ReadAll(io.LimitReader(f, maxJobFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJobFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxJobFile>>20)
	}
	name := path[strings.LastIndexByte(path, '/')+1:]
	return ParseBytes(path, strings.TrimSuffix(name, ".conf"), data)
}

// ParseBytes parses a job file's contents; file names it in errors.
func ParseBytes(file, name string, data []byte) (*Job, error) {
	j := &Job{Name: name, ignoredSeen: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	n := 0
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		// exec cannot pass a NUL in an argument or the environment.
		return nil, fail(1+bytes.Count(data[:i], []byte("\n")), "a NUL byte, which no command or environment can hold")
	}
	var joined []byte
	for sc.Scan() {
		n++
		start := n
		line := sc.Text()
		if strings.HasSuffix(line, "\\") {
			// Appended in place: rebuilding the line at each
			// continuation would be quadratic in their number.
			joined = append(joined[:0], line...)
			for bytes.HasSuffix(joined, []byte("\\")) && sc.Scan() {
				n++
				joined = append(append(joined[:len(joined)-1], ' '), sc.Bytes()...)
			}
			line = string(joined)
		}
		words, end, err := split(line)
		if err != nil {
			return nil, fail(start, "%v", err)
		}
		if len(words) == 0 {
			continue
		}
		rest := func(k int) string { return restAfter(line[:end], k) }
		switch words[0] {
		case "exec":
			if len(words) < 2 {
				return nil, fail(start, "exec needs a command")
			}
			j.Main = Process{Exec: rest(1)}
		case "script":
			body, err := readScript(sc, &n)
			if err != nil {
				return nil, fail(start, "%v", err)
			}
			j.Main = Process{Script: body}
		case "pre-start", "post-start", "pre-stop", "post-stop":
			p, err := j.hook(words[0])
			if err != nil {
				return nil, fail(start, "%v", err)
			}
			switch {
			case len(words) >= 3 && words[1] == "exec":
				*p = Process{Exec: rest(2)}
			case len(words) == 2 && words[1] == "script":
				body, err := readScript(sc, &n)
				if err != nil {
					return nil, fail(start, "%v", err)
				}
				*p = Process{Script: body}
			default:
				return nil, fail(start, "%s wants exec COMMAND or script", words[0])
			}
		case "respawn":
			switch {
			case len(words) == 1:
				j.Respawn = true
			case words[1] == "limit" && len(words) == 3 && words[2] == "unlimited":
				j.RespawnLimit = "unlimited"
			case words[1] == "limit" && len(words) == 4 && isUint(words[2]) && isUint(words[3]):
				j.RespawnLimit = words[2] + "/" + words[3]
			default:
				return nil, fail(start, "want respawn, respawn limit COUNT INTERVAL or respawn limit unlimited")
			}
		case "expect":
			if len(words) != 2 || (words[1] != "fork" && words[1] != "daemon" && words[1] != "stop") {
				return nil, fail(start, "want expect fork, daemon or stop")
			}
			j.Expect = words[1]
		case "normal":
			if len(words) < 3 || words[1] != "exit" {
				return nil, fail(start, "want normal exit STATUS...")
			}
			j.NormalExit = append(j.NormalExit, words[2:]...)
		case "kill":
			switch {
			case len(words) == 3 && words[1] == "signal":
				j.KillSignal = words[2]
			case len(words) == 3 && words[1] == "timeout" && isUint(words[2]):
				j.KillTimeout = words[2]
			default:
				return nil, fail(start, "want kill signal SIGNAL or kill timeout SECONDS")
			}
		case "reload":
			if len(words) != 3 || words[1] != "signal" {
				return nil, fail(start, "want reload signal SIGNAL")
			}
			j.ReloadSignal = words[2]
		case "task":
			j.Task = true
		case "chdir", "setuid", "setgid", "umask", "nice", "console", "description", "author", "version", "usage":
			if len(words) < 2 {
				return nil, fail(start, "%s needs a value", words[0])
			}
			value := words[1]
			if words[0] == "description" || words[0] == "author" || words[0] == "usage" || words[0] == "version" {
				value = strings.Join(words[1:], " ")
			} else if len(words) != 2 {
				return nil, fail(start, "%s takes one value", words[0])
			}
			switch words[0] {
			case "chdir":
				j.Chdir = value
			case "setuid":
				j.Setuid = value
			case "setgid":
				j.Setgid = value
			case "umask":
				j.Umask = value
			case "nice":
				j.Nice = value
			case "description":
				j.Description = value
			case "console":
				if value != "log" && value != "none" && value != "output" && value != "owner" {
					return nil, fail(start, "want console log, none, output or owner")
				}
				j.Console = value
			}
		case "env":
			if len(words) != 2 {
				return nil, fail(start, "want env NAME=VALUE")
			}
			if !strings.Contains(words[1], "=") {
				// env NAME: upstart passed the variable on from its own
				// environment, which upshim's service inherits anyway.
				if v, ok := os.LookupEnv(words[1]); ok {
					j.Env = append(j.Env, words[1]+"="+v)
				}
				continue
			}
			j.Env = append(j.Env, words[1])
		case "oom":
			if len(words) != 3 || words[1] != "score" || (words[2] != "never" && !isInt(words[2])) {
				return nil, fail(start, "want oom score N or oom score never")
			}
			j.OOMScore = words[2]
		case "limit":
			if len(words) != 4 {
				return nil, fail(start, "want limit RESOURCE SOFT HARD")
			}
			j.Limits = append(j.Limits, words[1]+"="+words[2]+":"+words[3])
		case "start", "stop":
			if len(words) < 3 || words[1] != "on" {
				return nil, fail(start, "want %s on EVENT...", words[0])
			}
			if words[0] == "start" {
				j.StartOn = strings.Join(words[2:], " ")
			}
			j.ignore(words[0] + " on")
		case "manual", "emits", "export", "instance":
			j.ignore(words[0])
		case "end":
			return nil, fail(start, "end script without script")
		default:
			return nil, fail(start, "unknown stanza %q", words[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if !j.Main.Set() {
		return nil, fmt.Errorf("%s: no exec or script stanza: nothing to run", file)
	}
	return j, nil
}

func (j *Job) ignore(stanza string) {
	if !j.ignoredSeen[stanza] {
		j.ignoredSeen[stanza] = true
		j.Ignored = append(j.Ignored, stanza)
	}
}

func (j *Job) hook(name string) (*Process, error) {
	switch name {
	case "pre-start":
		return &j.PreStart, nil
	case "post-start":
		return &j.PostStart, nil
	case "pre-stop":
		return &j.PreStop, nil
	}
	return &j.PostStop, nil
}

// readScript reads a script block's lines up to end script.
func readScript(sc *bufio.Scanner, n *int) (string, error) {
	var body strings.Builder
	for sc.Scan() {
		*n++
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 2 && f[0] == "end" && f[1] == "script" {
			return body.String(), nil
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	return "", fmt.Errorf("script without end script")
}

// split cuts a line into words, quoted as sh quotes them, since exec lines
// go to sh as they are written: blanks separate; '…' takes every character
// as it is; "…" takes every character but \\, \", \$ and \` (a backslash
// before anything else stays); outside quotes a backslash takes the next
// character as it is. A # that is neither quoted nor escaped starts a
// comment: end is where, or len(line).
func split(line string) (words []string, end int, err error) {
	var word strings.Builder
	inWord := false
	var quote byte
	end = len(line)
	for i := 0; i < end; i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == quote {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case quote == '"':
			if c == quote {
				quote = 0
			} else if c == '\\' && i+1 < end && strings.IndexByte("\\\"$`", line[i+1]) >= 0 {
				i++
				word.WriteByte(line[i])
			} else {
				word.WriteByte(c)
			}
		case c == '\\' && i+1 < end:
			i++
			word.WriteByte(line[i])
			inWord = true
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == '#':
			end = i
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, end, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, end, nil
}

// restAfter returns the text of line after its first k words, as written
// (quotes and all), for exec lines; line ends where split found a comment.
// The words skipped are stanza keywords, which hold no quotes.
func restAfter(line string, k int) string {
	s := strings.TrimLeft(line, " \t")
	for range k {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return ""
		}
		s = strings.TrimLeft(s[i:], " \t")
	}
	return strings.TrimRight(s, " \t")
}

func isUint(s string) bool { _, err := strconv.ParseUint(s, 10, 32); return err == nil }
func isInt(s string) bool  { _, err := strconv.Atoi(s); return err == nil }
