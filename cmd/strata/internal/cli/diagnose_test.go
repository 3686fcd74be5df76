package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// testCA is a CA that writes PEM files for tests.
type testCA struct {
	tb     testing.TB
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	file   string // ca.pem
	serial int64
}

func newTestCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &testCA{tb: tb, dir: tb.TempDir(), cert: cert, key: key, serial: 1}
	ca.file = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, typ string, der []byte) string {
	ca.tb.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.tb.Fatal(err)
	}
	return p
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue writes a key pair for cn valid until notAfter: a server
// certificate for 127.0.0.1, or a client certificate.
func (ca *testCA) issue(cn string, server bool, notAfter time.Time) (certFile, keyFile string) {
	ca.tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.tb.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.tb.Fatal(err)
	}
	return ca.write(cn+".pem", "CERTIFICATE", der), ca.write(cn+"-key.pem", "EC PRIVATE KEY", kder)
}

// serverTLS is the mutual TLS config of a server whose certificate ca
// issued, accepting clients of ca only, as the brokers and admin do.
func (ca *testCA) serverTLS() *tls.Config {
	ca.tb.Helper()
	certFile, keyFile := ca.issue("server", true, time.Now().Add(time.Hour))
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ca.tb.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{kp},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool()}
}

// metadataBroker answers Metadata with an empty cluster, or deny's error.
type metadataBroker struct {
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedTopicsServer
	deny error
}

func (b *metadataBroker) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	if b.deny != nil {
		return nil, b.deny
	}
	return &stratav1.MetadataResponse{ControllerId: -1}, nil
}

func (b *metadataBroker) ListTopics(context.Context, *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	if b.deny != nil {
		return nil, b.deny
	}
	return &stratav1.ListTopicsResponse{}, nil
}

// serveBroker serves b on a loopback port, with TLS when tc is set.
func serveBroker(tb testing.TB, b *metadataBroker, tc *tls.Config) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var opts []grpc.ServerOption
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	srv := grpc.NewServer(opts...)
	stratav1.RegisterMetadataServer(srv, b)
	stratav1.RegisterTopicsServer(srv, b)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("serve: %v", err)
		}
	})
	tb.Cleanup(func() { srv.Stop(); wg.Wait() })
	return l.Addr().String()
}

// runForDiagnosis runs the CLI with a fresh contexts file and returns the exit
// code, stdout and stderr.
func runForDiagnosis(tb testing.TB, args ...string) (int, string, string) {
	tb.Helper()
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(tb.TempDir(), "ctx.json")})
	code := Run(context.Background(), append([]string{"--timeout", "20s"}, args...), io)
	return code, out.String(), errb.String()
}

// TestTLSFailuresExplained: a connection the server refuses, or that
// speaks the wrong protocol, is reported as what the server did and what
// to do, not as the transport's last words ("error reading server
// preface: EOF", "write: broken pipe", "http2: client conn could not be
// established").
func TestTLSFailuresExplained(t *testing.T) {
	cluster := newTestCA(t, "cluster-ca")
	other := newTestCA(t, "other-ca")
	tlsBroker := serveBroker(t, &metadataBroker{}, cluster.serverTLS())
	plainBroker := serveBroker(t, &metadataBroker{}, nil)
	admin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"policy": "", "version": 1}`))
	}))
	admin.TLS = cluster.serverTLS()
	admin.EnableHTTP2 = true
	admin.StartTLS()
	t.Cleanup(admin.Close)

	goodCert, goodKey := cluster.issue("alice", false, time.Now().Add(time.Hour))
	expiredCert, expiredKey := cluster.issue("bob", false, time.Now().Add(-time.Hour))
	foreignCert, foreignKey := other.issue("carol", false, time.Now().Add(time.Hour))

	for _, tc := range []struct {
		name string
		args []string
		want []string // in stderr; none: the command succeeds
	}{
		{"a good certificate connects", []string{"--brokers", tlsBroker, "--ca", cluster.file, "--cert", goodCert, "--key", goodKey, "topic", "list"}, nil},
		{"plaintext to a TLS broker", []string{"--brokers", tlsBroker, "--insecure", "topic", "list"},
			[]string{"broker " + tlsBroker + " requires TLS", "drop --insecure"}},
		{"a certificate of another CA", []string{"--brokers", tlsBroker, "--ca", cluster.file, "--cert", foreignCert, "--key", foreignKey, "topic", "list"},
			[]string{"refused this client's certificate (tls: unknown certificate authority)", "not issued by the cluster's CA", "strata cert issue"}},
		{"an expired certificate", []string{"--brokers", tlsBroker, "--ca", cluster.file, "--cert", expiredCert, "--key", expiredKey, "topic", "list"},
			[]string{"refused this client's certificate (tls: expired certificate)", "valid until", "strata cert issue bob --force"}},
		{"no client certificate", []string{"--brokers", tlsBroker, "--ca", cluster.file, "topic", "list"},
			[]string{"requires a client certificate", "--cert and --key"}},
		{"a broker this CA did not sign", []string{"--brokers", tlsBroker, "--ca", other.file, "--cert", foreignCert, "--key", foreignKey, "topic", "list"},
			[]string{"not signed by the CA this client trusts", "strata cert ca"}},
		{"TLS to a plaintext broker", []string{"--brokers", plainBroker, "--ca", cluster.file, "--cert", goodCert, "--key", goodKey, "topic", "list"},
			[]string{"does not speak TLS", "--insecure"}},
		{"admin: a certificate of another CA", []string{"--admin", admin.URL, "--ca", cluster.file, "--cert", foreignCert, "--key", foreignKey, "acl", "list"},
			[]string{"admin " + admin.URL + " refused this client's certificate (tls: unknown certificate authority)", "strata cert issue"}},
		{"admin: an expired certificate", []string{"--admin", admin.URL, "--ca", cluster.file, "--cert", expiredCert, "--key", expiredKey, "acl", "list"},
			[]string{"(tls: expired certificate)", "strata cert issue bob --force"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runForDiagnosis(t, tc.args...)
			if tc.want == nil {
				if code != exitOK {
					t.Fatalf("exit %d\n%s%s", code, out, errs)
				}
				return
			}
			if code != exitError {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitError, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}
}

// TestPermissionDeniedSaysWhichGrant: a broker's ACL denial is a
// permission problem, reported with the grant that is missing; it was
// "cannot reach brokers ...: no broker reachable: ... PermissionDenied".
func TestPermissionDeniedSaysWhichGrant(t *testing.T) {
	st, err := status.New(codes.PermissionDenied, `permission denied: identity "alice" may not describe on "cluster"`).
		WithDetails(&errdetails.ErrorInfo{Reason: "ACL_DENIED", Domain: "acl.strata",
			Metadata: map[string]string{"identity": "alice", "action": "describe", "object": "cluster"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveBroker(t, &metadataBroker{deny: st.Err()}, nil)
	code, out, errs := runForDiagnosis(t, "--brokers", addr, "--insecure", "topic", "list")
	if code != exitError {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitError, out, errs)
	}
	for _, w := range []string{`permission denied: identity "alice" may not describe on "cluster"`, "strata acl add p alice cluster describe"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
	if strings.Contains(errs, "reach") {
		t.Errorf("a denial reported as a connection problem:\n%s", errs)
	}
}
