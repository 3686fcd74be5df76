#!/usr/bin/env bash
# bench/compare.sh: Strata vs NATS JetStream on loopback, one node each.
#
# Starts bin/strata-broker (from `make build`) and nats-server v2.15.2
# (JetStream, file storage, R1) in a temp dir, runs `strata bench` and
# `nats bench js` (natscli v0.5.0) with the same record size, count and
# producer count, alternating the two systems over ROUNDS rounds, and prints
# the medians with the ratio Strata/JetStream.
#
# Knobs (environment): ROUNDS (3), RECORDS (200000), PRODUCERS (1),
# FSYNC_RECORDS (20000, for the fsync-always case), KEEP=1 keeps the temp dir,
# TLS (1: Strata with mutual TLS and ACLs, certs from `strata-admin pki init`;
# 0: plaintext with --insecure-no-auth), WARMUP (1000: records each Strata run
# produces unmeasured first, so connections are open; nats bench connects
# before it measures). JetStream runs without TLS either way.
# CASES ("produce latency fsync group idempotence"): which cases run;
# latency needs produce; idempotence is Strata's idempotent producer
# against plain batches at 1 KiB and 100 B. GROUP_CONSUMERS (3): members of the group-consume case, which
# reads RECORDS 1 KiB records from a topic of that many partitions (Strata
# `bench consume --group`, committing after every Poll) and from a stream
# (JetStream `nats bench js consume`: one durable pull consumer shared by
# that many clients, explicit acks).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-200000}
PRODUCERS=${PRODUCERS:-1}
FSYNC_RECORDS=${FSYNC_RECORDS:-20000}
WARMUP=${WARMUP:-1000}
TLS=${TLS:-1}
CASES=${CASES:-produce latency fsync group idempotence}
GROUP_CONSUMERS=${GROUP_CONSUMERS:-3}
has_case() { [[ " $CASES " == *" $1 "* ]]; }
NATS_VERSION=v2.15.2
NATSCLI_VERSION=v0.5.0
TOOLS=$ROOT/.tools/nats

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# --- binaries ---------------------------------------------------------------
if [[ ! -x $ROOT/bin/strata-broker || ! -x $ROOT/bin/strata || ${REBUILD:-1} == 1 ]]; then
  log "building Strata (make build)"
  if ! make -C "$ROOT" build >&2; then
    log "make build failed (another module may be mid-change); building the two binaries directly"
    mkdir -p "$ROOT/bin"
    (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o bin/strata-broker ./services/broker \
      && CGO_ENABLED=0 go build -trimpath -o bin/strata ./cmd/strata \
      && CGO_ENABLED=0 go build -trimpath -o bin/strata-admin ./services/admin)
  fi
fi
if [[ ! -x $TOOLS/nats-server ]]; then
  log "installing nats-server $NATS_VERSION"
  GOBIN=$TOOLS GOWORK=off go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi
if [[ ! -x $TOOLS/nats ]]; then
  log "installing nats $NATSCLI_VERSION"
  GOBIN=$TOOLS GOWORK=off go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION"
fi

