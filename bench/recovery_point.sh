#!/usr/bin/env bash
# What keeping the recovery point current with every fsync costs
# (issue 11): BenchmarkRecoveryPoint's two variants, fsync=always, 1 KiB
# records, run alternately (follows-fsync, static, follows-fsync, ...) so
# that a noisy machine slows both alike, then the median records/s of each
# and their ratio.
#
#   bash bench/recovery_point.sh          (ROUNDS=7 BENCHTIME=1s)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
BENCHTIME=${BENCHTIME:-1s}
GO=${GO:-go}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
(cd pkg/logstore && $GO test -c -o "$out.test" .) && trap 'rm -f "$out" "$out.test"' EXIT
for i in $(seq "$ROUNDS"); do
  for rp in follows-fsync static; do
    (cd pkg/logstore && "$out.test" -test.run '^$' -test.bench "BenchmarkRecoveryPoint/fsync=always/appenders/batch/recovery-point=$rp\$" -test.benchtime "$BENCHTIME") | grep '^Benchmark' | tee -a "$out" >&2
  done
done
echo
echo "recovery point cost, fsync=always, 1 KiB records, medians of $ROUNDS alternating rounds ($(nproc) cores, $($GO env GOVERSION))"
awk '
function median(list,   n, a, i, j, t) {
  n = split(list, a, " ")
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j+1] = a[j]; a[j+1] = t }
  return a[int((n + 1) / 2)]
}
{
  name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkRecoveryPoint\//, "", name)
  for (i = 3; i < NF; i++) if ($(i+1) == "records/s") r[name] = r[name] " " $i
}
END {
  for (c = 1; c <= 2; c++) {
    k = (c == 1 ? "fsync=always/appenders=1/batch=1" : "fsync=always/appenders=16/batch=16")
    f = median(r[k "/recovery-point=follows-fsync"]); s = median(r[k "/recovery-point=static"])
    printf "%-36s follows-fsync %9.0f rec/s   static %9.0f rec/s   ratio %.3f\n", k, f, s, f / s
  }
}' "$out"
