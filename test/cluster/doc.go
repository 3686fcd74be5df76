// Package cluster holds end-to-end tests of a real Strata cluster: three
// strata-broker and three strata-replicator processes on loopback, built
// from this workspace, with mutual TLS from `strata-admin pki init`. They
// drive it with pkg/client as the operator and kill and restart nodes.
package cluster
