package group

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// OffsetsTopic is the internal topic holding every group's committed
// offsets and epoch. Its partition count is fixed when it is created; a
// group lives in partition PartitionFor(group, count).
const OffsetsTopic = "__consumer_offsets"

// PartitionFor is the partition of OffsetsTopic (of n) holding group.
func PartitionFor(group string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(group)) // a hash.Hash never fails to write
	return int32(h.Sum32() % uint32(n))
}

// Keys of the offsets topic's records. A NUL cannot appear in a group or
// topic name, so the fields cannot be confused.
func offsetKey(group string, tp TP) []byte {
	return []byte("o\x00" + group + "\x00" + tp.Topic + "\x00" + strconv.Itoa(int(tp.Partition)))
}

func groupKey(group string) []byte { return []byte("g\x00" + group) }

// offsetRecord is the record committing o for tp; a nil o is the
// tombstone deleting the commit.
func offsetRecord(group string, tp TP, o *Offset) (*stratav1.Record, error) {
	r := &stratav1.Record{Key: offsetKey(group, tp)}
	if o != nil {
		v, err := proto.Marshal(&stratav1.OffsetRecord{Offset: o.Offset, Metadata: o.Metadata, CommitTimeMs: o.CommitTimeMs})
		if err != nil {
			return nil, fmt.Errorf("group: encode offset: %w", err)
		}
		r.Value = v
	}
	return r, nil
}

// groupRecord records a group's epoch and assignor; deleted, its
// tombstone.
func groupRecord(g *Group, deleted bool) (*stratav1.Record, error) {
	r := &stratav1.Record{Key: groupKey(g.Name)}
	if !deleted {
		v, err := proto.Marshal(&stratav1.GroupRecord{GroupEpoch: g.Epoch, Assignor: g.Assignor})
		if err != nil {
			return nil, fmt.Errorf("group: encode group: %w", err)
		}
		r.Value = v
	}
	return r, nil
}

// loaded is one offsets partition's groups, rebuilt from its log, with
// the log offset of the record each committed offset came from (so that
// commits answered out of order never move an offset back).
type loaded struct {
	groups map[string]*Group
	from   map[string]map[TP]int64
}

func (l *loaded) group(name string) *Group {
	g := l.groups[name]
	if g == nil {
		g = New(name, 0)
		l.groups[name] = g
		l.from[name] = map[TP]int64{}
	}
	return g
}

// applyOffset sets a committed offset written at log offset at, unless a
// later record already set it.
func (l *loaded) applyOffset(group string, tp TP, o *Offset, at int64) {
	g := l.group(group)
	if prev, ok := l.from[group][tp]; ok && prev > at {
		return
	}
	l.from[group][tp] = at
	if o == nil {
		delete(g.Offsets, tp)
		return
	}
	g.Offsets[tp] = *o
}

// apply replays one record of the offsets topic.
func (l *loaded) apply(key, value []byte, at int64) error {
	switch {
	case bytes.HasPrefix(key, []byte("o\x00")):
		f := bytes.Split(key[2:], []byte{0})
		if len(f) != 3 {
			return fmt.Errorf("offset key %q has %d fields", key, len(f))
		}
		p, err := strconv.ParseInt(string(f[2]), 10, 32)
		if err != nil {
			return fmt.Errorf("offset key %q: %w", key, err)
		}
		tp := TP{string(f[1]), int32(p)}
		if len(value) == 0 {
			l.applyOffset(string(f[0]), tp, nil, at)
			return nil
		}
		var v stratav1.OffsetRecord
		if err := proto.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("offset record at %d: %w", at, err)
		}
		l.applyOffset(string(f[0]), tp, &Offset{Offset: v.GetOffset(), Metadata: v.GetMetadata(), CommitTimeMs: v.GetCommitTimeMs()}, at)
	case bytes.HasPrefix(key, []byte("g\x00")):
		name := string(key[2:])
		if len(value) == 0 {
			delete(l.groups, name)
			delete(l.from, name)
			return nil
		}
		var v stratav1.GroupRecord
		if err := proto.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("group record at %d: %w", at, err)
		}
		g := l.group(name)
		g.Epoch = max(g.Epoch, v.GetGroupEpoch())
		g.Assignor = v.GetAssignor()
	default:
		return fmt.Errorf("unknown key %q at %d", key, at)
	}
	return nil
}

// load rebuilds the groups of offsets partition p from its log, from the
// log start to the high watermark. The caller waits for the high
// watermark to reach the log end first, so that nothing the previous
// coordinator acknowledged is missed.
func load(ctx context.Context, p *partition.Partition) (*loaded, error) {
	l := &loaded{groups: map[string]*Group{}, from: map[string]map[TP]int64{}}
	cur, err := p.NewCursor(p.LogStartOffset())
	if err != nil {
		return nil, fmt.Errorf("group: load %s/%d: %w", OffsetsTopic, p.ID(), err)
	}
	defer cur.Close() // a read-only cursor has nothing to lose
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var applyErr error
		n, err := cur.Read(1000, 4<<20, func(f logstore.Frame, _ int32) {
			if applyErr != nil {
				return
			}
			var r stratav1.Record
			if err := proto.Unmarshal(f.Payload, &r); err != nil {
				applyErr = fmt.Errorf("record at %d: %w", f.Offset, err)
				return
			}
			applyErr = l.apply(r.GetKey(), r.GetValue(), f.Offset)
		})
		if err = errors.Join(err, applyErr); err != nil {
			return nil, fmt.Errorf("group: load %s/%d: %w", OffsetsTopic, p.ID(), err)
		}
		if n == 0 {
			return l, nil
		}
	}
}
