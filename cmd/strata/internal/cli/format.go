package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// recordFormat is a parsed --format: kcat-like placeholders
//
//	%t topic  %p partition  %o offset  %k key  %s value  %K key length
//	%S value length  %T timestamp (unix ms)  %h headers (k=v,k=v)  %%
//
// and the escapes \n \t \r \\ .
type recordFormat []formatPart

type formatPart struct {
	lit  string
	verb byte // 0 for a literal
}

// DefaultFormat prints the value and a newline.
const DefaultFormat = `%s\n`

func parseFormat(s string) (recordFormat, error) {
	var f recordFormat
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f = append(f, formatPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("format %q: trailing backslash", s)
			}
			i++
			switch s[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'r':
				lit.WriteByte('\r')
			case '\\':
				lit.WriteByte('\\')
			default:
				return nil, fmt.Errorf("format %q: unknown escape \\%c", s, s[i])
			}
		case '%':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("format %q: trailing %%", s)
			}
			i++
			switch v := s[i]; v {
			case '%':
				lit.WriteByte('%')
			case 't', 'p', 'o', 'k', 's', 'K', 'S', 'T', 'h':
				flush()
				f = append(f, formatPart{verb: v})
			default:
				return nil, fmt.Errorf("format %q: unknown placeholder %%%c", s, v)
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return f, nil
}

// append formats r into b.
func (f recordFormat) append(b []byte, r *client.Record) []byte {
	for _, p := range f {
		switch p.verb {
		case 0:
			b = append(b, p.lit...)
		case 't':
			b = append(b, r.Topic...)
		case 'p':
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		case 'o':
			b = strconv.AppendInt(b, r.Offset, 10)
		case 'k':
			b = append(b, r.Key...)
		case 's':
			b = append(b, r.Value...)
		case 'K':
			b = strconv.AppendInt(b, int64(len(r.Key)), 10)
		case 'S':
			b = strconv.AppendInt(b, int64(len(r.Value)), 10)
		case 'T':
			if r.Timestamp.IsZero() {
				b = append(b, '0')
			} else {
				b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
			}
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, h.Key...)
				b = append(b, '=')
				b = append(b, h.Value...)
			}
		}
	}
	return b
}

// fromSpec is a parsed --from.
type fromSpec struct {
	kind   string // earliest, latest, offset, relative, time
	offset int64  // offset, or N for relative (N before the end)
	time   time.Time
}

// parseFrom parses earliest | latest | N | -N | RFC3339 time.
func parseFrom(s string) (fromSpec, error) {
	switch s {
	case "earliest", "beginning", "start":
		return fromSpec{kind: "earliest"}, nil
	case "latest", "end":
		return fromSpec{kind: "latest"}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return fromSpec{kind: "relative", offset: -n}, nil
		}
		return fromSpec{kind: "offset", offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return fromSpec{kind: "time", time: t}, nil
	}
	return fromSpec{}, usagef("--from %q: want earliest, latest, an offset N, -N (N before the end) or an RFC3339 time", s)
}

// position resolves the spec for a partition with the given offsets.
func (f fromSpec) position(logStart, end int64) client.Position {
	switch f.kind {
	case "latest":
		return client.AtOffset(end)
	case "offset":
		return client.AtOffset(f.offset)
	case "relative":
		o := end - f.offset
		if o < logStart {
			o = logStart
		}
		return client.AtOffset(o)
	case "time":
		return client.AtTime(f.time)
	}
	return client.Earliest()
}

// parseKV parses k=v.
func parseKV(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("%q: want key=value", s)
	}
	return k, v, nil
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// partitionFlag is a --partition: unset until given, and never negative
// (an unset flag means all partitions, or the partitioner's choice; a
// negative number used to mean the same silently).
type partitionFlag struct {
	set bool
	v   int32
}

func (p *partitionFlag) String() string {
	if p == nil || !p.set {
		return ""
	}
	return strconv.Itoa(int(p.v))
}

func (p *partitionFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return errors.New("not a partition number")
	}
	if n < 0 {
		return errors.New("partitions are numbered from 0 (leave --partition out for the default)")
	}
	p.set, p.v = true, int32(n)
	return nil
}
