package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/strata-log/strata/services/admin/internal/httpapi"
)

type aclPage struct {
	Policy  string
	Version uint64
	Lines   []string
	// CanEdit is whether the caller may change the policy (the edit form
	// is shown only then; the save is checked again regardless).
	CanEdit bool
}

type aclPreviewPage struct {
	Policy  string
	Version uint64
	Diff    []diffLine
	Changed bool
	// Refusal is why the policy would be refused, "" when it would not.
	Refusal string
	Status  int
}

type aclSavedPage struct {
	Version uint64
	Diff    []diffLine
}

func (c *Console) aclView(w http.ResponseWriter, r *http.Request) {
	text, version := c.opts.Backend.Policy()
	id := c.opts.Identity(r.Context())
	page := aclPage{Policy: text, Version: version, Lines: strings.Split(strings.TrimRight(text, "\n"), "\n"),
		CanEdit: c.opts.Backend.Authorize(id, http.MethodPut, "/v1/acl/policy", "") == nil}
	c.render(w, r, http.StatusOK, "acl", "ACL policy", "acl", "", page)
}

// policyForm reads the edited policy and the version it was edited from.
// Browsers send textarea line breaks as CRLF; the policy is kept with LF.
func policyForm(r *http.Request) (string, uint64, error) {
	text := strings.ReplaceAll(r.PostFormValue("policy"), "\r\n", "\n")
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	version, err := strconv.ParseUint(r.PostFormValue("version"), 10, 64)
	return text, version, err
}

// aclPreview shows the diff of the edit against the policy in force and
// whether the API's checks would refuse it, with a form to save it.
func (c *Console) aclPreview(w http.ResponseWriter, r *http.Request) {
	text, version, err := policyForm(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form lacks the policy version it was edited from.")
		return
	}
	current, inForce := c.opts.Backend.Policy()
	page := aclPreviewPage{Policy: text, Version: version, Diff: diffLines(current, text), Status: http.StatusOK}
	page.Changed = current != text
	if version != inForce {
		page.Refusal, page.Status = "The policy changed (now version "+strconv.FormatUint(inForce, 10)+
			") since you loaded it; the diff is against the policy in force. Load the ACL page again to edit it.", http.StatusConflict
	} else if err := c.opts.Backend.CheckPolicy(c.opts.Identity(r.Context()), text); err != nil {
		page.Status, page.Refusal = httpapi.ErrorStatus(err)
	}
	c.render(w, r, page.Status, "acl_preview", "ACL policy: review", "acl", "", page)
}

// aclSave replaces the policy as PUT /v1/acl/policy does, as a
// compare-and-swap on the version the edit started from.
func (c *Console) aclSave(w http.ResponseWriter, r *http.Request) {
	text, version, err := policyForm(r)
	if err != nil || version == 0 {
		c.fail(w, r, http.StatusBadRequest, "The form lacks the policy version it was edited from.")
		return
	}
	old, _ := c.opts.Backend.Policy()
	nv, err := c.opts.Backend.ReplacePolicy(c.opts.Identity(r.Context()), text, version)
	if err != nil {
		code, msg := httpapi.ErrorStatus(err)
		c.fail(w, r, code, "The policy was not changed: "+msg)
		return
	}
	c.render(w, r, http.StatusOK, "acl_saved", "ACL policy saved", "acl", "", aclSavedPage{Version: nv, Diff: diffLines(old, text)})
}