# --- servers ----------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-compare.XXXXXX")
BROKER_PID= NATS_PID=
cleanup() {
  [[ -n $BROKER_PID ]] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  [[ -n $NATS_PID ]] && kill "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT


SPORT=$(free_port)
NPORT=$(free_port)
if [[ $TLS == 1 ]]; then
  "$ROOT/bin/strata-admin" pki init --out "$TMP/pki" --ca-name "Strata bench CA" --node 1 >/dev/null
  STRATA=("$ROOT/bin/strata" --brokers "127.0.0.1:$SPORT" --ca "$TMP/pki/ca.pem"
    --cert "$TMP/pki/operator.pem" --key "$TMP/pki/operator-key.pem")
  BROKER_SECURITY=(--tls-cert "$TMP/pki/broker-1.pem" --tls-key "$TMP/pki/broker-1-key.pem" --tls-ca "$TMP/pki/ca.pem")
  STRATA_TLS="mutual TLS 1.3 + ACL check on every call (identity operator)"
else
  STRATA=("$ROOT/bin/strata" --brokers "127.0.0.1:$SPORT" --insecure)
  BROKER_SECURITY=(--insecure-no-auth)
  STRATA_TLS="plaintext gRPC (--insecure-no-auth; no TLS)"
fi
NATS=("$TOOLS/nats" -s "nats://127.0.0.1:$NPORT")

# --metrics-listen "": the default 127.0.0.1:9100 may be taken by another broker on the machine.
"$ROOT/bin/strata-broker" --data-dir "$TMP/strata" --listen "127.0.0.1:$SPORT" --metrics-listen "" --log-level error "${BROKER_SECURITY[@]}" \
  >"$TMP/broker.log" 2>&1 &
BROKER_PID=$!
wait_port "$SPORT"

start_nats() { # $1: extra jetstream settings
  if [[ -n $NATS_PID ]]; then kill "$NATS_PID"; wait "$NATS_PID" 2>/dev/null || true; NATS_PID=; fi
  rm -rf "$TMP/js"
  cat >"$TMP/nats.conf" <<CONF
listen: 127.0.0.1:$NPORT
jetstream {
  store_dir: "$TMP/js"
  $1
}
CONF
  "$TOOLS/nats-server" -c "$TMP/nats.conf" >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!
  wait_port "$NPORT"
}
start_nats ""

# --- runners: each prints one number ----------------------------------------
json_field() { jq -r "$1"; }
# nats bench prints "... stats: 128,022 msgs/sec ~ ... P99: 6,767.42us ..."
nats_rate() { grep -m1 'stats:' | sed -E 's/.*stats: ([0-9,]+) msgs\/sec.*/\1/' | tr -d ,; }
nats_p99_ms() { grep -m1 'stats:' | sed -E 's/.*P99: ([0-9,.]+)us.*/\1/' | tr -d , | awk '{printf "%.3f", $1/1000}'; }

strata_produce() { # topic size records fsync [extra...]
  local topic=$1 size=$2 n=$3 fsync=$4; shift 4
  "${STRATA[@]}" bench produce --json --progress never --create --topic "$topic" --fsync "$fsync" \
    --records "$n" --size "$size" --producers "$PRODUCERS" --acks leader --warmup-records "$WARMUP" "$@"
}
nats_pub() { # size records [extra...]
  local size=$1 n=$2; shift 2
  "${NATS[@]}" bench js pub async --create --storage file --replicas 1 --purge --no-progress \
    --msgs "$n" --size "$size" --clients "$PRODUCERS" "$@" bench.sub 2>&1
}



for r in $(seq 1 "$ROUNDS"); do
  has_case produce || break
  log "round $r/$ROUNDS"
  order=(strata nats); (( r % 2 == 0 )) && order=(nats strata)
  for sys in "${order[@]}"; do
    if [[ $sys == strata ]]; then
      out=$(strata_produce "c1k-$r" 1024 "$RECORDS" never)
      add s_p1k "$(json_field .records_per_sec <<<"$out")"
      out=$("${STRATA[@]}" bench consume --json --progress never --topic "c1k-$r" --records "$RECORDS")
      add s_c1k "$(json_field .records_per_sec <<<"$out")"
      out=$(strata_produce "c100-$r" 100 "$RECORDS" never)
      add s_p100 "$(json_field .records_per_sec <<<"$out")"
    else
      out=$(nats_pub 1024 "$RECORDS")
      add n_p1k "$(nats_rate <<<"$out")"
      out=$("${NATS[@]}" bench js ordered --no-progress --msgs "$RECORDS" --size 1024 --clients 1 2>&1)
      add n_c1k "$(nats_rate <<<"$out")"
      out=$(nats_pub 100 "$RECORDS")
      add n_p100 "$(nats_rate <<<"$out")"
    fi
  done
done

# Group consumption: GROUP_CONSUMERS members of one group on a topic of as
# many partitions vs as many clients of one durable pull consumer, each side
# filled (unmeasured) just before it reads. Strata's figure runs from the
# first record to the last, as nats bench's does.
for r in $(seq 1 "$ROUNDS"); do
  has_case group || break
  log "group round $r/$ROUNDS"
  order=(strata nats); (( r % 2 == 0 )) && order=(nats strata)
  for sys in "${order[@]}"; do
    if [[ $sys == strata ]]; then
      strata_produce "g1k-$r" 1024 "$RECORDS" never --partitions "$GROUP_CONSUMERS" >/dev/null
      out=$("${STRATA[@]}" bench consume --json --progress never --topic "g1k-$r" --group "bench-g-$r" --records "$RECORDS" \
        --consumers "$GROUP_CONSUMERS")
      add s_g1k "$(json_field .records_per_sec <<<"$out")"
      add s_g1k_join "$(json_field .with_join_records_per_sec <<<"$out")"
      log "strata group: $(jq -c '{records, records_per_sec, join_ms, per_member, commits, committed_records}' <<<"$out")"
    else
      nats_pub 1024 "$RECORDS" >/dev/null
      "${NATS[@]}" consumer rm -f benchstream nats-bench >/dev/null 2>&1 || true
      out=$("${NATS[@]}" bench js consume --no-progress --msgs "$RECORDS" --size 1024 --clients "$GROUP_CONSUMERS" 2>&1)
      add n_g1k "$(nats_rate <<<"$out")"
      log "nats group: $(grep -m1 'stats:' <<<"$out")"
    fi
  done
done

# Latency at half of Strata's own max 1 KiB throughput.
S_MAX=$(median <<<"${RES[s_p1k]:-}")
RATE=$(awk -v m="$S_MAX" 'BEGIN {printf "%d", m/2}')
LAT_RECORDS=$(awk -v r="$RATE" -v n="$RECORDS" 'BEGIN {x = r*4; if (x > n) x = n; printf "%d", x}')
for r in $(seq 1 "$ROUNDS"); do
  { has_case produce && has_case latency; } || break
  log "latency round $r/$ROUNDS at $RATE records/s"
  order=(strata nats); (( r % 2 == 0 )) && order=(nats strata)
  for sys in "${order[@]}"; do
    if [[ $sys == strata ]]; then
      out=$(strata_produce "lat-$r" 1024 "$LAT_RECORDS" never --rate "$RATE")
      add s_lat "$(json_field .latency_ms.p99 <<<"$out")"
    else
      out=$(nats_pub 1024 "$LAT_RECORDS" --throughput "$RATE")
      add n_lat "$(nats_p99_ms <<<"$out")"
    fi
  done
done

# The idempotent producer's cost: Strata's default (producer id and
# sequences on every batch, the leader's dedupe check) against plain
# batches (--no-idempotence), same broker, alternating which goes first.
for r in $(seq 1 "$ROUNDS"); do
  has_case idempotence || break
  log "idempotence round $r/$ROUNDS"
  order=(idem plain); (( r % 2 == 0 )) && order=(plain idem)
  for kind in "${order[@]}"; do
    extra=(); [[ $kind == plain ]] && extra=(--no-idempotence)
    for size in 1024 100; do
      out=$(strata_produce "id-$kind-$size-$r" "$size" "$RECORDS" never "${extra[@]}")
      add "i_${kind}_$size" "$(json_field .records_per_sec <<<"$out")"
    done
  done
done

# fsync on every write: Strata fsync=always vs JetStream sync_interval: always.
has_case fsync && start_nats "sync_interval: always"
for r in $(seq 1 "$ROUNDS"); do
  has_case fsync || break
  log "fsync-always round $r/$ROUNDS"
  order=(strata nats); (( r % 2 == 0 )) && order=(nats strata)
  for sys in "${order[@]}"; do
    if [[ $sys == strata ]]; then
      out=$(strata_produce "fs-$r" 1024 "$FSYNC_RECORDS" always)
      add s_fs "$(json_field .records_per_sec <<<"$out")"
    else
      out=$(nats_pub 1024 "$FSYNC_RECORDS")
      add n_fs "$(nats_rate <<<"$out")"
    fi
  done
done

# --- table ------------------------------------------------------------------
row() { # label strata-key nats-key unit
  local s n
  s=$(median <<<"${RES[$2]:-}")
  n=$(median <<<"${RES[$3]:-}")
  [[ $s == n/a && $n == n/a ]] && return # a case CASES left out
  awk -v l="$1" -v s="$s" -v n="$n" -v u="$4" 'BEGIN {
    ratio = (s+0 > 0 && n+0 > 0) ? sprintf("%.2f", s/n) : "n/a"
    printf "| %-58s | %14.1f | %14.1f | %6s | %-9s |\n", l, s, n, ratio, u }'
}
cat <<HDR
Strata vs NATS JetStream, one node each on loopback ($(nproc) cores, $(uname -sr)); medians of $ROUNDS alternating rounds.
Strata: bin/strata-broker, $(cd "$ROOT" && git rev-parse --short HEAD), $STRATA_TLS, acks=leader, 1 partition,
        client batching: max batch 1 MiB, linger 0 (records accumulate while batches are in flight: up to 5 per partition
        idempotent, the default, 1 with --no-idempotence), ProduceStream.
