#!/usr/bin/env bash
# Storage engine benchmarks next to this machine's sequential write bandwidth.
#
#   make bench                      (COUNT=5 BENCHTIME=2s make bench to change)
#
# Runs the pkg/logstore Go benchmarks (a short warm-up run first, then COUNT
# runs), measures dd into a temp dir on the same file system as the
# benchmarks' temp dirs (buffered, and oflag=dsync bs=4k), and prints the
# median of each figure next to dd as a ratio. Every row names its fsync
# policy. The BenchmarkCompact rows are log compaction's cleaning
# throughput (sealed store bytes read and rewritten per second); alone:
#   go test -run '^$' -bench BenchmarkCompact -benchtime 5x ./pkg/logstore
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-3}
BENCHTIME=${BENCHTIME:-1s}
GO=${GO:-go}
TMPBASE=${TMPDIR:-/tmp}
work=$(mktemp -d "$TMPBASE/strata-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== warm-up run" >&2
(cd pkg/logstore && $GO test -run '^$' -bench . -benchtime 100ms -count 1 >/dev/null)
echo "== benchmarks: -count=$COUNT -benchtime=$BENCHTIME" >&2
(cd pkg/logstore && $GO test -run '^$' -bench . -benchtime "$BENCHTIME" -count "$COUNT" -benchmem) | tee "$work/bench.txt" >&2

# dd of the same total size as the median 1 KiB batch-256 fsync=never run.
bytes=$(awk '/^BenchmarkAppend\/fsync=never\/size=1024\/batch=256-/ {printf "%.0f\n", $2 * 256 * 1048}' "$work/bench.txt" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
mib=$(( (bytes + 1048575) / 1048576 ))
[ "$mib" -lt 64 ] && mib=64
dd_mbs() { # prints MB/s (10^6 bytes/s) of a dd run
  local t0 t1 size
  t0=$(date +%s.%N)
  dd "$@" 2>/dev/null
  t1=$(date +%s.%N)
  size=$(stat -c %s "$work/dd.out")
  rm -f "$work/dd.out"
  awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", s / (b - a) / 1e6}'
}
dd_buf=(); dd_sync=()
dsync_mib=8 # oflag=dsync at 4 KiB per write: a bounded size keeps it to seconds
for i in $(seq "$COUNT"); do
  dd_buf+=("$(dd_mbs if=/dev/zero of="$work/dd.out" bs=1M count="$mib")")
  dd_sync+=("$(dd_mbs if=/dev/zero of="$work/dd.out" bs=4k count=$((dsync_mib * 256)) oflag=dsync)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
DD_BUF=$(median "${dd_buf[@]}")
DD_SYNC=$(median "${dd_sync[@]}")

echo
echo "Strata logstore benchmarks ($(uname -m), $(nproc) cores, $(go env GOVERSION)), medians of $COUNT runs after a warm-up"
echo "dd buffered  bs=1M ${mib} MiB:           ${DD_BUF} MB/s"
echo "dd oflag=dsync bs=4k ${dsync_mib} MiB:          ${DD_SYNC} MB/s"
echo
awk -v ddb="$DD_BUF" -v dds="$DD_SYNC" '
function median(list,   n, a, i, j, t) {
  n = split(list, a, " ")
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j+1] = a[j]; a[j+1] = t }
  return a[int((n + 1) / 2)]
}
/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  if (!(name in seen)) { seen[name] = 1; order[++n] = name }
  for (i = 3; i < NF; i++) {
    if ($(i+1) == "MB/s") mbs[name] = mbs[name] " " $i
    if ($(i+1) == "records/s") rps[name] = rps[name] " " $i
    if ($(i+1) == "allocs/op") al[name] = al[name] " " $i
    if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
  }
}
END {
  printf "%-58s %10s %12s %9s %12s %12s\n", "benchmark", "MB/s", "records/s", "allocs/op", "x dd buf", "x dd dsync"
  for (k = 1; k <= n; k++) {
    nm = order[k]; m = median(mbs[nm]); r = median(rps[nm]); a = median(al[nm])
    printf "%-58s %10.1f %12.0f %9s %12.3f %12.2f\n", nm, m, r, a, m / ddb, m / dds
    M[nm] = m; R[nm] = r; A[nm] = a
  }
  print ""
  a1 = M["BenchmarkAppend/fsync=never/size=1024/batch=256"] / ddb
  g1 = R["BenchmarkGroupCommit/fsync=always/appenders=16/batch=16"] / R["BenchmarkGroupCommit/fsync=always/appenders=1/batch=1"]
  s1 = M["BenchmarkReadSequential/size=1024"]; s2 = A["BenchmarkReadSequential/size=1024"]
  printf "(a) append 1 KiB batch 256 fsync=never vs buffered dd: %.2f (target >= 0.50) %s\n", a1, (a1 >= 0.5 ? "PASS" : "MISS")
  printf "(b) fsync=always group commit 16x16 vs 1x1 records/s:  %.1fx (target >= 20x) %s\n", g1, (g1 >= 20 ? "PASS" : "MISS")
  printf "(c) sequential read 1 KiB: %.0f MB/s, %s allocs/record (target >= 2000 MB/s, <= 1) %s\n", s1, s2, (s1 >= 2000 && s2 <= 1 ? "PASS" : "MISS")
}' "$work/bench.txt"
