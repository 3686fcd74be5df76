package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/config"
)

// tlsConfig is testConfig with mutual TLS as broker-1 of the InitCluster
// directory certs (and therefore authorization on).
func tlsConfig(dir, certs string) config.Config {
	c := testConfig(dir)
	f := pki.DirFiles(certs, "broker-1")
	c.TLSCert, c.TLSKey, c.TLSCA = f.CertFile, f.KeyFile, f.CAFile
	c.InsecureNoAuth = false
	return c
}

// initCerts writes a CA, broker-1 and client certificates for operator
// (bound to admin by the default policy), alice and bob.
func initCerts(tb testing.TB) string {
	tb.Helper()
	certs := tb.TempDir()
	if _, err := pki.InitCluster(certs, pki.ClusterOptions{
		CAName: "strata-test", Nodes: []string{"1"}, Operators: []string{"operator", "alice", "bob"},
	}, zaptest.NewLogger(tb)); err != nil {
		tb.Fatal(err)
	}
	return certs
}

// writePolicy writes the default policy followed by extra lines and
// returns the file name.
func writePolicy(tb testing.TB, extra ...string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "policy.csv")
	text := acl.DefaultPolicy + strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// startTLSBroker starts a broker with cfg (TLS on) and no plaintext client.
func startTLSBroker(tb testing.TB, cfg config.Config) *Broker {
	tb.Helper()
	b, err := Start(context.Background(), cfg, zaptest.NewLogger(tb), Options{Getenv: func(string) string { return "" }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Shutdown(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return b
}

// dialAs dials b over mTLS with the client certificate of identity name.
func dialAs(tb testing.TB, b *Broker, certs, name string) clients {
	tb.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(certs, name), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tlsCfg, err := rl.ClientConfig("localhost")
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := grpc.NewClient(b.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return clients{stratav1.NewLogClient(conn), stratav1.NewTopicsClient(conn), stratav1.NewMetadataClient(conn), conn}
}

func produce(ctx context.Context, c clients, topic string) error {
	_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Records: values(1, "v")})
	return err
}

// firstConsumed opens a ConsumeStream from the earliest offset and returns
// the first message's error.
func firstConsumed(ctx context.Context, c clients, topic string) (*stratav1.ConsumeResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: topic,
		Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_EARLIEST}})
	if err != nil {
		return nil, err
	}
	return cs.Recv()
}

