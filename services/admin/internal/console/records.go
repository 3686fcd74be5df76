package console

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Record browser limits.
const (
	// defaultRecords and maxRecords bound the records read per page.
	defaultRecords = 20
	maxRecords     = 100
	// maxShownText and maxShownHex bound how much of one key, value or
	// header is shown; a larger one is truncated with a note.
	maxShownText = 4096
	maxShownHex  = 1024
)

// Display formats of keys and values.
const (
	formatAuto = "auto" // text when printable UTF-8, else hex
	formatText = "text"
	formatHex  = "hex"
)

// shown is one key, value or header value as the page shows it.
type shown struct {
	Null      bool
	Hex       bool
	Text      string
	Size      int
	Truncated bool
	ShownSize int
}

// show renders b in format: text (invalid UTF-8 replaced), hex (a dump
// of 16 bytes a line), or auto (text when b is printable UTF-8). At most
// maxShownText or maxShownHex bytes are shown.
func show(b []byte, format string) shown {
	if b == nil {
		return shown{Null: true}
	}
	s := shown{Size: len(b)}
	asHex := format == formatHex || (format != formatText && !printable(b))
	limit := maxShownText
	if asHex {
		limit = maxShownHex
	}
	if len(b) > limit {
		b, s.Truncated = b[:limit], true
	}
	s.ShownSize = len(b)
	if asHex {
		s.Hex, s.Text = true, hexDump(b)
		return s
	}
	s.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	return s
}

// printable reports whether b is UTF-8 text without control characters
// other than tab and line breaks (a cut rune at the end is allowed: the
// value may be truncated there).
func printable(b []byte) bool {
	if len(b) > maxShownText {
		b = b[:maxShownText]
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) < utf8.UTFMax && !utf8.FullRune(b)
		}
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
		b = b[n:]
	}
	return true
}

// hexDump is "offset  hex bytes  |ascii|", 16 bytes a line.
func hexDump(b []byte) string {
	var out strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&out, "%08x  %-47s  |", off, spaced(hex.EncodeToString(line)))
		for _, c := range line {
			if c >= 0x20 && c < 0x7f {
				out.WriteByte(c)
			} else {
				out.WriteByte('.')
			}
		}
		out.WriteString("|\n")
	}
	return out.String()
}

func spaced(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

type headerRow struct {
	Key   string
	Value shown
}

type recordRow struct {
	Offset  int64
	Epoch   int32
	Time    time.Time
	Key     shown
	Value   shown
	Headers []headerRow
}

type recordsPage struct {
	Topic      string
	Partition  int32
	Partitions []int32
	Offset     int64
	Count      int
	Format     string
	Records    []recordRow
	Next       int64
	Prev       int64
	Start      int64
	End        int64 // the high watermark: one past the last readable
	Known      bool
	// OutOfRange is set when the offset asked for is not readable.
	OutOfRange string
}

func (c *Console) records(w http.ResponseWriter, r *http.Request) {
	name := topicName(r)
	if c.opts.Cluster == nil {
		c.fail(w, r, http.StatusServiceUnavailable, noClusterNotice)
		return
	}
	q := r.URL.Query()
	page := recordsPage{Topic: name, Format: q.Get("format"), Count: defaultRecords}
	switch page.Format {
	case formatAuto, formatText, formatHex:
	case "":
		page.Format = formatAuto
	default:
		c.fail(w, r, http.StatusBadRequest, "format must be auto, text or hex.")
		return
	}
	if v := q.Get("partition"); v != "" {
		p, err := strconv.ParseInt(v, 10, 32)
		if err != nil || p < 0 {
			c.fail(w, r, http.StatusBadRequest, "partition must be a partition number.")
			return
		}
		page.Partition = int32(p)
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRecords {
			c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("count must be 1 to %d.", maxRecords))
			return
		}
		page.Count = n
	}
	ctx, cancel := clusterCtx(r)
	defer cancel()
	snap, err := c.opts.Cluster.Snapshot(ctx, name)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			c.fail(w, r, http.StatusNotFound, "No topic "+name+".")
			return
		}
		c.fail(w, r, http.StatusBadGateway, "No cluster node answered: "+err.Error())
		return
	}
	var pm *stratav1.PartitionMetadata
	for _, t := range snap.Topics {
		if t.GetName() != name {
			continue
		}
		for _, p := range t.GetPartitions() {
			page.Partitions = append(page.Partitions, p.GetPartition())
			if p.GetPartition() == page.Partition {
				pm = p
			}
		}
	}
	if pm == nil {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("No partition %d of topic %s.", page.Partition, name))
		return
	}
	page.Start, page.End, page.Known = pm.GetLogStartOffset(), pm.GetHighWatermark(), pm.GetLogEndOffset() >= 0
	page.Offset = max(page.Start, page.End-int64(page.Count), 0)
	if v := q.Get("offset"); v != "" {
		o, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, "offset must be an integer.")
			return
		}
		page.Offset = o
	}
	page.Prev = max(page.Offset-int64(page.Count), 0)
	page.Next = page.Offset
	notice := ""
	resp, err := c.opts.Cluster.Read(ctx, name, page.Partition, page.Offset, int32(page.Count))
	switch {
	case status.Code(err) == codes.OutOfRange:
		page.OutOfRange = outOfRange(err, page.Offset)
	case err != nil:
		notice = "Reading the partition failed: " + status.Convert(err).Message()
	default:
		for _, rec := range resp.GetRecords() {
			row := recordRow{Offset: rec.GetOffset(), Epoch: rec.GetLeaderEpoch(), Time: time.UnixMilli(rec.GetTimestampMs()),
				Key: show(rec.GetKey(), page.Format), Value: show(rec.GetValue(), page.Format)}
			for _, h := range rec.GetHeaders() {
				row.Headers = append(row.Headers, headerRow{Key: h.GetKey(), Value: show(h.GetValue(), page.Format)})
			}
			page.Records = append(page.Records, row)
		}
		page.Next = resp.GetNextOffset()
		page.Start, page.End, page.Known = resp.GetLogStartOffset(), resp.GetHighWatermark(), true
	}
	c.render(w, r, http.StatusOK, "records", "Records of "+name, "topics", notice, page)
}

// outOfRange says which offsets can be read, from the broker's detail.
func outOfRange(err error, asked int64) string {
	for _, d := range status.Convert(err).Details() {
		if or, ok := d.(*stratav1.OffsetRange); ok {
			return fmt.Sprintf("Offset %d is out of range: this partition holds offsets %d to %d (readable up to the high watermark).",
				asked, or.GetLogStartOffset(), or.GetEndOffset()-1)
		}
	}
	return fmt.Sprintf("Offset %d is out of range: %s", asked, status.Convert(err).Message())
}
