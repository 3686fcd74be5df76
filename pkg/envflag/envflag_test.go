package envflag_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/envflag"
)

func TestName(t *testing.T) {
	for flagName, want := range map[string]string{
		"data-dir":         "STRATA_DATA_DIR",
		"listen":           "STRATA_LISTEN",
		"max-conns-per-ip": "STRATA_MAX_CONNS_PER_IP",
	} {
		if got := envflag.Name(flagName); got != want {
			t.Errorf("Name(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// settings is a flag set of every common kind.
type settings struct {
	listen  string
	conns   int
	timeout time.Duration
	pprof   bool
	addrs   []string
}

func newFlagSet(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.listen, "listen", "127.0.0.1:1", "")
	fs.IntVar(&s.conns, "max-conns", 10, "")
	fs.DurationVar(&s.timeout, "handshake-timeout", time.Second, "")
	fs.BoolVar(&s.pprof, "pprof", false, "")
	fs.Func("cluster-addrs", "", func(v string) error {
		s.addrs = strings.Split(v, ",")
		return nil
	})
	return fs
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want settings
	}{
		{
			name: "defaults",
			want: settings{listen: "127.0.0.1:1", conns: 10, timeout: time.Second},
		},
		{
			name: "environment",
			env: map[string]string{"STRATA_LISTEN": ":9", "STRATA_MAX_CONNS": "3", "STRATA_HANDSHAKE_TIMEOUT": "2s",
				"STRATA_PPROF": "true", "STRATA_CLUSTER_ADDRS": "a:1,b:2"},
			want: settings{listen: ":9", conns: 3, timeout: 2 * time.Second, pprof: true, addrs: []string{"a:1", "b:2"}},
		},
		{
			name: "a flag wins",
			env:  map[string]string{"STRATA_LISTEN": ":9", "STRATA_MAX_CONNS": "3"},
			args: []string{"--listen", ":7"},
			want: settings{listen: ":7", conns: 3, timeout: time.Second},
		},
		{
			name: "a flag wins over a bad value, which is not read",
			env:  map[string]string{"STRATA_MAX_CONNS": "many"},
			args: []string{"--max-conns=4"},
			want: settings{listen: "127.0.0.1:1", conns: 4, timeout: time.Second},
		},
		{
			name: "empty is unset",
			env:  map[string]string{"STRATA_LISTEN": ""},
			want: settings{listen: "127.0.0.1:1", conns: 10, timeout: time.Second},
		},
		{
			name: "other prefixes are not read",
			env:  map[string]string{"LISTEN": ":9", "STRATA_listen": ":9"},
			want: settings{listen: "127.0.0.1:1", conns: 10, timeout: time.Second},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got settings
			if err := envflag.Parse(newFlagSet(&got), tc.args, getenv(tc.env)); err != nil {
				t.Fatal(err)
			}
			if got.listen != tc.want.listen || got.conns != tc.want.conns || got.timeout != tc.want.timeout ||
				got.pprof != tc.want.pprof || strings.Join(got.addrs, ",") != strings.Join(tc.want.addrs, ",") {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseBadEnvironmentNamesEveryVariable(t *testing.T) {
	var s settings
	env := map[string]string{"STRATA_MAX_CONNS": "many", "STRATA_HANDSHAKE_TIMEOUT": "soon", "STRATA_LISTEN": ":9"}
	err := envflag.Parse(newFlagSet(&s), nil, getenv(env))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{`STRATA_MAX_CONNS="many"`, "--max-conns", `STRATA_HANDSHAKE_TIMEOUT="soon"`, "--handshake-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "STRATA_LISTEN") {
		t.Errorf("error %q names a good variable", err)
	}
}

func TestParseArgumentErrorsUnchanged(t *testing.T) {
	var s settings
	if err := envflag.Parse(newFlagSet(&s), []string{"-h"}, getenv(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: err = %v, want flag.ErrHelp", err)
	}
	err := envflag.Parse(newFlagSet(&s), []string{"--no-such-flag"}, getenv(map[string]string{"STRATA_LISTEN": ":9"}))
	if err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("unknown flag: err = %v", err)
	}
}