JetStream: nats-server $NATS_VERSION, file storage, R1, nats bench (natscli $NATSCLI_VERSION) js pub async (batch 500), no TLS.
Records: $RECORDS per run ($FSYNC_RECORDS for fsync always) after $WARMUP unmeasured, producers: $PRODUCERS. fsync: Strata topic fsync=never vs JetStream defaults
(sync_interval 2m) unless the row says otherwise. Latency: Strata per record (Produce call -> ack); JetStream per async batch
(nats bench P99), both at $RATE records/s (half of Strata's median 1 KiB max).
Group consume: Strata $GROUP_CONSUMERS GroupConsumers (cooperative sticky, CommitAsync after every Poll, Poll <= 2000 records,
        stream messages <= 2000 records / 4 MiB) on $GROUP_CONSUMERS partitions; JetStream nats bench js consume, one durable
        pull consumer, $GROUP_CONSUMERS clients, explicit acks, batch 500. Both from first record to last; Strata with the join: see raw s_g1k_join.

| case                                                       |         Strata |      JetStream | S/JS   | unit      |
|------------------------------------------------------------|----------------|----------------|--------|-----------|
HDR
row "produce 1 KiB, fsync never / JS defaults"                s_p1k  n_p1k  "records/s"
row "produce 100 B, fsync never / JS defaults"                s_p100 n_p100 "records/s"
row "produce 1 KiB, fsync always / JS sync_interval always"   s_fs   n_fs   "records/s"
row "consume 1 KiB from start (JS ordered consumer)"          s_c1k  n_c1k  "records/s"
row "p99 produce latency 1 KiB acks=leader at $RATE rec/s"    s_lat  n_lat  "ms"
row "group consume 1 KiB, $GROUP_CONSUMERS members / JS durable pull x$GROUP_CONSUMERS" s_g1k n_g1k "records/s"
if has_case idempotence; then
  echo
  echo "Idempotent producer vs plain batches (--no-idempotence), Strata only, same settings as above:"
  echo
  echo "| record size | idempotent rec/s | plain rec/s | idempotent/plain | target |"
  echo "|---|---|---|---|---|"
  for size in 1024 100; do
    i=$(median <<<"${RES[i_idem_$size]:-}")
    p=$(median <<<"${RES[i_plain_$size]:-}")
    awk -v z="$size" -v i="$i" -v p="$p" 'BEGIN {
      ratio = (i+0 > 0 && p+0 > 0) ? sprintf("%.2f", i/p) : "n/a"
      printf "| %d B | %.1f | %.1f | %s | >= 0.95 |\n", z, i, p, ratio }'
  done
fi
echo
echo "raw: $(for k in "${!RES[@]}"; do printf '%s=[%s] ' "$k" "${RES[$k]% }"; done)"
