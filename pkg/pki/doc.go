// Package pki is Strata's small certificate authority and TLS configuration loader.
package pki
