package main

import (
	"context"
	"errors"
	"io"
)

// runServe runs the admin HTTP API until ctx ends.
func runServe(context.Context, []string, io.Writer) error {
	return errors.New("serve: not implemented yet")
}
