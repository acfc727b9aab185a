package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// upshim ctl by name: NAME is RUNDIR/NAME.sock in the first of CtlDirs
// that has a live one, and `ctl list` asks every live socket there for
// its status.

// FindControl returns the path of the live control socket of the upshim
// named name. When there is none, the error says where it looked and
// which names it found running there.
func FindControl(name string) (string, error) {
	dirs := CtlDirs()
	var notes []string
	for _, dir := range dirs {
		path := dir + "/" + name + ".sock"
		var st unix.Stat_t
		err := unix.Lstat(path, &st)
		switch {
		case err == unix.ENOENT || err == unix.ENOTDIR:
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s: %v", dir, err))
		case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
			notes = append(notes, path+" is not a socket")
		case !listening(path):
			notes = append(notes, path+" is stale (nothing answers)")
		default:
			return path, nil
		}
	}
	msg := fmt.Sprintf("no upshim named %q in %s", name, strings.Join(dirs, " or "))
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	var running []string
	for _, dir := range dirs {
		for _, s := range liveSockets(dir) {
			running = append(running, s.name)
		}
	}
	if len(running) > 0 {
		msg += "; running: " + strings.Join(running, ", ")
	} else {
		msg += "; none is running there"
	}
	return "", errors.New(msg)
}

// listening reports whether something may answer at path: a socket that
// refuses connections is stale. Any other failure (permission) is left
// for the request to report.
func listening(path string) bool {
	fd, err := dialControl(path)
	if err == nil {
		unix.Close(fd)
		return true
	}
	return !errors.Is(err, unix.ECONNREFUSED) && !errors.Is(err, unix.ENOENT)
}

// liveSocket is one NAME.sock in a runtime directory.
type liveSocket struct{ name, path string }

// sockets lists the NAME.sock sockets of dir, in name order. A directory
// that cannot be read has none.
func sockets(dir string) []liveSocket {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var socks []liveSocket
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".sock")
		if ok && e.Type() == os.ModeSocket && CheckName(name) == nil {
			socks = append(socks, liveSocket{name, dir + "/" + e.Name()})
		}
	}
	return socks
}

// liveSockets is sockets without the stale ones.
func liveSockets(dir string) []liveSocket {
	var live []liveSocket
	for _, s := range sockets(dir) {
		if listening(s.path) {
			live = append(live, s)
		}
	}
	return live
}

// CtlList is `upshim ctl list`: one aligned line per live upshim in
// CtlDirs (name, state, pid, uptime, respawns, health), or with asJSON a
// JSON array of their `status --json` objects, each with its "control"
// path first. Stale sockets, and upshims that exit meanwhile, are left
// out; one that answers with an error is reported on stderr. It returns
// upshim ctl's exit status.
func CtlList(stdout, stderr io.Writer, asJSON bool) int {
	code := CtlOK
	var rows [][]string
	var objects []string
	for _, dir := range CtlDirs() {
		for _, s := range sockets(dir) {
			answer, c, gone := ctlRequest(s.path, "status", "--json")
			if gone || (c == CtlError && answer == "upshim is exiting") {
				continue
			}
			var fields map[string]string
			ok := c != CtlError
			if ok {
				fields, ok = jsonFields(answer)
			}
			if !ok {
				fmt.Fprintf(stderr, "upshim: ctl list: %s: %s\n", s.path, answer)
				code = CtlError
				continue
			}
			if asJSON {
				obj := `{"control":` + string(appendJSONString(nil, s.path))
				if rest := strings.TrimSpace(answer)[1:]; strings.TrimSpace(rest) != "}" {
					obj += "," + rest
				} else {
					obj += "}"
				}
				objects = append(objects, obj)
				continue
			}
			rows = append(rows, listRow(s.name, fields))
		}
	}
	if asJSON {
		if len(objects) == 0 {
			fmt.Fprintln(stdout, "[]")
		} else {
			fmt.Fprintf(stdout, "[\n%s\n]\n", strings.Join(objects, ",\n"))
		}
		return code
	}
	if len(rows) == 0 {
		if code == CtlOK {
			fmt.Fprintf(stderr, "upshim: ctl list: no upshim is running in %s\n", strings.Join(CtlDirs(), " or "))
		}
		return code
	}
	writeTable(stdout, append([][]string{{"NAME", "STATE", "PID", "UPTIME", "RESPAWNS", "HEALTH"}}, rows...))
	return code
}

// listRow is one upshim's line of ctl list, from its status --json.
func listRow(name string, f map[string]string) []string {
	str := func(key string) string {
		if s, ok := jsonString(f[key]); ok && s != "" {
			return s
		}
		return "-"
	}
	pid, uptime := "-", "-"
	if n, err := strconv.Atoi(f["pid"]); err == nil && n > 0 {
		pid = strconv.Itoa(n)
		if secs, err := strconv.ParseFloat(f["uptime_seconds"], 64); err == nil {
			uptime = time.Duration(secs * float64(time.Second)).Round(time.Second).String()
		}
	}
	respawns := "-"
	if n, err := strconv.Atoi(f["respawns"]); err == nil {
		respawns = strconv.Itoa(n)
	}
	// health: a string, or an object with a status (as the health probes
	// may report it); "-" without probes.
	health := str("health")
	if sub, ok := jsonFields(f["health"]); ok {
		if s, ok := jsonString(sub["status"]); ok && s != "" {
			health = s
		}
	}
	return []string{name, str("state"), pid, uptime, respawns, health}
}

// writeTable writes rows with each column padded to its widest cell.
func writeTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			b.WriteString(cell)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(cell))+2))
			}
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}
