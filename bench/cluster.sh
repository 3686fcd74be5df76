#!/usr/bin/env bash
# bench/cluster.sh: replicated produce on the 3-node compose cluster.
#
# On the cluster `make up` starts (mutual TLS, ACLs, three brokers and
# three replicators in containers on this machine), `strata bench produce`
# with 1 KiB records to a topic with replication factor 3 and
# min_insync_replicas 2: acks=ALL next to acks=LEADER, and next to a 3-node
# NATS JetStream cluster (nats-server v2.15.2, three processes on loopback,
# file storage, R3 stream, no TLS) measured with `nats bench js pub async`
# (natscli v0.5.0). Systems alternate over ROUNDS rounds; the script prints
# medians and ratios, then the p99 of acks=ALL at half of its own median
# throughput.
#
# Knobs (environment): ROUNDS (3), RECORDS (100000), PRODUCERS (1),
# PARTITIONS (3), UP (1: run `make up` first; 0: use the running cluster),
# DOWN (0: leave the cluster running; 1: make down-volumes at the end),
# KEEP=1 keeps the temp dir, WARMUP (2000: records each Strata run produces
# unmeasured first: connections open, and the new topic's followers
# fetching; `topic create` returns before every replicator has applied it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-100000}
PRODUCERS=${PRODUCERS:-1}
PARTITIONS=${PARTITIONS:-3}
WARMUP=${WARMUP:-2000}
NATS_VERSION=v2.15.2
NATSCLI_VERSION=v0.5.0
TOOLS=$ROOT/.tools/nats

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
command -v jq >/dev/null || { log "jq is required (apt-get install -y jq)"; exit 1; }

if [[ ${UP:-1} == 1 ]]; then
  log "make up"
  make -C "$ROOT" up >&2
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
NATS_PIDS=()
cleanup() {
  for p in "${NATS_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  if [[ ${DOWN:-0} == 1 ]]; then make -C "$ROOT" down-volumes >&2 || true; fi
}
trap cleanup EXIT


# --- a 3-node JetStream cluster on loopback -----------------------------------
CPORTS=() NPORTS=()
for i in 1 2 3; do NPORTS+=("$(free_port)"); CPORTS+=("$(free_port)"); done
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
  "$TOOLS/nats-server" -c "$TMP/nats-$i.conf" >"$TMP/nats-$i.log" 2>&1 &
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

STRATA=("$ROOT/bin/strata" --context compose)

# --- runners: each prints one line "rate p50_ms p99_ms" -----------------------
strata_produce() { # topic acks [extra...]
  local topic=$1 acks=$2; shift 2
  "${STRATA[@]}" bench produce --json --progress never --topic "$topic" --records "$RECORDS" --size 1024 \
    --producers "$PRODUCERS" --acks "$acks" --warmup-records "$WARMUP" "$@" |
    jq -r '"\(.records_per_sec) \(.latency_ms.p50 // "n/a") \(.latency_ms.p99 // "n/a")"'
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

cat <<EOF

Replicated produce, 1 KiB records, $RECORDS records x $ROUNDS rounds (medians), $PRODUCERS producer(s),
$PARTITIONS partitions, replication factor 3, min_insync_replicas 2, fsync interval:1s,
Strata: 3-node compose cluster, mutual TLS + ACLs, $WARMUP unmeasured warmup records per run;
JetStream: 3-node cluster on loopback, R3 file stream, no TLS.

| case | records/s | p50 ms | p99 ms |
| --- | --- | --- | --- |
| Strata acks=ALL | $all_rate | $(m all_p50) | $(m all_p99) |
| Strata acks=LEADER | $leader_rate | $(m leader_p50) | $(m leader_p99) |
| JetStream R3 async publish | $nats_rate | n/a | $(m nats_p99) |
| Strata acks=ALL at $half rec/s (half load) | | $half_p50 | $half_p99 |

acks=ALL / acks=LEADER: $(ratio "$all_rate" "$leader_rate") (target >= 0.60)
acks=ALL / JetStream R3: $(ratio "$all_rate" "$nats_rate") (target >= 1.5)
p99 acks=ALL at half load: $half_p99 ms (target <= 20)
EOF
