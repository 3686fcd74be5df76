// Command strata-replicator is the control-plane sidecar of a broker.
package main
