package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// forwardTimeout bounds one forwarded call, well inside the server's
// WriteTimeout.
const forwardTimeout = 15 * time.Second

// topicsResource forwards topic administration to the cluster over gRPC
// (strata.v1.Topics, with admin's own certificate). Authorization happens
// here first, by the caller's identity: list needs describe on cluster,
// describe/delete need describe/delete on the named topic (checked by the
// guard), create needs create on the topic named in the body (checked by
// the handler once the body is read). The cluster then authorizes admin
// itself.
type topicsResource struct {
	topics stratav1.TopicsClient // nil without --cluster-addrs
	g      *guardian
	lg     *zap.Logger
}

// Routes serves /topics.
func (t *topicsResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/", t.list)
	r.Post("/", t.create)
	r.Get("/{name}", t.describe)
	r.Delete("/{name}", t.delete)
	return r
}

func (t *topicsResource) rules(prefix string) map[string]Rule {
	return map[string]Rule{
		routeKey(http.MethodGet, prefix+"/"):          ruleCluster(acl.ActionDescribe),
		routeKey(http.MethodPost, prefix+"/"):         {Action: acl.ActionCreate, ObjectInHandler: true},
		routeKey(http.MethodGet, prefix+"/{name}"):    {Action: acl.ActionDescribe, ObjectParam: "name"},
		routeKey(http.MethodDelete, prefix+"/{name}"): {Action: acl.ActionDelete, ObjectParam: "name"},
	}
}

// topicJSON renders protos with their .proto field names, zero values
// included, so clients see every field.
var topicJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

func (t *topicsResource) writeProto(w http.ResponseWriter, status int, m proto.Message) {
	b, err := topicJSON.Marshal(m)
	if err != nil {
		writeErr(w, t.lg, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if _, err := w.Write(append(b, '\n')); err != nil {
		t.lg.Debug("response write failed", zap.Error(err))
	}
}

// call runs one forwarded call with a bound, or answers 503 when admin
// has no cluster to forward to.
func (t *topicsResource) call(w http.ResponseWriter, r *http.Request, f func(context.Context) error) bool {
	if t.topics == nil {
		writeError(w, t.lg, http.StatusServiceUnavailable, "topic administration is off: admin runs without --cluster-addrs")
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		code, msg := grpcToHTTP(err)
		if code >= 500 {
			t.lg.Warn("forwarded topic call failed", zap.String("route", r.URL.Path), zap.Error(err))
		}
		writeError(w, t.lg, code, msg)
		return false
	}
	return true
}

func (t *topicsResource) list(w http.ResponseWriter, r *http.Request) {
	var resp *stratav1.ListTopicsResponse
	if t.call(w, r, func(ctx context.Context) (err error) {
		resp, err = t.topics.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		return err
	}) {
		t.writeProto(w, http.StatusOK, resp)
	}
}

func (t *topicsResource) create(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		writeErr(w, t.lg, err)
		return
	}
	req, err := decodeTopicCreate(b)
	if err != nil {
		writeErr(w, t.lg, err)
		return
	}
	if !t.g.authorizeInHandler(w, r, req.GetName()) {
		return
	}
	var resp *stratav1.CreateTopicResponse
	if t.call(w, r, func(ctx context.Context) (err error) {
		resp, err = t.topics.CreateTopic(ctx, req)
		return err
	}) {
		t.lg.Info("audit: topic created", zap.String("identity", identityFrom(r.Context())), zap.String("topic", req.GetName()))
		t.writeProto(w, http.StatusCreated, resp.GetTopic())
	}
}

func (t *topicsResource) describe(w http.ResponseWriter, r *http.Request) {
	var resp *stratav1.DescribeTopicResponse
	if t.call(w, r, func(ctx context.Context) (err error) {
		resp, err = t.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: chi.URLParam(r, "name")})
		return err
	}) {
		t.writeProto(w, http.StatusOK, resp.GetTopic())
	}
}

func (t *topicsResource) delete(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if t.call(w, r, func(ctx context.Context) error {
		_, err := t.topics.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name})
		return err
	}) {
		t.lg.Info("audit: topic deleted", zap.String("identity", identityFrom(r.Context())), zap.String("topic", name))
		w.WriteHeader(http.StatusNoContent)
	}
}

// decodeTopicCreate decodes a POST /v1/topics body: the JSON form of
// strata.v1.CreateTopicRequest, {"name": "orders", "config": {"partitions":
// 3, ...}}, unknown fields refused. The name must be set; the cluster
// checks the rest.
func decodeTopicCreate(b []byte) (*stratav1.CreateTopicRequest, error) {
	req := &stratav1.CreateTopicRequest{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(b, req); err != nil {
		return nil, errorf(http.StatusBadRequest, `body must be JSON {"name": "...", "config": {"partitions": 3, ...}}: %v`, err)
	}
	if req.GetName() == "" {
		return nil, errorf(http.StatusBadRequest, "name must be set")
	}
	return req, nil
}

// grpcToHTTP maps a forwarded call's gRPC status to an HTTP status and a
// message for the caller.
func grpcToHTTP(err error) (int, string) {
	st, ok := status.FromError(err)
	if !ok {
		return http.StatusBadGateway, "cluster call failed"
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest, st.Message()
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed, st.Message()
	case codes.NotFound:
		return http.StatusNotFound, st.Message()
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict, st.Message()
	case codes.PermissionDenied:
		return http.StatusForbidden, st.Message()
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests, st.Message()
	case codes.Unimplemented:
		return http.StatusNotImplemented, st.Message()
	case codes.Unavailable:
		return http.StatusServiceUnavailable, "cluster unavailable: " + st.Message()
	case codes.DeadlineExceeded, codes.Canceled:
		return http.StatusGatewayTimeout, "cluster did not answer in time"
	case codes.Unauthenticated:
		// The cluster refused admin's own certificate: a server-side
		// misconfiguration, not the caller's fault.
		return http.StatusBadGateway, "cluster refused admin's certificate"
	default:
		return http.StatusBadGateway, "cluster call failed: " + st.Code().String()
	}
}
