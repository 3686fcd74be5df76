#!/usr/bin/env bash
# bench/cluster.sh: replicated produce on a 3-node Strata cluster.
#
# On the cluster `make up` starts (mutual TLS, ACLs, three brokers and
# three replicators in containers on this machine), or with NATIVE=1 on
# the same cluster as native processes on loopback (below), `strata bench
# produce` with 1 KiB records to a topic with replication factor 3 and
# min_insync_replicas 2: acks=ALL next to acks=LEADER, and next to a 3-node
# NATS JetStream cluster (nats-server v2.15.2, three processes on loopback,
# file storage, R3 stream, no TLS) measured with `nats bench js pub async`
# (natscli v0.5.0). Systems alternate over ROUNDS rounds; the script prints
# medians and ratios, then the p99 of acks=ALL at half of its own median
# throughput.
#
# NATIVE=1: no containers and no docker-proxy, the shape JetStream gets.
# The script builds bin/ (make build; BUILD=0 skips it), makes a CA and
# every key pair with `strata-admin pki init` in its temp dir, and starts
# strata-admin (ACL policy, certificates, the console's scrapes of every
# /metrics, as in compose), three strata-replicators (Serf, Raft, mTLS,
# following admin's ACL policy) and three strata-brokers (cluster mode,
# mTLS, ACLs) on 127.0.0.1 with their data directories in the temp dir,
# each with GOMAXPROCS=STRATA_GOMAXPROCS (1, as compose gives each
# container: six Go processes share the cores). The CLI uses its own
# contexts file there (the user's contexts are not touched). Every process
# is stopped by the exit trap (SIGTERM, SIGKILL after 10 s).
#
# Knobs (environment): ROUNDS (3), RECORDS (100000), PRODUCERS (1),
# PARTITIONS (3), NATIVE (0), UP (1: run `make up` first; 0: use the
# running cluster; compose only), BUILD (1: make build first; native only),
# STRATA_GOMAXPROCS (1: each Strata process's GOMAXPROCS, native and
# compose), NATS_GOMAXPROCS (unset: each nats-server's default, all
# cores), DOWN (0: leave the cluster running; 1: make down-volumes at the
# end; compose only), KEEP=1 keeps the temp dir (with the native
# processes' logs), LOCAL_SOCKET (1: each native node's replicator
# appends to its broker over a Unix socket, as in compose; 0: mutual TLS
# over loopback TCP), WARMUP (2000: records each Strata run produces
# unmeasured first: connections open, and the new topic's followers
# fetching; `topic create` returns before every replicator has applied it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-100000}
PRODUCERS=${PRODUCERS:-1}
PARTITIONS=${PARTITIONS:-3}
WARMUP=${WARMUP:-2000}
NATIVE=${NATIVE:-0}
STRATA_GOMAXPROCS=${STRATA_GOMAXPROCS:-1}
NATS_VERSION=v2.15.2
NATSCLI_VERSION=v0.5.0
TOOLS=$ROOT/.tools/nats

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
command -v jq >/dev/null || { log "jq is required (apt-get install -y jq)"; exit 1; }

if [[ $NATIVE == 1 ]]; then
  if [[ ${BUILD:-1} == 1 ]]; then
    log "make build"
    make -C "$ROOT" build >&2
  fi
elif [[ ${UP:-1} == 1 ]]; then
  log "make up"
  STRATA_GOMAXPROCS=$STRATA_GOMAXPROCS make -C "$ROOT" up >&2
fi
if [[ ! -x $TOOLS/nats-server ]]; then
  log "installing nats-server $NATS_VERSION"
  GOBIN=$TOOLS GOWORK=off go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi
if [[ ! -x $TOOLS/nats ]]; then
  log "installing nats $NATSCLI_VERSION"
  GOBIN=$TOOLS GOWORK=off go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-cluster-bench.XXXXXX")
