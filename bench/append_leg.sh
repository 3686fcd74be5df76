#!/usr/bin/env bash
# The replicator's local leg (issue 15): a fetched batch appended into the
# node's own broker by a unary LocalReplica.Append over mutual TLS (the old
# way), one AppendStream over mutual TLS with proto encoding, the same with
# raw frames, and raw frames over the broker's Unix socket. In one process
# against services/broker/brokertest (its gRPC server, ACL check,
# partitions and logstore), arms rotated each round, medians (min-max).
#
#   make bench                  (also runs this)
#   ROUNDS=21 BATCH=64 bash bench/append_leg.sh
#
# Knobs (environment): ROUNDS (9), BATCH (64 records of 1 KiB per batch),
# BATCHES (1000 per arm and round). The topic's fsync is the default,
# interval:1s; the logs are in the temp dir ($TMPDIR).
set -euo pipefail
cd "$(dirname "$0")/../services/replicator"

STRATA_APPEND_BENCH=1 STRATA_APPEND_BENCH_ROUNDS=${ROUNDS:-9} STRATA_APPEND_BENCH_BATCH=${BATCH:-64} \
  STRATA_APPEND_BENCH_BATCHES=${BATCHES:-1000} \
  go test -count=1 -run '^TestAppendLegSideBySide$' -v ./internal/fetcher/ |
  sed -n 's/^ *bench_test.go:[0-9]*: //p'
