package jobfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	job := `# a comment
description "a long  description"
author "someone"
start on (filesystem and net-device-up IFACE!=lo)
stop on runlevel [!2345]
manual
env DAEMON=/usr/sbin/nginx
env QUOTED="two words"
expect fork
respawn
respawn limit 10 5
normal exit 0 1 TERM
kill signal QUIT
kill timeout 30
reload signal USR2
chdir /srv
setuid www-data
setgid www-data
umask 022
nice 5
oom score never
limit nofile 1024 4096
console log
pre-start script
    $DAEMON -t
    if [ $? -ne 0 ]
        then exit $?
    fi
end script
post-start exec echo started # a comment
exec $DAEMON \
    -g 'daemon on;'
`
	j, err := ParseBytes("nginx.conf", "nginx", []byte(job))
	if err != nil {
		t.Fatal(err)
	}
	want := &Job{
		Name: "nginx", Description: "a long  description",
		Main:      Process{Exec: `$DAEMON      -g 'daemon on;'`},
		PreStart:  Process{Script: "    $DAEMON -t\n    if [ $? -ne 0 ]\n        then exit $?\n    fi\n"},
		PostStart: Process{Exec: "echo started"},
		Respawn:   true, RespawnLimit: "10/5", Expect: "fork", NormalExit: []string{"0", "1", "TERM"},
		KillSignal: "QUIT", KillTimeout: "30", ReloadSignal: "USR2", Chdir: "/srv", Setuid: "www-data", Setgid: "www-data",
		Umask: "022", Nice: "5", OOMScore: "never", Limits: []string{"nofile=1024:4096"}, Console: "log",
		Env:     []string{"DAEMON=/usr/sbin/nginx", "QUOTED=two words"},
		StartOn: "(filesystem and net-device-up IFACE!=lo)", Ignored: []string{"start on", "stop on", "manual"},
	}
	j.ignoredSeen = nil
	if !reflect.DeepEqual(j, want) {
		t.Fatalf("parsed\n%#v\nwant\n%#v", j, want)
	}
	if !NeedsShell(j.Main.Exec) || NeedsShell("./naivehttpserver -port 80") {
		t.Error("NeedsShell is wrong")
	}
}

func TestParseRules(t *testing.T) {
	j, err := ParseBytes("x.conf", "x", []byte("respawn limit 3 10\nscript\n  echo hi\nend script\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Respawn || j.RespawnLimit != "3/10" || j.Main.Script != "  echo hi\n" {
		t.Fatalf("respawn limit alone must not enable respawn: %+v", j)
	}
	j, _ = ParseBytes("x.conf", "x", []byte("respawn limit unlimited\nexec x\n"))
	if j.RespawnLimit != "unlimited" {
		t.Fatalf("respawn limit unlimited: %q", j.RespawnLimit)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ job, want string }{
		{"exec x\nfrobnicate yes\n", `j.conf:2: unknown stanza "frobnicate"`},
		{"\n\nexec\n", "j.conf:3: exec needs a command"},
		{"exec x\nscript\necho\n", "j.conf:2: script without end script"},
		{"exec x\nend script\n", "j.conf:2: end script without script"},
		{"expect forks\nexec x\n", "j.conf:1: want expect fork, daemon or stop"},
		{"exec x\nrespawn limit ten 5\n", "j.conf:2: want respawn, respawn limit COUNT INTERVAL"},
		{"exec x\nkill timeout soon\n", "j.conf:2: want kill signal SIGNAL or kill timeout SECONDS"},
		{"exec x\npre-start run x\n", "j.conf:2: pre-start wants exec COMMAND or script"},
		{"exec x\noom score high\n", "j.conf:2: want oom score N or oom score never"},
		{"exec x\nlimit nofile 1\n", "j.conf:2: want limit RESOURCE SOFT HARD"},
		{"exec x\nconsole loud\n", "j.conf:2: want console log, none, output or owner"},
		{"exec 'x\n", "j.conf:1: unterminated ' quote"},
		{"exec x\nstart at boot\n", "j.conf:2: want start on EVENT..."},
		{"# nothing\nrespawn\n", "j.conf: no exec or script stanza: nothing to run"},
		{"exec x \\\n  y\nbogus\n", `j.conf:3: unknown stanza "bogus"`},
	} {
		_, err := ParseBytes("j.conf", "j", []byte(c.job))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("job %q: error %v, want %q", c.job, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("exec x\nrespawn limit 1 2\npre-start script\nfoo\nend script\n"))
	f.Add([]byte("env A=\"b c\"\nexec 'x' \\\n y # z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseBytes("f.conf", "f", data) // must not panic
	})
}
