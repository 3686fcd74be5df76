package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/pki"
)

// The admin API's JSON decoders take bytes from the network. Each fuzz
// target checks that a decoder never panics, that every refusal is a 400
// apiError (never a 500), and that what it accepts holds the promises
// the handlers rely on. Seeds: f.Add below and testdata/fuzz/<target>.

func wantBadRequest(t *testing.T, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.msg == "" {
		t.Fatalf("refusal %v is not a 400 apiError with a message", err)
	}
}

func FuzzDecodeTopicCreate(f *testing.F) {
	f.Add([]byte(`{"name": "orders", "config": {"partitions": 3, "retention_ms": "3600000", "fsync": "always"}}`))
	f.Add([]byte(`{"name": "orders", "config": {"partitions": "3"}}`))
	f.Add([]byte(`{"name": ""}`))
	f.Add([]byte(`{"name": "a", "extra": 1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeTopicCreate(b)
		if err != nil {
			wantBadRequest(t, err)
			return
		}
		if req.GetName() == "" {
			t.Fatal("accepted a create without a name")
		}
	})
}

func FuzzDecodeCertRequest(f *testing.F) {
	f.Add([]byte(`{"name": "alice"}`))
	f.Add([]byte(`{"name": "broker-4", "profile": "peer", "hosts": ["broker-4", "10.0.0.4"], "validity": "720h"}`))
	f.Add([]byte(`{"name": "alice", "validity": "8761h"}`))
	f.Add([]byte(`{"name": "Alice*"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, p, err := decodeCertRequest(b)
		if err != nil {
			wantBadRequest(t, err)
			return
		}
		if !safeName.MatchString(req.Name) || len(req.Name) > 64 || strings.ContainsAny(req.Name, "*, \n#") {
			t.Fatalf("accepted unsafe name %q", req.Name)
		}
		if p.validity < 0 || p.validity > pki.MaxLeafValidity {
			t.Fatalf("accepted validity %s", p.validity)
		}
		if p.profile == pki.ProfileClient && len(p.dns)+len(p.ips) > 0 {
			t.Fatal("accepted hosts on a client certificate")
		}
	})
}

func FuzzDecodeCSRRequest(f *testing.F) {
	csr, _, err := pki.NewCSR("dave", nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{"csr": string(csr)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add([]byte(`{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"csr": ""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, name, _, err := decodeCSRRequest(b)
		if err != nil {
			wantBadRequest(t, err)
			return
		}
		if !safeName.MatchString(name) {
			t.Fatalf("accepted CSR with unsafe CN %q", name)
		}
	})
}

func FuzzDecodeRulesBody(f *testing.F) {
	f.Add([]byte(`{"rules": [{"subject": "alice", "object": "orders-*", "action": "produce"}], "bindings": [{"identity": "alice", "role": "writers"}]}`))
	f.Add([]byte(`{"rules": [{"subject": "a", "object": "t, produce, allow\np, a, cluster", "action": "admin"}]}`))
	f.Add([]byte(`{"bindings": [{"identity": "broker-*", "role": "broker"}]}`))
	f.Add([]byte(`{"rules": []}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := decodeRulesBody(b)
		if err != nil {
			wantBadRequest(t, err)
			return
		}
		if len(lines) == 0 || len(lines) > maxRuleEdits {
			t.Fatalf("accepted %d lines", len(lines))
		}
		// Each accepted line is exactly one policy line: no field carried
		// a separator or a second line into the policy.
		for _, l := range lines {
			p, err := acl.ParsePolicy(l)
			if err != nil || len(p.Rules)+len(p.Bindings) != 1 || strings.ContainsAny(l, "\n\r") {
				t.Fatalf("accepted line %q is not one policy line (%v)", l, err)
			}
		}
	})
}

func FuzzDecodePolicyBody(f *testing.F) {
	f.Add([]byte(`{"policy": "p, admin, cluster, *, allow\n", "version": 3}`))
	f.Add([]byte(`{"policy": ""} {}`))
	f.Add([]byte(`{"policy": 1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var doc adminapi.Policy
		if err := decodePolicyBody(b, &doc); err != nil {
			wantBadRequest(t, err)
		}
	})
}
