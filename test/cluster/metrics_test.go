package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// promtool finds promtool (Debian's prometheus package). It skips the test
// when promtool is missing, unless CI is set: there it must be installed
// (.ci/run does).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool missing with CI=%s: .ci/run installs Debian's prometheus package", os.Getenv("CI"))
		}
		t.Skip("promtool not installed (apt-get install prometheus); CI requires it")
	}
	return p
}

// TestMetricsPassPromtool scrapes every service of a running cluster
// (three brokers, three replicators and admin) after acks=all traffic and
// checks each /metrics page with `promtool check metrics` (naming, units,
// suffixes, help), and that the series operators page on are there.
func TestMetricsPassPromtool(t *testing.T) {
	tool := promtool(t)
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 3, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	waitFullISR(t, cl, 30*time.Second)
	produceAll(t, cl, "m", 60)
	admin := c.startAdmin(t)

	pages := map[string]string{"admin": "https://" + admin + "/metrics"}
	for _, n := range c.nodes {
		pages[fmt.Sprintf("broker-%d", n.id)] = "http://" + n.brokerMetrics + "/metrics"
		pages[fmt.Sprintf("replicator-%d", n.id)] = "http://" + n.replMetrics + "/metrics"
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.tls("admin")}}
	all := map[string]string{}
	for name, url := range pages {
		var body []byte
		eventually(t, 20*time.Second, func() error {
			resp, err := hc.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			body, err = io.ReadAll(resp.Body)
			return err
		})
		all[name] = string(body)
		cmd := exec.Command(tool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: promtool check metrics: %v\n%s", name, err, out)
		}
	}
	for _, want := range []struct{ page, series string }{
		{"broker-", `strata_broker_produce_batch_duration_seconds_bucket{acks="all"`},
		{"broker-", `strata_broker_read_batch_duration_seconds_bucket{kind="fetch"`},
		{"broker-", "strata_broker_under_min_isr{"},
		{"broker-", "strata_broker_data_dir_free_bytes{"},
		{"broker-", "strata_broker_data_dir_used_bytes{"},
		{"replicator-", `strata_partitions{state="offline"}`},
		{"replicator-", `strata_partitions{state="under_min_isr"}`},
		{"replicator-", "strata_raft_commit_duration_seconds_bucket"},
		{"replicator-", "strata_raft_fsm_apply_duration_seconds_bucket"},
		{"replicator-", `strata_raft_state_changes_total{state="leader"}`},
	} {
		found := false
		for name, body := range all {
			if strings.HasPrefix(name, want.page) && strings.Contains(body, want.series) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s page has %s", want.page, want.series)
		}
	}
	// One replicator won the election: its leader count is not zero.
	leader := false
	for name, body := range all {
		if strings.HasPrefix(name, "replicator-") && strings.Contains(body, `strata_raft_state_changes_total{state="leader"} 1`) {
			leader = true
		}
	}
	if !leader {
		t.Error(`no replicator counted its leadership in strata_raft_state_changes_total{state="leader"}`)
	}
}

// startAdmin launches strata-admin serve on the cluster's PKI and returns
// its address once it answers.
func (c *cluster) startAdmin(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	dir := t.TempDir()
	f := c.pkiFile
	cmd, exited := c.spawn(filepath.Join(dir, "admin.log"), bins.admin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", f("admin.pem"), "--tls-key", f("admin-key.pem"), "--tls-ca", f("ca.pem"))
	t.Cleanup(func() { stopProcess(cmd, exited, 9) })
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: c.tls("admin")}}
	eventually(t, 20*time.Second, func() error {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return addr
}
