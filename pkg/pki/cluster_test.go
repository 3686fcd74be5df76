package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"
)

func clusterOpts() ClusterOptions {
	return ClusterOptions{
		CAName:    "strata-ca",
		Nodes:     []string{"1", "2", "3"},
		NodeHosts: map[string][]string{"1": {"node1.internal", "10.1.0.1"}},
	}
}

func TestInitClusterLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	res, err := InitCluster(dir, clusterOpts(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"broker-1", "replicator-1", "broker-2", "replicator-2", "broker-3", "replicator-3", "admin", "operator"}
	if !res.CACreated || !slices.Equal(res.Written, want) || len(res.Kept) != 0 {
		t.Fatalf("result %+v", res)
	}
	if m := fileMode(t, filepath.Join(dir, CAKeyFileName)); m != 0o600 {
		t.Fatalf("CA key mode %o", m)
	}
	ca, err := LoadCAFiles(filepath.Join(dir, CAFileName), filepath.Join(dir, CAKeyFileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Certificate().Subject.CommonName != "strata-ca" {
		t.Fatalf("CA CN %q", ca.Certificate().Subject.CommonName)
	}
	for _, name := range want {
		if m := fileMode(t, filepath.Join(dir, KeyFileName(name))); m != 0o600 {
			t.Fatalf("%s key mode %o", name, m)
		}
		r := newReloader(t, DirFiles(dir, name), 0)
		c := r.Leaf()
		if c.Subject.CommonName != name {
			t.Fatalf("%s: CN %q", name, c.Subject.CommonName)
		}
		switch name {
		case "operator":
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Fatalf("operator EKU %v", c.ExtKeyUsage)
			}
		default:
			if CheckExtKeyUsage(c, x509.ExtKeyUsageServerAuth) != nil || CheckExtKeyUsage(c, x509.ExtKeyUsageClientAuth) != nil {
				t.Fatalf("%s EKU %v, want peer", name, c.ExtKeyUsage)
			}
			for _, h := range []string{name, "localhost"} {
				if err := c.VerifyHostname(h); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			if err := c.VerifyHostname("127.0.0.1"); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	b1 := newReloader(t, DirFiles(dir, "broker-1"), 0).Leaf()
	if b1.VerifyHostname("node1.internal") != nil || !slices.ContainsFunc(b1.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("10.1.0.1")) }) {
		t.Fatalf("broker-1 lacks its node hosts: %v %v", b1.DNSNames, b1.IPAddresses)
	}
	if newReloader(t, DirFiles(dir, "broker-2"), 0).Leaf().VerifyHostname("node1.internal") == nil {
		t.Fatal("node 1 hosts leaked into broker-2")
	}
}

func TestInitClusterIdempotent(t *testing.T) {
	dir := t.TempDir()
	lg := zaptest.NewLogger(t)
	if _, err := InitCluster(dir, clusterOpts(), lg); err != nil {
		t.Fatal(err)
	}
	caPEM := mustRead(t, dir, CAFileName)
	b1 := mustRead(t, dir, CertFileName("broker-1"))
	b2 := mustRead(t, dir, CertFileName("broker-2"))

	res, err := InitCluster(dir, clusterOpts(), lg)
	if err != nil {
		t.Fatal(err)
	}
	if res.CACreated || len(res.Written) != 0 || len(res.Kept) != 8 {
		t.Fatalf("second run %+v", res)
	}
	if !bytes.Equal(caPEM, mustRead(t, dir, CAFileName)) || !bytes.Equal(b1, mustRead(t, dir, CertFileName("broker-1"))) {
		t.Fatal("second run rewrote existing files")
	}

	// A missing key pair (or half of one) is rewritten; the rest is kept.
	if err := os.Remove(filepath.Join(dir, KeyFileName("broker-2"))); err != nil {
		t.Fatal(err)
	}
	opts := clusterOpts()
	opts.Nodes = append(opts.Nodes, "4")
	res, err = InitCluster(dir, opts, lg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Written, []string{"broker-2", "broker-4", "replicator-4"}) || res.CACreated {
		t.Fatalf("third run %+v", res)
	}
	if bytes.Equal(b2, mustRead(t, dir, CertFileName("broker-2"))) {
		t.Fatal("broker-2 was not reissued")
	}
	if !bytes.Equal(caPEM, mustRead(t, dir, CAFileName)) {
		t.Fatal("CA replaced")
	}
	newReloader(t, DirFiles(dir, "broker-2"), 0) // the rewritten pair matches and chains
}

func TestInitClusterRefuses(t *testing.T) {
	t.Run("half a CA", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, CAFileName), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := InitCluster(dir, clusterOpts(), nil); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cert from another CA", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := InitCluster(dir, clusterOpts(), nil); err != nil {
			t.Fatal(err)
		}
		other := newTestCA(t, "other")
		kp := issue(t, other, IssueRequest{CommonName: "operator", Profile: ProfileClient})
		if err := os.WriteFile(filepath.Join(dir, CertFileName("operator")), kp.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := InitCluster(dir, clusterOpts(), nil); err == nil {
			t.Fatal("foreign certificate accepted")
		}
	})
	for _, tc := range []struct {
		name string
		mod  func(*ClusterOptions)
	}{
		{"no CA name", func(o *ClusterOptions) { o.CAName = "" }},
		{"empty node", func(o *ClusterOptions) { o.Nodes = []string{""} }},
		{"duplicate node", func(o *ClusterOptions) { o.Nodes = []string{"1", "1"} }},
		{"path in name", func(o *ClusterOptions) { o.Nodes = []string{"../x"} }},
		{"hosts for unknown node", func(o *ClusterOptions) { o.NodeHosts = map[string][]string{"9": {"x"}} }},
		{"operator named like admin", func(o *ClusterOptions) { o.Operators = []string{"admin"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := clusterOpts()
			tc.mod(&o)
			if _, err := InitCluster(t.TempDir(), o, nil); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err = %v, want ErrInvalidOptions", err)
			}
		})
	}
}
