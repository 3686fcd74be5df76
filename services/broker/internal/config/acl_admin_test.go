package config

import (
	"io"
	"strings"
	"testing"
)

func TestACLAdminURL(t *testing.T) {
	tls := func(c *Config) { c.TLSCert, c.TLSKey, c.TLSCA, c.InsecureNoAuth = "c.pem", "k.pem", "ca.pem", false }
	for _, tt := range []struct {
		name, url string
		tls       bool
		wantErr   string
	}{
		{"https host and port", "https://admin:9443", true, ""},
		{"https ip", "https://127.0.0.1:9443/", true, ""},
		{"plain http", "http://admin:9443", true, "scheme must be https"},
		{"no host", "https://", true, "no host"},
		{"a path", "https://admin:9443/v1/acl", true, "want only https://host:port"},
		{"not a url", "::", true, "acl-admin-url"},
		{"without tls", "https://admin:9443", false, "acl-admin-url needs tls-cert"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.InsecureNoAuth = true
			if tt.tls {
				tls(&c)
			}
			c.ACLAdminURL = tt.url
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}

	env := map[string]string{"STRATA_ACL_ADMIN_URL": "https://from-env:9443"}
	args := []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"}
	c, err := Parse(args, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.ACLAdminURL != "https://from-env:9443" {
		t.Fatalf("from STRATA_ACL_ADMIN_URL: %q, %v", c.ACLAdminURL, err)
	}
	c, err = Parse(append(args, "--acl-admin-url", "https://from-flag:9443"), func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.ACLAdminURL != "https://from-flag:9443" {
		t.Fatalf("flag over env: %q, %v", c.ACLAdminURL, err)
	}
}
