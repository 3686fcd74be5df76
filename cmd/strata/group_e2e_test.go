package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Consumer groups through the real strata binary and broker (TestMain).

type describeJSON struct {
	Group      string `json:"group"`
	State      string `json:"state"`
	GroupEpoch int64  `json:"group_epoch"`
	Members    []struct {
		MemberID string   `json:"member_id"`
		ClientID string   `json:"client_id"`
		Assigned []string `json:"assigned"`
	} `json:"members"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		MemberID  string `json:"member_id"`
		Committed int64  `json:"committed"`
		LogEnd    int64  `json:"log_end"`
		Lag       int64  `json:"lag"`
	} `json:"partitions"`
	TotalLag int64 `json:"total_lag"`
}

func describeGroup(tb testing.TB, group string) describeJSON {
	tb.Helper()
	d, err := tryDescribe(tb, group)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func tryDescribe(tb testing.TB, group string) (describeJSON, error) {
	tb.Helper()
	var d describeJSON
	out, errs, code := strata(tb, "", "group", "describe", group, "--json")
	if code != 0 {
		return d, fmt.Errorf("group describe %s: exit %d: %s", group, code, errs)
	}
	return d, json.Unmarshal([]byte(out), &d)
}

// syncBuffer is a bytes.Buffer a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines is the non-empty lines of out, sorted.
func lines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			ls = append(ls, l)
		}
	}
	slices.Sort(ls)
	return ls
}

// TestConsumeGroupCommitsAsItGoes: consume --group prints records as
// consume does and commits what it printed: a run cut by -n and the run
// after it print every record exactly once between them; describe then
// shows each partition committed at its end, lag 0, in a table and in
// JSON; --from other than earliest/latest and --partition are refused
// with --group.
func TestConsumeGroupCommitsAsItGoes(t *testing.T) {
	mustStrata(t, "", "topic", "create", "grp1", "--partitions", "3")
	var in strings.Builder
	for i := range 30 {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	mustStrata(t, in.String(), "produce", "grp1", "--key-delim", ":")

	first := mustStrata(t, "", "consume", "grp1", "--group", "g1", "-n", "7", "--format", `%p/%o %s\n`)
	if n := len(lines(first)); n != 7 {
		t.Fatalf("-n 7 printed %d lines:\n%s", n, first)
	}
	rest := mustStrata(t, "", "consume", "grp1", "--group", "g1", "--format", `%p/%o %s\n`)
	all := lines(first + rest)
	if len(all) != 30 || len(slices.Compact(slices.Clone(all))) != 30 {
		t.Fatalf("the two runs printed %d lines (%d distinct), want the 30 records once:\n%s", len(all), len(slices.Compact(slices.Clone(all))), strings.Join(all, "\n"))
	}
	if again := mustStrata(t, "", "consume", "grp1", "--group", "g1"); again != "" {
		t.Fatalf("a third run printed %q; everything was committed", again)
	}

	d := describeGroup(t, "g1")
	if d.State != "empty" || len(d.Members) != 0 || d.TotalLag != 0 || len(d.Partitions) != 3 {
		t.Fatalf("describe: %+v", d)
	}
	var total int64
	for _, p := range d.Partitions {
		if p.Committed != p.LogEnd || p.Lag != 0 {
			t.Errorf("partition %d: committed %d, log end %d, lag %d", p.Partition, p.Committed, p.LogEnd, p.Lag)
		}
		total += p.LogEnd
	}
	if total != 30 {
		t.Errorf("log ends add up to %d, want 30", total)
	}
	table := mustStrata(t, "", "group", "describe", "g1")
	for _, want := range []string{"STATE        empty", "TOTAL-LAG    0", "COMMITTED", "LOG-END", "LAG"} {
		if !strings.Contains(table, want) {
			t.Errorf("describe table lacks %q:\n%s", want, table)
		}
	}

	for _, args := range [][]string{
		{"consume", "grp1", "--group", "g1", "--from", "3"},
		{"consume", "grp1", "--group", "g1", "--partition", "0"},
	} {
		if _, errs, code := strata(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errs)
		}
	}
}

// TestGroupLiveMemberRefusals: while a consume --group --follow runs,
// list and describe show its member and partitions, delete and
// reset-offsets are refused (reset names --force), and --force resets;
// once it is interrupted it leaves (committing what it printed), and
// delete removes the group: describe then says it is not found.
func TestGroupLiveMemberRefusals(t *testing.T) {
	mustStrata(t, "", "topic", "create", "grp2", "--partitions", "2")
	mustStrata(t, "a\nb\nc\nd\n", "produce", "grp2")

	cmd := exec.Command(strataBin, "--brokers", brokerAddr, "--insecure", "--timeout", "60s", "consume", "grp2", "--group", "g2", "--follow")
	cmd.Env = append(os.Environ(), "STRATA_CONTEXT_FILE="+filepath.Join(t.TempDir(), "ctx.json"), "STRATA_CONTEXT=")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	within(t, 20*time.Second, "the member to join and own both partitions", func() error {
		d, err := tryDescribe(t, "g2")
		if err != nil {
			return err
		}
		if len(d.Members) != 1 || len(d.Members[0].Assigned) != 2 {
			return fmt.Errorf("%+v", d)
		}
		return nil
	})
	d := describeGroup(t, "g2")
	if d.Members[0].ClientID != "strata-cli" || d.Partitions[0].MemberID != d.Members[0].MemberID {
		t.Errorf("describe: %+v", d)
	}
	if list := mustStrata(t, "", "group", "list"); !strings.Contains(list, "g2") {
		t.Errorf("group list lacks g2:\n%s", list)
	}
	if _, errs, code := strata(t, "", "group", "delete", "g2"); code != 1 || !strings.Contains(errs, "member") {
		t.Errorf("delete with a live member: exit %d: %s", code, errs)
	}
	if _, errs, code := strata(t, "", "group", "reset-offsets", "g2", "--topic", "grp2", "--to-earliest"); code != 1 || !strings.Contains(errs, "--force") {
		t.Errorf("reset with a live member: exit %d: %s", code, errs)
	}
	mustStrata(t, "", "group", "reset-offsets", "g2", "--topic", "grp2", "--to-earliest", "--force")

	within(t, 20*time.Second, "the member to print the four records", func() error {
		if n := strings.Count(out.String(), "\n"); n < 4 {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
	// Idle, it still commits what it printed within its commit interval.
	within(t, 5*time.Second, "the idle member to commit what it printed (lag 0)", func() error {
		d, err := tryDescribe(t, "g2")
		if err != nil {
			return err
		}
		if len(d.Members) != 1 || d.TotalLag != 0 {
			return fmt.Errorf("members %d, total lag %d", len(d.Members), d.TotalLag)
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("consume --group after SIGINT: %v\n%s", exitErr, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("consume --group did not exit after SIGINT")
	}
	// It left: the group is empty.
	d = describeGroup(t, "g2")
	if len(d.Members) != 0 {
		t.Fatalf("members after the consumer left: %+v", d.Members)
	}
	mustStrata(t, "", "group", "delete", "g2")
	if list := mustStrata(t, "", "group", "list"); strings.Contains(list, "g2") {
		t.Errorf("group list after delete:\n%s", list)
	}
	if _, errs, code := strata(t, "", "group", "describe", "g2"); code != 1 || !strings.Contains(errs, `group "g2" not found`) {
		t.Errorf("describe after delete: exit %d: %s", code, errs)
	}
}

// TestGroupResetOffsets: every --to-* resolved against the partition's
// leader, the old and new offsets printed, --dry-run changing nothing,
// and the next consume --group starting at the new offset.
func TestGroupResetOffsets(t *testing.T) {
	mustStrata(t, "", "topic", "create", "grp3", "--partitions", "1")
	mustStrata(t, "r0\nr1\nr2\nr3\nr4\n", "produce", "grp3")
	between := time.Now().Add(time.Millisecond) // after r0-r4's timestamps, before r5's
	mustStrata(t, "r5\nr6\nr7\nr8\nr9\n", "produce", "grp3")
	mustStrata(t, "", "consume", "grp3", "--group", "g3", "-n", "2") // committed 2

	type row struct {
		Old int64 `json:"old"`
		New int64 `json:"new"`
	}
	reset := func(args ...string) row {
		t.Helper()
		var r struct {
			DryRun  bool  `json:"dry_run"`
			Offsets []row `json:"offsets"`
		}
		out := mustStrata(t, "", append([]string{"group", "reset-offsets", "g3", "--topic", "grp3", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Offsets) != 1 {
			t.Fatalf("%v: %q %v", args, out, err)
		}
		return r.Offsets[0]
	}
	for _, tc := range []struct {
		name     string
		args     []string
		old, new int64
	}{
		{"dry run", []string{"--to-latest", "--dry-run"}, 2, 10},
		{"shift forward", []string{"--shift-by", "3"}, 2, 5},
		{"shift back past the start", []string{"--shift-by", "-100"}, 5, 0},
		{"to offset", []string{"--to-offset", "7"}, 0, 7},
		{"to offset past the end", []string{"--to-offset", "1000"}, 7, 10},
		{"to earliest", []string{"--to-earliest"}, 10, 0},
		{"to latest", []string{"--to-latest"}, 0, 10},
		{"to time", []string{"--to-time", between.UTC().Format(time.RFC3339Nano)}, 10, 5},
		{"to a time before everything", []string{"--to-time", "2000-01-01T00:00:00Z"}, 5, 0},
		{"to a time after everything", []string{"--to-time", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := reset(tc.args...); got.Old != tc.old || got.New != tc.new {
				t.Fatalf("old %d new %d, want %d %d", got.Old, got.New, tc.old, tc.new)
			}
		})
	}
	reset("--to-offset", "8")
	if got := mustStrata(t, "", "consume", "grp3", "--group", "g3"); got != "r8\nr9\n" {
		t.Fatalf("consume after a reset to 8: %q", got)
	}
	table := mustStrata(t, "", "group", "reset-offsets", "g3", "--topic", "grp3", "--to-earliest", "--dry-run")
	if !strings.Contains(table, "OLD") || !strings.Contains(table, "dry run: nothing changed") {
		t.Fatalf("dry-run table:\n%s", table)
	}
	for _, args := range [][]string{
		{"--to-earliest", "--to-latest"},
		{},
		{"--to-time", "yesterday"},
		{"--to-offset", "-1"},
	} {
		if _, errs, code := strata(t, "", append([]string{"group", "reset-offsets", "g3", "--topic", "grp3"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2 (usage)", args, code, errs)
		}
	}
	if _, errs, code := strata(t, "", "group", "reset-offsets", "g4-no-commits", "--topic", "grp3", "--shift-by", "1"); code != 1 || !strings.Contains(errs, "no committed offset") {
		t.Errorf("shift of a group without commits: exit %d: %s", code, errs)
	}
}
