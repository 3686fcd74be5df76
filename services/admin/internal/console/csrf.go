package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
)

// Cross-site request forgery: a browser sends the operator's client
// certificate to admin whatever page made the request, so a form on
// another site could post to the console as the operator. Every
// state-changing request must pass two checks:
//
//   - same origin: its Origin header names this very host over https
//     (browsers send Origin on every POST); without Origin, or with
//     Origin "null", Sec-Fetch-Site must say same-origin; without either
//     it is refused;
//   - a token: the form's csrf field must be the HMAC, under a key only
//     admin holds, of the caller's identity, which another site cannot
//     read or compute.

// csrfField is the forms' token field.
const csrfField = "csrf"

type csrf struct {
	key []byte
}

// token is the form token of identity id.
func (c csrf) token(id string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("strata-console-csrf\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin reports whether r comes from a page of this host.
func sameOrigin(r *http.Request) bool {
	// A page under "Referrer-Policy: no-referrer" (or a sandboxed frame)
	// sends Origin: null; then only Sec-Fetch-Site can tell.
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Scheme == "https" && u.Host == r.Host && u.Path == "" && u.User == nil
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// middleware refuses a request that fails either check with a 403 page.
func (c csrf) middleware(con *Console) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !sameOrigin(r) {
				con.fail(w, r, http.StatusForbidden, "Refused: this form was not sent from a console page of this host (cross-site request).")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			got := r.PostFormValue(csrfField)
			want := c.token(con.opts.Identity(r.Context()))
			if !hmac.Equal([]byte(got), []byte(want)) {
				con.fail(w, r, http.StatusForbidden, "Refused: the form's token is missing or stale. Load the page again and resubmit.")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// maxFormBytes bounds a form body (a policy is at most a few hundred KiB).
const maxFormBytes = 1 << 20
