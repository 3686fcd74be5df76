package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// fakeTopics is an in-memory stratav1.TopicsClient; err, when set, is
// returned by every call.
type fakeTopics struct {
	mu      sync.Mutex
	topics  map[string]*stratav1.TopicMetadata
	err     error
	deletes int
}

func newFakeTopics() *fakeTopics { return &fakeTopics{topics: map[string]*stratav1.TopicMetadata{}} }

func (f *fakeTopics) put(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topics[name] = &stratav1.TopicMetadata{Name: name, Config: &stratav1.TopicConfig{Partitions: 1}}
}

func (f *fakeTopics) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeTopics) deleted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deletes
}

func (f *fakeTopics) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.topics[name]
	return ok
}

func (f *fakeTopics) CreateTopic(_ context.Context, in *stratav1.CreateTopicRequest, _ ...grpc.CallOption) (*stratav1.CreateTopicResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if _, ok := f.topics[in.GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q exists", in.GetName())
	}
	t := &stratav1.TopicMetadata{Name: in.GetName(), Config: in.GetConfig()}
	f.topics[in.GetName()] = t
	return &stratav1.CreateTopicResponse{Topic: t}, nil
}

func (f *fakeTopics) DeleteTopic(_ context.Context, in *stratav1.DeleteTopicRequest, _ ...grpc.CallOption) (*stratav1.DeleteTopicResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if _, ok := f.topics[in.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", in.GetName())
	}
	delete(f.topics, in.GetName())
	f.deletes++
	return &stratav1.DeleteTopicResponse{}, nil
}

func (f *fakeTopics) DescribeTopic(_ context.Context, in *stratav1.DescribeTopicRequest, _ ...grpc.CallOption) (*stratav1.DescribeTopicResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	t, ok := f.topics[in.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", in.GetName())
	}
	return &stratav1.DescribeTopicResponse{Topic: t}, nil
}

func (f *fakeTopics) ListTopics(context.Context, *stratav1.ListTopicsRequest, ...grpc.CallOption) (*stratav1.ListTopicsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	resp := &stratav1.ListTopicsResponse{}
	for _, t := range f.topics {
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

func (f *fakeTopics) AlterTopicConfig(context.Context, *stratav1.AlterTopicConfigRequest, ...grpc.CallOption) (*stratav1.AlterTopicConfigResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not in the admin API")
}

func TestTopicRoutes(t *testing.T) {
	f := newFixture(t, t.TempDir())
	writer := as("writer")

	rec := f.do(t, writer, http.MethodPost, "/v1/topics", `{"name": "orders-1", "config": {"partitions": 3, "retention_ms": "3600000"}}`)
	created := decodeRec[map[string]any](t, rec, http.StatusCreated)
	if created["name"] != "orders-1" || created["config"].(map[string]any)["partitions"] != float64(3) {
		t.Fatalf("create answered %s", rec.Body)
	}
	if len(f.auditEntries("audit: topic created", "writer")) != 1 {
		t.Fatal("topic creation not audit-logged with the caller's identity")
	}
	assertJSONError(t, f.do(t, writer, http.MethodPost, "/v1/topics", `{"name": "orders-1"}`), http.StatusConflict)

	// list needs describe on cluster, which writer lacks; reader has it.
	assertJSONError(t, f.do(t, writer, http.MethodGet, "/v1/topics", ""), http.StatusForbidden)
	list := decodeRec[struct {
		Topics []map[string]any `json:"topics"`
	}](t, f.do(t, as("reader"), http.MethodGet, "/v1/topics", ""), http.StatusOK)
	if len(list.Topics) != 1 || list.Topics[0]["name"] != "orders-1" {
		t.Fatalf("list = %+v", list)
	}

	desc := decodeRec[map[string]any](t, f.do(t, writer, http.MethodGet, "/v1/topics/orders-1", ""), http.StatusOK)
	if desc["name"] != "orders-1" {
		t.Fatalf("describe = %v", desc)
	}
	assertJSONError(t, f.do(t, writer, http.MethodGet, "/v1/topics/orders-2", ""), http.StatusNotFound)

	rec = f.do(t, writer, http.MethodDelete, "/v1/topics/orders-1", "")
	if rec.Code != http.StatusNoContent || f.topics.has("orders-1") {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	assertJSONError(t, f.do(t, writer, http.MethodDelete, "/v1/topics/orders-1", ""), http.StatusNotFound)
}

// TestTopicAuthorizationPerTopic: the object is the topic, from the URL
// or from the body; a denied call never reaches the cluster.
func TestTopicAuthorizationPerTopic(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.topics.put("payments")
	writer := as("writer")
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"create outside the pattern", http.MethodPost, "/v1/topics", `{"name": "payments-2"}`},
		{"create the pattern's prefix itself", http.MethodPost, "/v1/topics", `{"name": "orders"}`},
		{"describe another topic", http.MethodGet, "/v1/topics/payments", ""},
		{"delete another topic", http.MethodDelete, "/v1/topics/payments", ""},
		{"reader may not create", http.MethodPost, "/v1/topics", `{"name": "orders-9"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := writer
			if tc.name == "reader may not create" {
				c = as("reader")
			}
			assertJSONError(t, f.do(t, c, tc.method, tc.path, tc.body), http.StatusForbidden)
		})
	}
	if !f.topics.has("payments") || f.topics.has("payments-2") || f.topics.has("orders") || f.topics.has("orders-9") {
		t.Fatal("a denied call reached the cluster")
	}
}

func TestTopicCreateMalformed(t *testing.T) {
	f := newFixture(t, t.TempDir())
	for _, body := range []string{
		``, `not json`, `{}`, `{"name": ""}`, `{"name": "orders-1", "extra": 1}`,
		`{"name": "orders-1", "config": {"partitions": "many"}}`, `{"name": 7}`, `[]`,
	} {
		t.Run(body, func(t *testing.T) {
			assertJSONError(t, f.do(t, as("writer"), http.MethodPost, "/v1/topics", body), http.StatusBadRequest)
		})
	}
}

func TestTopicErrorsMapToHTTP(t *testing.T) {
	f := newFixture(t, t.TempDir())
	for _, tc := range []struct {
		code codes.Code
		want int
	}{
		{codes.InvalidArgument, http.StatusBadRequest},
		{codes.NotFound, http.StatusNotFound},
		{codes.AlreadyExists, http.StatusConflict},
		{codes.PermissionDenied, http.StatusForbidden},
		{codes.Unavailable, http.StatusServiceUnavailable},
		{codes.DeadlineExceeded, http.StatusGatewayTimeout},
		{codes.FailedPrecondition, http.StatusPreconditionFailed},
		{codes.ResourceExhausted, http.StatusTooManyRequests},
		{codes.Unauthenticated, http.StatusBadGateway},
		{codes.Internal, http.StatusBadGateway},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			f.topics.setErr(status.Error(tc.code, "induced"))
			assertJSONError(t, f.do(t, as("operator"), http.MethodGet, "/v1/topics", ""), tc.want)
			assertJSONError(t, f.do(t, as("operator"), http.MethodPost, "/v1/topics", `{"name": "orders-1"}`), tc.want)
		})
	}
}

func TestTopicRoutesOffWithoutCluster(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), fixtureOptions{noTopics: true})
	msg := assertJSONError(t, f.do(t, as("operator"), http.MethodGet, "/v1/topics", ""), http.StatusServiceUnavailable)
	if want := "--cluster-addrs"; !strings.Contains(msg, want) {
		t.Fatalf("message %q does not name %s", msg, want)
	}
}
