// Package proto holds the strata.v1 protobuf and gRPC definitions and their generated Go code.
package proto
