package authz

import (
	"fmt"
	"net/url"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
)

// NewWatcher builds the watcher that keeps a's policy in step with the
// admin service at adminURL ("https://host:port"), dialling it with the
// broker's own certificate (files) and checking admin's certificate
// against the broker's CA for the URL's host. Start it with Start and
// stop it with Close.
func NewWatcher(a *acl.Authorizer, adminURL string, files pki.Files, lg *zap.Logger) (*acl.Watcher, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, fmt.Errorf("authz: acl-admin-url: %w", err)
	}
	rl, err := pki.NewReloader(files, pki.ReloaderOptions{}, lg)
	if err != nil {
		return nil, fmt.Errorf("authz: acl-admin-url: tls: %w", err)
	}
	tc, err := rl.ClientConfig(u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("authz: acl-admin-url: tls: %w", err)
	}
	w, err := acl.NewWatcher(a, acl.WatcherOptions{AdminURL: adminURL, TLS: tc}, lg)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	return w, nil
}
