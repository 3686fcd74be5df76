// Package pki is Strata's small certificate authority and TLS configuration
// loader.
//
// The CA is built on the cfssl library (csr, initca, signer/local, config),
// never its CLI or HTTP API. Keys are ECDSA P-256. A certificate's identity is
// its subject common name.
//
// Profiles:
//
//	server  serverAuth, SANs from DNS names and IPs, at most 1 year
//	client  clientAuth, no SANs, at most 1 year
//	peer    serverAuth and clientAuth, SANs, at most 1 year
//
// A requested validity above a profile's maximum is refused with
// ErrValidityTooLong; it is never silently clamped. A zero validity means the
// profile's maximum.
//
// cfssl logs through its own package-level logger. The constructors in this
// package (CreateCA, LoadCA, LoadCAFiles, InitCluster) lower its level to
// Fatal so that it never writes to stderr; Strata's own diagnostics go to the
// injected *zap.Logger.
package pki
