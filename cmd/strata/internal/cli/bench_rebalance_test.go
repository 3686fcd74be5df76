package cli

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

func recs(p int32, from, to int64) []client.Record {
	var out []client.Record
	for o := from; o <= to; o++ {
		out = append(out, client.Record{Partition: p, Offset: o})
	}
	return out
}

func TestDeliveryLogCountsSkipsAndRedeliveries(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name           string
		polls          [][]client.Record
		skipped, again int64
		deliveries     int
	}{
		{"contiguous across polls and partitions", [][]client.Record{
			append(recs(0, 10, 12), recs(1, 5, 6)...), append(recs(1, 7, 7), recs(0, 13, 20)...)}, 0, 0, 4},
		{"a hole is a skip", [][]client.Record{recs(0, 0, 4), recs(0, 8, 9)}, 3, 0, 2},
		{"a new owner from the last commit redelivers", [][]client.Record{recs(0, 0, 9), recs(0, 6, 12)}, 0, 4, 2},
		{"a redelivery wholly behind counts its records only", [][]client.Record{recs(0, 0, 9), recs(0, 2, 3)}, 0, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &deliveryLog{ch: make(chan struct{}, 1), off: map[int32]int64{}}
			for i, p := range tc.polls {
				l.add(i, t0.Add(time.Duration(i)*time.Millisecond), p)
			}
			if l.skipped != tc.skipped || l.again != tc.again {
				t.Errorf("skipped %d, again %d; want %d, %d", l.skipped, l.again, tc.skipped, tc.again)
			}
			if got := len(l.all()); got != tc.deliveries {
				t.Errorf("%d deliveries, want %d", got, tc.deliveries)
			}
		})
	}
}

func TestPartitionGapsWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ds := []delivery{
		{at: at(0), partition: 0}, {at: at(5), partition: 1}, {at: at(10), partition: 0},
		{at: at(40), partition: 0}, {at: at(45), partition: 1}, {at: at(100), partition: 0},
	}
	got := partitionGaps(ds, at(20), at(60))
	slices.Sort(got)
	want := []time.Duration{30 * time.Millisecond, 40 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("gaps in [20ms, 60ms) = %v, want %v (the gap that ends in the window counts, the one after it does not)", got, want)
	}
	if all := partitionGaps(ds, time.Time{}, at(1000)); len(all) != 4 {
		t.Errorf("%d gaps over the whole log, want 4", len(all))
	}
}

func TestGroupCommitMode(t *testing.T) {
	for _, tc := range []struct {
		in       string
		interval time.Duration
		perPoll  bool
		disable  bool
		bad      bool
	}{
		{in: "poll", perPoll: true},
		{in: "none", disable: true},
		{in: "interval:2s", interval: 2 * time.Second},
		{in: "interval:0s", bad: true},
		{in: "always", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			g := benchGroupFlags{commit: tc.in}
			iv, pp, dis, err := g.commitMode()
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want an error: %v", err, tc.bad)
			}
			if !tc.bad && (iv != tc.interval || pp != tc.perPoll || dis != tc.disable) {
				t.Errorf("= %v, %v, %v; want %v, %v, %v", iv, pp, dis, tc.interval, tc.perPoll, tc.disable)
			}
		})
	}
}
