package httpapi

import (
	"encoding/json"
	"net/http"

	"go.uber.org/zap"
)

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error string `json:"error"`
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
	writeJSON(w, lg, status, errorBody{Error: msg})
}
