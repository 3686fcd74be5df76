package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/services/admin/internal/httpapi"
)

// expiringSoon marks a certificate that expires within this.
const expiringSoon = 30 * 24 * time.Hour

type certRow struct {
	adminapi.IssuedCert
	Expired  bool
	Expiring bool
}

type certsPage struct {
	CAName     string
	CANotAfter time.Time
	CAExpiring bool
	Certs      []certRow
	// Issued is the answer to an issue request, shown once.
	Issued *adminapi.CertBundle
	// Form echoes a refused request.
	Form adminapi.CertRequest
}

func (c *Console) certsPage(r *http.Request) (certsPage, string) {
	var page certsPage
	notice := ""
	now := c.opts.Now()
	if ca, err := c.opts.Backend.CACert(); err != nil {
		notice = "The CA certificate could not be read: " + err.Error()
	} else {
		page.CAName, page.CANotAfter = ca.Subject.CommonName, ca.NotAfter
		page.CAExpiring = ca.NotAfter.Sub(now) < expiringSoon
	}
	certs, err := c.opts.Backend.IssuedCerts()
	if err != nil {
		notice = "The issued certificates could not be listed: " + err.Error()
	}
	for _, ct := range certs {
		page.Certs = append(page.Certs, certRow{IssuedCert: ct, Expired: !ct.NotAfter.After(now),
			Expiring: ct.NotAfter.After(now) && ct.NotAfter.Sub(now) < expiringSoon})
	}
	return page, notice
}

func (c *Console) certs(w http.ResponseWriter, r *http.Request) {
	page, notice := c.certsPage(r)
	c.render(w, r, http.StatusOK, "certs", "Certificates", "certs", notice, page)
}

// certIssue issues a certificate as POST /v1/certs does and shows it,
// with its key, once.
func (c *Console) certIssue(w http.ResponseWriter, r *http.Request) {
	req := adminapi.CertRequest{Name: strings.TrimSpace(r.PostFormValue("name")), Profile: r.PostFormValue("profile"),
		Validity: strings.TrimSpace(r.PostFormValue("validity"))}
	for _, h := range strings.Split(r.PostFormValue("hosts"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			req.Hosts = append(req.Hosts, h)
		}
	}
	b, err := c.opts.Backend.IssueCert(c.opts.Identity(r.Context()), req)
	page, notice := c.certsPage(r)
	if err != nil {
		code, msg := httpapi.ErrorStatus(err)
		page.Form = req
		c.render(w, r, code, "certs", "Certificates", "certs", "Not issued: "+msg, page)
		return
	}
	page.Issued = &b
	c.render(w, r, http.StatusCreated, "certs", "Certificates", "certs", notice, page)
}
