package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// writeTestIdentity writes a CA and a client certificate signed by it,
// and returns the three PEM paths.
func writeTestIdentity(tb testing.TB, dir, name string) (ca, cert, key string) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &leafKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		tb.Fatal(err)
	}
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write(name+".pem", "CERTIFICATE", leafDER), write(name+"-key.pem", "PRIVATE KEY", keyDER)
}

func TestCertExportP12(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestIdentity(t, dir, "operator")
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(dir, "ctx.json")}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		extra    []string
		env      string
		password string // "" when generated
	}{
		{"password file", []string{"--password-file", pw}, "", "s3cret"},
		{"legacy, password from the environment", []string{"--legacy"}, "from-env", "from-env"},
		{"generated password", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "operator.p12")
			vars[p12PasswordEnv] = tc.env
			io, stdout, errb := testIO(vars)
			args := append([]string{"--ca", ca, "--cert", cert, "--key", key, "cert", "export", "--p12", out}, tc.extra...)
			if code := Run(context.Background(), args, io); code != 0 {
				t.Fatalf("exit %d: %s", code, errb)
			}
			password := tc.password
			if password == "" {
				_, after, ok := strings.Cut(stdout.String(), "password: ")
				if !ok {
					t.Fatalf("generated password not printed: %q", stdout)
				}
				password, _, _ = strings.Cut(after, "\n")
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v", st.Mode(), err)
			}
			priv, leaf, chain, err := pkcs12.DecodeChain(b, password)
			if err != nil {
				t.Fatal(err)
			}
			if leaf.Subject.CommonName != "operator" || len(chain) != 1 || chain[0].Subject.CommonName != "test-ca" {
				t.Fatalf("leaf %q, chain %d", leaf.Subject.CommonName, len(chain))
			}
			if pub, ok := priv.(*ecdsa.PrivateKey); !ok || !pub.PublicKey.Equal(leaf.PublicKey) {
				t.Fatal("the key is not the certificate's")
			}
			if _, _, _, err := pkcs12.DecodeChain(b, "wrong"); err == nil {
				t.Fatal("decoded with a wrong password")
			}
			// No overwrite without --force.
			io, _, errb = testIO(vars)
			if code := Run(context.Background(), args, io); code == 0 || !strings.Contains(errb.String(), "exists") {
				t.Fatalf("overwrote without --force: %d %s", code, errb)
			}
		})
	}
	io, _, errb := testIO(vars)
	if code := Run(context.Background(), []string{"cert", "export"}, io); code != exitUsage || !strings.Contains(errb.String(), "--p12") {
		t.Fatalf("no --p12: %d %s", code, errb)
	}
	io, _, errb = testIO(vars)
	if code := Run(context.Background(), []string{"cert", "export", "--p12", filepath.Join(dir, "x.p12")}, io); code != exitUsage || !strings.Contains(errb.String(), "no client certificate") {
		t.Fatalf("no certificate: %d %s", code, errb)
	}
}
