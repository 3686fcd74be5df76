// Command strata-broker serves the partitions of one node over gRPC.
package main
