package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/atomicfile"
)

// hostList is a repeatable --host flag.
type hostList []string

func (h *hostList) String() string { return fmt.Sprint([]string(*h)) }
func (h *hostList) Set(v string) error {
	if v == "" {
		return errors.New("empty host")
	}
	*h = append(*h, v)
	return nil
}

func runCertIssue(ctx context.Context, e *env, args []string) error {
	fset := e.flagSet()
	out := fset.String("out", ".", "`dir`ectory to write NAME.pem, NAME-key.pem (0600) and ca.pem into")
	profile := fset.String("profile", "client", "certificate `profile`: client, or (admins only) server or peer")
	validity := fset.String("validity", "", "lifetime, a `duration` such as 720h (default and maximum: the profile's, one year)")
	csrFile := fset.String("csr", "", "sign this PEM CSR `file` instead of having admin make a key (NAME must be its CN)")
	force := fset.Bool("force", false, "overwrite existing files")
	var hosts hostList
	fset.Var(&hosts, "host", "DNS name or IP of a server or peer certificate (repeatable)")
	pos, err := e.parse(fset, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	var req any = adminapi.CertRequest{Name: name, Profile: *profile, Hosts: hosts, Validity: *validity}
	path := adminapi.PathCerts
	if *csrFile != "" {
		csr, err := os.ReadFile(*csrFile)
		if err != nil {
			return fmt.Errorf("read CSR: %w", err)
		}
		block, _ := pem.Decode(csr)
		if block == nil {
			return fmt.Errorf("%s holds no PEM block", *csrFile)
		}
		parsed, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return fmt.Errorf("parse CSR: %w", err)
		}
		if cn := parsed.Subject.CommonName; cn != name {
			return usagef("the CSR is for %q, not %q", cn, name)
		}
		req = adminapi.CSRRequest{CSR: string(csr), Profile: *profile, Hosts: hosts, Validity: *validity}
		path = adminapi.PathCertsCSR
	}
	files := map[string]string{"cert": filepath.Join(*out, name+".pem"), "ca": filepath.Join(*out, "ca.pem")}
	if *csrFile == "" {
		files["key"] = filepath.Join(*out, name+"-key.pem")
	}
	// Refuse before asking admin, so no key is minted for nothing.
	if !*force {
		for _, kind := range []string{"cert", "key"} {
			if p, ok := files[kind]; ok {
				if _, err := os.Stat(p); err == nil {
					return fmt.Errorf("%s exists (use --force to overwrite)", p)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
	}
	a, err := e.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	var b adminapi.CertBundle
	if err := a.do(ctx, http.MethodPost, path, req, &b); err != nil {
		return err
	}
	if b.Name != name {
		return fmt.Errorf("admin issued a certificate for %q, not %q (the CSR's CN must be NAME)", b.Name, name)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("out dir: %w", err)
	}
	// Key first: a key without its certificate is the safer half-state.
	if b.Key != "" {
		if err := atomicfile.Write(files["key"], []byte(b.Key), 0o600); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(files["cert"], []byte(b.Cert), 0o644); err != nil {
		return err
	}
	if err := writeCA(files["ca"], []byte(b.CA), *force); err != nil {
		return err
	}
	if e.g.json {
		return printJSON(e.io.Out, map[string]any{"name": b.Name, "profile": b.Profile, "serial": b.Serial,
			"not_after": b.NotAfter, "files": files})
	}
	t := newTable(e.io.Out, "FILE", "WHAT")
	t.row(files["cert"], fmt.Sprintf("%s certificate %s, serial %s, expires %s", b.Profile, b.Name, b.Serial, b.NotAfter.Format(time.RFC3339)))
	if b.Key != "" {
		t.row(files["key"], "private key (0600)")
	}
	t.row(files["ca"], "cluster CA")
	return t.flush()
}

// writeCA writes the CA file unless an identical one is there; a
// different one is kept unless force.
func writeCA(path string, caPEM []byte, force bool) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, caPEM):
		return nil
	case err == nil && !force:
		return fmt.Errorf("%s holds another CA (use --force to overwrite)", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return atomicfile.Write(path, caPEM, 0o644)
}

func runCertCA(ctx context.Context, e *env, args []string) error {
	fset := e.flagSet()
	out := fset.String("out", "", "write the CA to this `file` instead of stdout")
	if _, err := e.parse(fset, args, 0, 0); err != nil {
		return err
	}
	a, err := e.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	caPEM, err := a.raw(ctx, http.MethodGet, adminapi.PathCA, nil)
	if err != nil {
		return err
	}
	if *out != "" {
		return atomicfile.Write(*out, caPEM, 0o644)
	}
	_, err = e.io.Out.Write(caPEM)
	return err
}

var _ flag.Value = (*hostList)(nil)