func TestAuthzDefaultPolicy(t *testing.T) {
	certs := initCerts(t)
	b := startTLSBroker(t, tlsConfig(t.TempDir(), certs))
	op, alice := dialAs(t, b, certs, "operator"), dialAs(t, b, certs, "alice")
	ctx := ctxT(t)
	createTopic(t, op, "orders-1", nil)

	t.Run("operator produces and consumes", func(t *testing.T) {
		if err := produce(ctx, op, "orders-1"); err != nil {
			t.Fatalf("operator Produce: %v", err)
		}
		r, err := firstConsumed(ctx, op, "orders-1")
		if err != nil {
			t.Fatalf("operator ConsumeStream: %v", err)
		}
		if len(r.GetRecords()) == 0 {
			t.Fatalf("operator ConsumeStream = %v, want the produced record", r)
		}
		if _, err := op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "orders-1"}); err != nil {
			t.Fatalf("operator Consume: %v", err)
		}
		if _, err := op.meta.Metadata(ctx, &stratav1.MetadataRequest{}); err != nil {
			t.Fatalf("operator Metadata: %v", err)
		}
	})
	t.Run("alice without rules is denied", func(t *testing.T) {
		st := wantCode(t, produce(ctx, alice, "orders-1"), codes.PermissionDenied)
		if !strings.Contains(st.Message(), `"alice"`) || !strings.Contains(st.Message(), "produce") {
			t.Errorf("denial %q does not name the subject and action", st.Message())
		}
		_, err := firstConsumed(ctx, alice, "orders-1")
		wantCode(t, err, codes.PermissionDenied)
		_, err = alice.topics.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		wantCode(t, err, codes.PermissionDenied)
		_, err = alice.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "alice-topic"})
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("identity in metadata is ignored", func(t *testing.T) {
		spoofed := metadata.AppendToOutgoingContext(ctx, "x-identity", "operator", "x-strata-identity", "admin", "authorization", "operator")
		wantCode(t, produce(spoofed, alice, "orders-1"), codes.PermissionDenied)
		_, err := firstConsumed(spoofed, alice, "orders-1")
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("health check for any authenticated caller", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(alice.conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("alice health check: %v", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health = %v, want SERVING", resp.GetStatus())
		}
	})
}

func TestAuthzPolicyFile(t *testing.T) {
	certs := initCerts(t)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ACLPolicy = writePolicy(t,
		"p, alice, orders*, produce, allow",
		"p, alice, orders-secret, produce, deny",
		"p, bob, *, consume, allow",
		"p, bob, payments, consume, deny",
	)
	b := startTLSBroker(t, cfg)
	op, alice, bob := dialAs(t, b, certs, "operator"), dialAs(t, b, certs, "alice"), dialAs(t, b, certs, "bob")
	ctx := ctxT(t)
	for _, name := range []string{"orders-1", "orders-secret", "payments"} {
		createTopic(t, op, name, nil)
		if err := produce(ctx, op, name); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("pattern allows only matching topics", func(t *testing.T) {
		if err := produce(ctx, alice, "orders-1"); err != nil {
			t.Fatalf("alice Produce orders-1: %v", err)
		}
		wantCode(t, produce(ctx, alice, "payments"), codes.PermissionDenied)
	})
	t.Run("produce does not grant consume", func(t *testing.T) {
		_, err := firstConsumed(ctx, alice, "orders-1")
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("stream switching to a denied topic is cut", func(t *testing.T) {
		ps, err := alice.log.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := ps.Send(&stratav1.ProduceRequest{Topic: "orders-1", Records: values(1, "s")}); err != nil {
			t.Fatal(err)
		}
		if r, err := ps.Recv(); err != nil || r.Error != nil {
			t.Fatalf("ProduceStream to orders-1 = %v, %v", r, err)
		}
		if err := ps.Send(&stratav1.ProduceRequest{Topic: "payments", Records: values(1, "s")}); err != nil {
			t.Fatal(err)
		}
		_, err = ps.Recv()
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("deny overrides allow", func(t *testing.T) {
		wantCode(t, produce(ctx, alice, "orders-secret"), codes.PermissionDenied)
		if _, err := firstConsumed(ctx, bob, "orders-1"); err != nil {
			t.Fatalf("bob ConsumeStream orders-1: %v", err)
		}
		_, err := firstConsumed(ctx, bob, "payments")
		wantCode(t, err, codes.PermissionDenied)
	})
}

// TestAuthzPolicyCacheSurvivesRestart replaces the policy at run time and
// checks that a restart enforces the replacement, not the configured file.
func TestAuthzPolicyCacheSurvivesRestart(t *testing.T) {
	certs := initCerts(t)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ACLPolicy = writePolicy(t)
	ctx := ctxT(t)

	b := startTLSBroker(t, cfg)
	createTopic(t, dialAs(t, b, certs, "operator"), "orders-1", nil)
	alice := dialAs(t, b, certs, "alice")
	wantCode(t, produce(ctx, alice, "orders-1"), codes.PermissionDenied)
	if err := b.Authorizer().Replace(acl.DefaultPolicy + "p, alice, orders*, produce, allow\n"); err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, alice, "orders-1"); err != nil {
		t.Fatalf("after Replace: alice Produce: %v", err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	b2 := startTLSBroker(t, cfg)
	if err := produce(ctx, dialAs(t, b2, certs, "alice"), "orders-1"); err != nil {
		t.Fatalf("after restart: alice Produce: %v, want the cached policy in force", err)
	}
}

func TestAuthzStartRefusals(t *testing.T) {
	certs := initCerts(t)
	tests := []struct {
		name    string
		mod     func(*config.Config)
		wantErr string
	}{
		{"plaintext without insecure-no-auth", func(c *config.Config) {
			c.TLSCert, c.TLSKey, c.TLSCA = "", "", ""
		}, "insecure-no-auth"},
		{"missing policy file", func(c *config.Config) {
			c.ACLPolicy = filepath.Join(t.TempDir(), "absent.csv")
		}, "acl-policy"},
		{"invalid policy", func(c *config.Config) {
			c.ACLPolicy = filepath.Join(t.TempDir(), "bad.csv")
			if err := os.WriteFile(c.ACLPolicy, []byte("p, alice, orders, fly, allow\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "acl-policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsConfig(t.TempDir(), certs)
			tt.mod(&cfg)
			b, err := Start(context.Background(), cfg, zaptest.NewLogger(t), Options{Getenv: func(string) string { return "" }})
			if err == nil {
				t.Errorf("Start = nil error, want one containing %q", tt.wantErr)
				if err := b.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
				return
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
