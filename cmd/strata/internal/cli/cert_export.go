package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// p12PasswordEnv holds the PKCS#12 password when no --password-file is
// given.
const p12PasswordEnv = "STRATA_P12_PASSWORD"

// runCertExport bundles the context's client certificate, its key and the
// cluster CA into a PKCS#12 file that a browser or a keychain imports
// (the web console needs the operator's identity in the browser). The
// password comes from --password-file, $STRATA_P12_PASSWORD, or is
// generated and printed once.
func runCertExport(_ context.Context, e *env, args []string) error {
	fset := e.flagSet()
	out := fset.String("p12", "", "write the PKCS#12 bundle to this `file` (0600)")
	passFile := fset.String("password-file", "", "read the bundle's password from the first line of this `file` (default: $"+p12PasswordEnv+", else a generated one, printed)")
	legacy := fset.Bool("legacy", false, "encrypt with 3DES and SHA-1 (for importers that reject AES, such as macOS before 14) instead of AES-256 and SHA-256")
	force := fset.Bool("force", false, "overwrite an existing file")
	if _, err := e.parse(fset, args, 0, 0); err != nil {
		return err
	}
	if *out == "" {
		return usagef("cert export needs --p12 FILE")
	}
	c, err := e.resolve()
	if err != nil {
		return err
	}
	if c.Cert == "" || c.Key == "" {
		return usagef("no client certificate to export: give --cert and --key, or use a context that has them")
	}
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return fmt.Errorf("load %s and %s: %w", c.Cert, c.Key, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse %s: %w", c.Cert, err)
	}
	var chain []*x509.Certificate
	for _, der := range pair.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parse %s: %w", c.Cert, err)
		}
		chain = append(chain, cert)
	}
	if c.CA != "" {
		cas, err := readCerts(c.CA)
		if err != nil {
			return err
		}
		chain = append(chain, cas...)
	}
	password, generated := e.io.Getenv(p12PasswordEnv), false
	switch {
	case *passFile != "":
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return fmt.Errorf("password file: %w", err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimSuffix(password, "\r")
	case password == "":
		password, generated = rand.Text(), true
	}
	if password == "" {
		return usagef("the PKCS#12 password is empty")
	}
	enc := pkcs12.Modern
	if *legacy {
		enc = pkcs12.LegacyDES
	}
	p12, err := enc.Encode(pair.PrivateKey, leaf, chain, password)
	if err != nil {
		return fmt.Errorf("encode PKCS#12: %w", err)
	}
	if !*force {
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%s exists (use --force to overwrite)", *out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := atomicfile.Write(*out, p12, 0o600); err != nil {
		return err
	}
	if e.g.json {
		res := map[string]any{"file": *out, "identity": leaf.Subject.CommonName, "not_after": leaf.NotAfter, "ca_certs": len(chain)}
		if generated {
			res["password"] = password
		}
		return printJSON(e.io.Out, res)
	}
	fmt.Fprintf(e.io.Out, "%s: PKCS#12 of %s (expires %s) with its key and %d CA certificate(s)\n",
		*out, leaf.Subject.CommonName, leaf.NotAfter.Format(time.RFC3339), len(chain))
	if generated {
		fmt.Fprintf(e.io.Out, "password: %s\n(shown once; set $%s or --password-file to choose one)\n", password, p12PasswordEnv)
	}
	return nil
}

// readCerts reads every CERTIFICATE block of a PEM file.
func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CA %s: %w", path, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return out, nil
}
