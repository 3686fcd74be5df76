package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testIO(env map[string]string) (IO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }}, &out, &errb
}

func TestContextFileCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctx.json")
	vars := map[string]string{"STRATA_CONTEXT_FILE": path}
	run := func(args ...string) (int, string) {
		io, out, errb := testIO(vars)
		code := Run(context.Background(), args, io)
		return code, out.String() + errb.String()
	}
	if code, out := run("context", "set", "dev", "--brokers", "a:1,b:2", "--insecure"); code != 0 {
		t.Fatalf("set dev: %d %s", code, out)
	}
	if code, out := run("context", "set", "prod", "--brokers", "p:1", "--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem", "--admin", "https://admin"); code != 0 {
		t.Fatalf("set prod: %d %s", code, out)
	}
	cf, err := loadContexts(path)
	if err != nil {
		t.Fatal(err)
	}
	if cf.Current != "dev" || !cf.Contexts["dev"].Insecure || len(cf.Contexts["dev"].Brokers) != 2 || cf.Contexts["prod"].Admin != "https://admin" {
		t.Fatalf("contexts file: %+v", cf)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("contexts file mode: %v %v", st.Mode(), err)
	}
	// Updating one field keeps the others.
	if code, out := run("context", "set", "prod", "--brokers", "p:2"); code != 0 {
		t.Fatal(out)
	}
	if code, out := run("context", "use", "prod"); code != 0 {
		t.Fatal(out)
	}
	e := &env{io: IO{Getenv: func(k string) string { return vars[k] }}, g: &globals{}}
	c, err := e.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.Brokers[0] != "p:2" || c.CA != "ca.pem" || c.Key != "k.pem" {
		t.Fatalf("resolved prod: %+v", c)
	}
	// Flags override the context; --context picks another one.
	e.g = &globals{context: "dev", brokers: "x:9"}
	if c, err = e.resolve(); err != nil || c.Brokers[0] != "x:9" || !c.Insecure {
		t.Fatalf("resolved dev with override: %+v %v", c, err)
	}
	// --insecure on the command line replaces a TLS context's files, and
	// TLS files on the command line replace an insecure context.
	e.g = &globals{context: "prod", insecure: boolFlag{set: true, v: true}}
	if c, err = e.resolve(); err != nil || !c.Insecure || c.CA != "" || c.Cert != "" || c.Key != "" {
		t.Fatalf("prod with --insecure: %+v %v", c, err)
	}
	if _, err := tlsConfig(c); err != nil {
		t.Fatalf("prod with --insecure: tls config: %v", err)
	}
	e.g = &globals{context: "dev", ca: "ca.pem", cert: "c.pem", key: "k.pem"}
	if c, err = e.resolve(); err != nil || c.Insecure || c.CA != "ca.pem" {
		t.Fatalf("dev with TLS flags: %+v %v", c, err)
	}
	e.g = &globals{context: "prod", insecure: boolFlag{set: true, v: true}, ca: "other.pem"}
	if c, err = e.resolve(); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsConfig(c); err == nil {
		t.Fatal("--insecure with --ca on the command line was accepted")
	}
	e.g = &globals{context: "nope"}
	if _, err := e.resolve(); err == nil || !strings.Contains(err.Error(), `context "nope" not found`) {
		t.Fatalf("unknown context: %v", err)
	}
	if code, out := run("context", "use", "nope"); code != 1 || !strings.Contains(out, `strata: context "nope" not found`) {
		t.Fatalf("use unknown: %d %q", code, out)
	}
	if code, out := run("context", "list"); code != 0 || !strings.Contains(out, "*        prod") {
		t.Fatalf("list: %d %q", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"topic"},
		{"topic", "create"},
		{"consume", "t", "--from", "yesterday"},
		{"produce", "--bogus-flag", "t"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			io, _, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
			if code := Run(context.Background(), args, io); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errb)
			}
			if !strings.HasPrefix(errb.String(), "strata: ") && !strings.Contains(errb.String(), "strata:") {
				t.Fatalf("stderr %q lacks the strata: prefix", errb)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	cfg, err := tlsConfig(Context{CA: ca, Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("tls config: min %x roots %v certs %d", cfg.MinVersion, cfg.RootCAs != nil, len(cfg.Certificates))
	}
	if cfg, err := tlsConfig(Context{Insecure: true}); err != nil || cfg != nil {
		t.Fatalf("insecure: %v %v", cfg, err)
	}
	for name, c := range map[string]Context{
		"nothing":           {},
		"insecure with tls": {Insecure: true, CA: ca},
		"cert without key":  {CA: ca, Cert: cert},
	} {
		if _, err := tlsConfig(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// writeTestPKI writes a self-signed CA and a client cert signed by it.
func writeTestPKI(tb testing.TB, dir string) (ca, cert, key string) {
	tb.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	cKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "alice"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caCert, _ := x509.ParseCertificate(caDER)
	cDER, err := x509.CreateCertificate(rand.Reader, cTmpl, caCert, &cKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	kDER, _ := x509.MarshalECPrivateKey(cKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("client.pem", "CERTIFICATE", cDER), write("client.key", "EC PRIVATE KEY", kDER)
}
