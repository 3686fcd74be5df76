package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/adminapi"
)

// maxAdminAnswer bounds what the CLI reads from the admin API.
const maxAdminAnswer = 8 << 20

// adminClient calls the admin HTTP API over mutual TLS with the context's
// client certificate.
type adminClient struct {
	base string // https://host:port
	host string // host:port
	tc   *tls.Config
	hc   *http.Client
	tr   *http.Transport
}

// adminError is an answer of the admin API other than 2xx.
type adminError struct {
	status int
	msg    string
}

func (e *adminError) Error() string {
	return fmt.Sprintf("admin refused (%d %s): %s", e.status, http.StatusText(e.status), e.msg)
}

// admin builds the admin client of the resolved context. Close it with
// close.
func (e *env) admin() (*adminClient, error) {
	c, err := e.resolve()
	if err != nil {
		return nil, err
	}
	if c.Admin == "" {
		return nil, usagef("no admin address: pass --admin https://host:port, set $STRATA_ADMIN, or `strata context set NAME --admin URL`")
	}
	u, err := url.Parse(c.Admin)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, usagef("admin address %q: want https://host:port", c.Admin)
	}
	if c.Insecure {
		return nil, usagef("the admin API always needs mutual TLS: a plaintext (--insecure) context cannot reach it")
	}
	if c.Cert == "" {
		return nil, usagef("the admin API needs a client certificate: pass --ca, --cert and --key (or a context with them)")
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	return &adminClient{base: "https://" + u.Host, host: hostPort(u), tc: tc, hc: &http.Client{Transport: tr}, tr: tr}, nil
}

// hostPort is u's host with the port https implies when it names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// close releases the client's connections.
func (a *adminClient) close() { a.tr.CloseIdleConnections() }

// do sends in (JSON, when not nil) and decodes a 2xx answer into out
// (when not nil). Other answers become an *adminError with the API's
// {"error": ...} message.
func (a *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	body, err := a.raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// raw is do without decoding: the 2xx body as is.
func (a *adminClient) raw(ctx context.Context, method, path string, in any) ([]byte, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("admin %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, method, a.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		if p := explainAdmin(ctx, a.base, a.host, a.tc, err); p != nil {
			return nil, p
		}
		return nil, fmt.Errorf("cannot reach admin %s: %w", a.base, err)
	}
	b, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err := errors.Join(readErr, resp.Body.Close()); err != nil {
		return nil, fmt.Errorf("admin %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e adminapi.Error
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &adminError{status: resp.StatusCode, msg: msg}
	}
	return b, nil
}