NATS_PIDS=() STRATA_PIDS=()
# stop_pids PID...: SIGTERM, up to 10 s for them to exit, then SIGKILL.
stop_pids() {
  (($# > 0)) || return 0
  local p i alive
  kill "$@" 2>/dev/null || true
  for i in $(seq 1 100); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  kill -9 "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
}
# descendants PID: every process below PID (children first-level first).
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}
cleanup() {
  stop_pids "${NATS_PIDS[@]}"
  stop_pids "${STRATA_PIDS[@]}"
  # Interrupted during a run: the client (strata bench, nats bench) in
  # its process substitution's subshell is still there, and would wait
  # for answers from servers that are gone: SIGKILL.
  local rest
  mapfile -t rest < <(descendants $$)
  ((${#rest[@]} == 0)) || kill -9 "${rest[@]}" 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  if [[ $NATIVE != 1 && ${DOWN:-0} == 1 ]]; then make -C "$ROOT" down-volumes >&2 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pick_port VAR: sets VAR to a loopback port in 16000-19999 that no socket
# (TCP or UDP: Serf uses both) is bound to and that this script has not
# handed out yet (not in a subshell: PICKED must remember it). Below
# Linux's ephemeral range, so no outgoing connection takes it before its
# process binds it, and outside the ranges test/cluster (20000-25999) and
# the replicator's tests (26000-31999) pick from, which may be running on
# this machine at the same time; 19091-19093 are compose's.
declare -A PICKED
pick_port() {
  local p i
  for i in $(seq 1 500); do
    p=$((16000 + RANDOM % 4000))
    [[ -z ${PICKED[$p]:-} ]] || continue
    ((p < 19091 || p > 19093)) || continue
    ss -Hantu "sport = :$p" 2>/dev/null | grep -q . && continue
    PICKED[$p]=1
    printf -v "$1" '%s' "$p"
    return 0
  done
  log "no free port"
  exit 1
}


# --- a 3-node JetStream cluster on loopback -----------------------------------
CPORTS=() NPORTS=()
for i in 1 2 3; do
  pick_port port && NPORTS+=("$port")
  pick_port port && CPORTS+=("$port")
done
routes=""
for i in 0 1 2; do routes+="nats-route://127.0.0.1:${CPORTS[$i]},"; done
for i in 0 1 2; do
  cat >"$TMP/nats-$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${NPORTS[$i]}
jetstream { store_dir: "$TMP/js-$i" }
cluster {
  name: bench
  listen: 127.0.0.1:${CPORTS[$i]}
  routes: [${routes%,}]
}
CONF
  if [[ -n ${NATS_GOMAXPROCS:-} ]]; then
    GOMAXPROCS=$NATS_GOMAXPROCS "$TOOLS/nats-server" -c "$TMP/nats-$i.conf" >"$TMP/nats-$i.log" 2>&1 &
  else
    "$TOOLS/nats-server" -c "$TMP/nats-$i.conf" >"$TMP/nats-$i.log" 2>&1 &
  fi
  NATS_PIDS+=($!)
done
for p in "${NPORTS[@]}"; do wait_port "$p"; done
NATS=("$TOOLS/nats" -s "nats://127.0.0.1:${NPORTS[0]},nats://127.0.0.1:${NPORTS[1]},nats://127.0.0.1:${NPORTS[2]}")
# JetStream needs its meta leader before streams can be made.
for i in $(seq 1 100); do
  "${NATS[@]}" server check jetstream >/dev/null 2>&1 && break
  "${NATS[@]}" stream ls >/dev/null 2>&1 && break
  sleep 0.2
done

# --- Strata: the compose cluster, or the same on loopback ---------------------
start_native() {
  local bin=$ROOT/bin pki=$TMP/pki i
  for b in strata-broker strata-replicator strata-admin strata; do
    [[ -x $bin/$b ]] || { log "$bin/$b is missing: run make build (or BUILD=1)"; exit 1; }
  done
  "$bin/strata-admin" pki init --out "$pki" --ca-name "Strata bench CA" --node 1 --node 2 --node 3 >"$TMP/pki-init.log" 2>&1 ||
    { cat "$TMP/pki-init.log" >&2; exit 1; }
  # Per node: broker, broker /metrics, replicator, replicator /metrics,
  # Serf, Raft.
  local -a BP BM RP RM SP TP
  local port ap admin_url brokers join targets
  for i in 0 1 2; do
    pick_port port && BP+=("$port")
    pick_port port && BM+=("$port")
    pick_port port && RP+=("$port")
    pick_port port && RM+=("$port")
    pick_port port && SP+=("$port")
    pick_port port && TP+=("$port")
  done
  pick_port ap
  admin_url=https://127.0.0.1:$ap
  brokers="127.0.0.1:${BP[0]},127.0.0.1:${BP[1]},127.0.0.1:${BP[2]}"
  join="127.0.0.1:${SP[0]},127.0.0.1:${SP[1]},127.0.0.1:${SP[2]}"
  targets=""
  for i in 0 1 2; do targets+="broker-$((i + 1))=127.0.0.1:${BM[$i]},replicator-$((i + 1))=127.0.0.1:${RM[$i]},"; done
  log "native cluster in $TMP: brokers $brokers, admin $admin_url, GOMAXPROCS=$STRATA_GOMAXPROCS each"
  # As compose: admin first (the others follow its ACL policy), then the
  # replicators, then the brokers.
  GOMAXPROCS=$STRATA_GOMAXPROCS "$bin/strata-admin" serve --listen "127.0.0.1:$ap" --data-dir "$TMP/admin" \
    --tls-cert "$pki/admin.pem" --tls-key "$pki/admin-key.pem" --tls-ca "$pki/ca.pem" --ca-key "$pki/ca-key.pem" \
    --cluster-addrs "$brokers" --metrics-targets "${targets%,}" >"$TMP/admin.log" 2>&1 &
  STRATA_PIDS+=($!)
  wait_port "$ap"
  # Each node's broker and replicator share a directory for the broker's
  # local socket, as compose's node-N-sock volume (LOCAL_SOCKET=0: mutual
  # TLS over loopback TCP instead).
  local -a SOCK
  for i in 1 2 3; do
    if [[ ${LOCAL_SOCKET:-1} == 1 ]]; then
      mkdir -m 0700 -p "$TMP/sock-$i"
      SOCK+=("$TMP/sock-$i/broker.sock")
    else
      SOCK+=("")
    fi
  done
  for i in 1 2 3; do
    GOMAXPROCS=$STRATA_GOMAXPROCS "$bin/strata-replicator" --node-id "$i" --data-dir "$TMP/replicator-$i" \
      --broker-local-socket "${SOCK[$((i - 1))]}" \
      --serf-bind "127.0.0.1:${SP[$((i - 1))]}" --join "$join" --raft-bind "127.0.0.1:${TP[$((i - 1))]}" \
      --listen "127.0.0.1:${RP[$((i - 1))]}" --broker-addr "127.0.0.1:${BP[$((i - 1))]}" --bootstrap-expect 3 \
      --cluster-key-file "$pki/gossip.key" --acl-admin-url "$admin_url" \
      --tls-cert "$pki/replicator-$i.pem" --tls-key "$pki/replicator-$i-key.pem" --tls-ca "$pki/ca.pem" \
      --metrics-listen "127.0.0.1:${RM[$((i - 1))]}" --log-level info >"$TMP/replicator-$i.log" 2>&1 &
    STRATA_PIDS+=($!)
  done
  for i in 1 2 3; do
    GOMAXPROCS=$STRATA_GOMAXPROCS "$bin/strata-broker" --node-id "$i" --data-dir "$TMP/broker-$i" \
      --local-socket "${SOCK[$((i - 1))]}" \
      --listen "127.0.0.1:${BP[$((i - 1))]}" --metrics-listen "127.0.0.1:${BM[$((i - 1))]}" \
      --replicator-addr "127.0.0.1:${RP[$((i - 1))]}" --acl-admin-url "$admin_url" \
      --tls-cert "$pki/broker-$i.pem" --tls-key "$pki/broker-$i-key.pem" --tls-ca "$pki/ca.pem" \
      --log-level info >"$TMP/broker-$i.log" 2>&1 &
    STRATA_PIDS+=($!)
  done
  for i in 0 1 2; do wait_port "${BP[$i]}"; wait_port "${RP[$i]}"; done
  export STRATA_CONTEXT_FILE=$TMP/contexts.json
  "$bin/strata" context set native --brokers "$brokers" --ca "$pki/ca.pem" --cert "$pki/operator.pem" \
    --key "$pki/operator-key.pem" --admin "$admin_url" >/dev/null
  STRATA=("$bin/strata" --context native)
  # Ready: every broker alive in the metadata and a controller elected
  # (Serf join, Raft election, brokers' liveness probes): 60 s at most.
  local info="" t0=$SECONDS
  while ((SECONDS - t0 < 60)); do
    info=$("${STRATA[@]}" --timeout 3s cluster info --json 2>/dev/null) || info=""
    if [[ -n $info ]] && jq -e '(.controller_id >= 0) and ([.brokers[] | select(.alive)] | length == 3)' >/dev/null 2>&1 <<<"$info"; then
      log "native cluster ready ($((SECONDS - t0)) s after the brokers listened)"
      return 0
    fi
    sleep 0.2
  done
  log "native cluster not ready after 60 s: ${info:-no answer}; logs:"
  for f in "$TMP"/{admin,replicator-?,broker-?}.log; do log "== $f"; tail -n 5 "$f" >&2; done
  exit 1
}

if [[ $NATIVE == 1 ]]; then
  start_native
else
  STRATA=("$ROOT/bin/strata" --context compose)
fi

# --- runners: each prints one line "rate p50_ms p99_ms" -----------------------
strata_produce() { # topic acks [extra...]
  local topic=$1 acks=$2; shift 2
  "${STRATA[@]}" bench produce --json --progress never --topic "$topic" --records "$RECORDS" --size 1024 \
    --producers "$PRODUCERS" --acks "$acks" --warmup-records "$WARMUP" "$@" |
    jq -r 'def ms: if . == null then "n/a" else (. * 100 | round / 100) end;
      "\(.records_per_sec | floor) \(.latency_ms.p50 | ms) \(.latency_ms.p99 | ms)"'
}
nats_pub() {
  local out
  out=$("${NATS[@]}" bench js pub async --create --storage file --replicas 3 --purge --no-progress \
    --msgs "$RECORDS" --size 1024 --clients "$PRODUCERS" bench.r3 2>&1)
  local rate p99
  rate=$(grep -m1 'stats:' <<<"$out" | sed -E 's/.*stats: ([0-9,]+) msgs\/sec.*/\1/' | tr -d ,)
  p99=$(grep -m1 'stats:' <<<"$out" | sed -E 's/.*P99: ([0-9,.]+)us.*/\1/' | tr -d , | awk '{printf "%.3f", $1/1000}')
  echo "$rate n/a ${p99:-n/a}"
}


topic_for() { # round acks
  local t="rbench-$1-$2"
  "${STRATA[@]}" topic create "$t" --partitions "$PARTITIONS" --replication-factor 3 \
    --config min.insync.replicas=2 --config fsync=interval:1s >/dev/null
  echo "$t"
}

for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS"
  order=(all leader nats); (( r % 2 == 0 )) && order=(nats leader all)
  for sys in "${order[@]}"; do
    case $sys in
      all) read -r rate p50 p99 < <(strata_produce "$(topic_for "$r" all)" all)
           add all_rate "$rate"; add all_p50 "$p50"; add all_p99 "$p99" ;;
      leader) read -r rate p50 p99 < <(strata_produce "$(topic_for "$r" leader)" leader)
           add leader_rate "$rate"; add leader_p50 "$p50"; add leader_p99 "$p99" ;;
      nats) read -r rate _ p99 < <(nats_pub)
           add nats_rate "$rate"; add nats_p99 "$p99" ;;
    esac
    log "  $sys: $rate rec/s"
  done
done

m() { median <<<"${RES[$1]:-}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

all_rate=$(m all_rate) leader_rate=$(m leader_rate) nats_rate=$(m nats_rate)
half=$(awk -v a="$all_rate" 'BEGIN { printf "%d", a / 2 }')
log "acks=ALL at half load: $half rec/s"
read -r _ half_p50 half_p99 < <(strata_produce "$(topic_for half all)" all --rate "$half")

if [[ $NATIVE == 1 ]]; then
  shape="3 brokers + 3 replicators + admin as native processes on loopback (no containers), GOMAXPROCS=$STRATA_GOMAXPROCS each"
elif [[ ${UP:-1} == 1 ]]; then
  shape="3-node compose cluster, GOMAXPROCS=$STRATA_GOMAXPROCS per container"
else
  shape="3-node compose cluster as it was started (UP=0)"
fi
cat <<EOF

Replicated produce, 1 KiB records, $RECORDS records x $ROUNDS rounds (medians), $PRODUCERS producer(s),
$PARTITIONS partitions, replication factor 3, min_insync_replicas 2, fsync interval:1s,
Strata: $shape, mutual TLS + ACLs, idempotent producer (the default), $WARMUP unmeasured warmup records per run;
JetStream: 3-node cluster on loopback, R3 file stream, no TLS, GOMAXPROCS ${NATS_GOMAXPROCS:-default}.

| case | records/s | p50 ms | p99 ms |
| --- | --- | --- | --- |
| Strata acks=ALL | $all_rate | $(m all_p50) | $(m all_p99) |
| Strata acks=LEADER | $leader_rate | $(m leader_p50) | $(m leader_p99) |
| JetStream R3 async publish | $nats_rate | n/a | $(m nats_p99) |
| Strata acks=ALL at $half rec/s (half load) | | $half_p50 | $half_p99 |

acks=ALL / acks=LEADER: $(ratio "$all_rate" "$leader_rate") (target >= 0.75, issue 15)
acks=ALL / JetStream R3: $(ratio "$all_rate" "$nats_rate") (target >= 2, issue 15)
p99 acks=ALL at half load: $half_p99 ms (target <= 15, issue 15)
EOF
