package broker

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// listTopicsWith dials b with creds and makes one call, bounded.
func listTopicsWith(tb testing.TB, b *Broker, creds credentials.TransportCredentials) error {
	tb.Helper()
	conn, err := grpc.NewClient(b.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = stratav1.NewTopicsClient(conn).ListTopics(ctx, &stratav1.ListTopicsRequest{})
	return err
}

func loadCA(tb testing.TB, certs string) *pki.CA {
	tb.Helper()
	ca, err := pki.LoadCAFiles(filepath.Join(certs, pki.CAFileName), filepath.Join(certs, pki.CAKeyFileName), zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return ca
}

// TestBrokerListenerTLSNegatives: every bad client (and a client facing a
// bad server name) is refused, and the broker keeps serving good clients
// after each.
func TestBrokerListenerTLSNegatives(t *testing.T) {
	certs := initCerts(t)
	b := startTLSBroker(t, tlsConfig(t.TempDir(), certs))
	ca := loadCA(t, certs)
	other, err := pki.CreateCA(pki.CAOptions{CommonName: "other-ca"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opRL, err := pki.NewReloader(pki.DirFiles(certs, "operator"), pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	good, err := opRL.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(kp *pki.KeyPair, err error) *tls.Config {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg := good.Clone()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}
	now := time.Now()
	expectServing := func(t *testing.T) {
		t.Helper()
		if err := listTopicsWith(t, b, credentials.NewTLS(good)); err != nil {
			t.Fatalf("good client refused after a bad one: %v", err)
		}
	}
	for _, tc := range []struct {
		name  string
		creds func() credentials.TransportCredentials
		// why is a fragment of the error; empty when any refusal will do.
		why string
	}{
		{"no client certificate", func() credentials.TransportCredentials {
			cfg := good.Clone()
			cfg.GetClientCertificate = nil
			return credentials.NewTLS(cfg)
		}, "certificate required"},
		{"client certificate from another CA", func() credentials.TransportCredentials {
			return credentials.NewTLS(withCert(other.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileClient})))
		}, ""},
		{"expired client certificate", func() credentials.TransportCredentials {
			return credentials.NewTLS(withCert(ca.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileClient,
				NotBefore: now.Add(-48 * time.Hour), Validity: time.Hour})))
		}, "expired certificate"},
		{"not yet valid client certificate", func() credentials.TransportCredentials {
			return credentials.NewTLS(withCert(ca.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileClient,
				NotBefore: now.Add(24 * time.Hour), Validity: time.Hour})))
		}, "expired certificate"}, // crypto/tls sends one alert for both ends of the window
		{"server-only certificate used as a client", func() credentials.TransportCredentials {
			return credentials.NewTLS(withCert(ca.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileServer,
				DNSNames: []string{"x"}})))
		}, "bad certificate"},
		{"server name not in the broker's SANs", func() credentials.TransportCredentials {
			cfg, err := opRL.ClientConfig("broker-2")
			if err != nil {
				t.Fatal(err)
			}
			return credentials.NewTLS(cfg)
		}, "not broker-2"},
		{"TLS 1.2 only client", func() credentials.TransportCredentials {
			cfg := good.Clone()
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return credentials.NewTLS(cfg)
		}, "protocol version not supported"},
		{"plaintext client", func() credentials.TransportCredentials { return insecure.NewCredentials() }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := listTopicsWith(t, b, tc.creds())
			if err == nil {
				t.Fatal("call succeeded")
			}
			// The broker refuses by alert; when the alert races with the
			// client's first write the client sees only the cut
			// connection. A name mismatch is the client's own refusal.
			cut := strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")
			if !strings.Contains(err.Error(), tc.why) && (tc.why == "not broker-2" || !cut) {
				t.Fatalf("refused for another reason: %v (want %q)", err, tc.why)
			}
			expectServing(t)
		})
	}
	t.Run("client-only certificate used as the broker's", func(t *testing.T) {
		// A broker started with a client-profile certificate: clients
		// refuse it (no serverAuth, no SANs), whatever it authorizes.
		cfg := tlsConfig(t.TempDir(), certs)
		f := pki.DirFiles(certs, "alice")
		cfg.TLSCert, cfg.TLSKey = f.CertFile, f.KeyFile
		bad := startTLSBroker(t, cfg)
		if err := listTopicsWith(t, bad, credentials.NewTLS(good)); err == nil {
			t.Fatal("client accepted a broker serving a client-only certificate")
		}
	})
}

// serverSerial makes a fresh TLS handshake with the broker and returns
// the serial of the certificate it presented.
func serverSerial(tb testing.TB, b *Broker, cfg *tls.Config) string {
	tb.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg.Clone()}
	d.Config.NextProtos = []string{"h2"}
	c, err := d.DialContext(context.Background(), "tcp", b.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestBrokerCertificateRotation: replacing the broker's certificate files
// makes new handshakes present the new certificate while a ConsumeStream
// opened before keeps receiving records.
func TestBrokerCertificateRotation(t *testing.T) {
	certs := initCerts(t)
	b := startTLSBroker(t, tlsConfig(t.TempDir(), certs))
	op := dialAs(t, b, certs, "operator")
	ctx := ctxT(t)
	createTopic(t, op, "rot", nil)
	opRL, err := pki.NewReloader(pki.DirFiles(certs, "operator"), pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	good, err := opRL.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	before := serverSerial(t, b, good)

	cs, err := op.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "rot",
		Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_EARLIEST}})
	if err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, op, "rot"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Recv(); err != nil {
		t.Fatalf("first record: %v", err)
	}

	next, err := loadCA(t, certs).Issue(pki.IssueRequest{CommonName: "broker-1", Profile: pki.ProfilePeer,
		DNSNames: []string{"broker-1", "localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	files := pki.DirFiles(certs, "broker-1")
	for _, f := range []struct {
		path string
		data []byte
	}{{files.KeyFile, next.KeyPEM}, {files.CertFile, next.CertPEM}} {
		if err := os.WriteFile(f.path+".tmp", f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			t.Fatal(err)
		}
	}
	want := next.Cert.SerialNumber.Text(16)
	// The reloader stats the files at most once a second, on handshakes.
	eventually(t, 10*time.Second, func() bool { return serverSerial(t, b, good) == want })
	if before == want {
		t.Fatal("serial did not change")
	}

	if err := produce(ctx, op, "rot"); err != nil {
		t.Fatal(err)
	}
	if r, err := cs.Recv(); err != nil || len(r.GetRecords()) == 0 {
		t.Fatalf("stream opened before the rotation: %v, %v", r, err)
	}
	// A client dialling now sees the new certificate and is served.
	if err := listTopicsWith(t, b, credentials.NewTLS(good)); err != nil {
		t.Fatalf("new connection after rotation: %v", err)
	}
}
