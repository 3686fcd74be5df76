package httpapi

import (
	"net/http"
	"os"

	"go.uber.org/zap"
)

// caResource serves the cluster CA certificate. The file is read on every
// request so that a rotated CA is served without restart.
type caResource struct {
	caFile string
	lg     *zap.Logger
}

func (c *caResource) getPEM(w http.ResponseWriter, r *http.Request) {
	b, err := os.ReadFile(c.caFile)
	if err != nil {
		c.lg.Error("read CA file failed", zap.String("path", c.caFile), zap.Error(err))
		writeError(w, c.lg, http.StatusInternalServerError, "CA certificate unavailable")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		c.lg.Debug("response write failed", zap.Error(err))
	}
}
