// Package client is the Go client library for Strata.
package client
