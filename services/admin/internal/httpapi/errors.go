package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/adminapi"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 1 << 20

// apiError is an error a handler answers with its own status. Handlers
// and the policy store return it; writeErr maps anything else to 500.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// writeJSON writes v as JSON with status. An encoding failure can only be a
// broken connection by then; it is logged.
func writeJSON(w http.ResponseWriter, lg *zap.Logger, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		lg.Debug("response write failed", zap.Error(err))
	}
}

// writeError writes {"error": msg} with status.
func writeError(w http.ResponseWriter, lg *zap.Logger, status int, msg string) {
	writeJSON(w, lg, status, adminapi.Error{Error: msg})
}

// writeErr answers err: an *apiError with its status and message, anything
// else as an opaque 500 (the detail goes to the log, not to the caller).
func writeErr(w http.ResponseWriter, lg *zap.Logger, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, lg, ae.status, ae.msg)
		return
	}
	lg.Error("request failed", zap.Error(err))
	writeError(w, lg, http.StatusInternalServerError, "internal error")
}

// readBody reads a request body of at most maxBodyBytes; a larger one is a
// 413 apiError.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "body exceeds %d bytes", maxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return b, nil
}

// decodeStrict decodes exactly one JSON object from b into v, refusing
// unknown fields and trailing data. Errors are 400 apiErrors naming what
// the body should be.
func decodeStrict(b []byte, v any, want string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "body must be JSON %s: %v", want, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "body must hold one JSON object %s", want)
	}
	return nil
}
