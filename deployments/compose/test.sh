#!/usr/bin/env bash
# `make test-compose`: the compose cluster end to end, through the strata
# CLI on the host. Starts from nothing (make down-volumes), runs make up,
# creates a topic with 3 partitions and replication factor 3, produces with
# acks=all and consumes, kills node 1 (broker-1 and replicator-1), waits
# until nodes 2 and 3 lead every partition, checks that the acknowledged
# records survived, produces to and consumes from every partition, starts
# node 1 again, waits until it is healthy and back in the cluster, and
# runs make down. Every step is bounded; the cluster and its volumes are
# removed on exit, pass or fail (KEEP=1 keeps them).
#
# The CLI uses a private contexts file under .data/compose, never the
# user's. Needs docker, a compose tool, jq and timeout (coreutils).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=deployments/compose/lib.sh
. deployments/compose/lib.sh

topic=compose-test
export STRATA_CONTEXT_FILE=$root/.data/compose/test-contexts.json
unset STRATA_CONTEXT STRATA_BROKERS

for tool in docker jq timeout; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# cli runs the strata CLI, bounded twice over (its own --timeout and a kill).
cli() { timeout 45 bin/strata --timeout 30s "$@"; }

results=()
notes=()
failed=0
# step NAME COMMAND...: runs one step and prints and records PASS or FAIL.
# A failed step stops the test: the steps after it need it.
step() {
  run_step "$@" || exit 1
}
# check NAME COMMAND...: a step the later ones do not need; after a FAIL
# the test goes on (and still fails at the end), so that one run tells
# about every step.
check() {
  run_step "$@" || failed=1
}
run_step() {
  local name=$1 start=$SECONDS
  shift
  say "---- STEP: $name"
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - start))s)")
    say "PASS: $name ($((SECONDS - start))s)"
  else
    results+=("FAIL  $name ($((SECONDS - start))s)")
    say "FAIL: $name"
    return 1
  fi
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  [ "$rc" -ne 0 ] || rc=$failed
  if [ "$rc" -ne 0 ] && docker inspect strata-broker-2 >/dev/null 2>&1; then
    compose ps || true
    for s in "${SERVICES[@]}"; do show_logs "$s"; done
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    say "KEEP=1: leaving the cluster up; make down-volumes removes it"
  else
    say "tearing down: make down-volumes"
    timeout 180 make --no-print-directory down-volumes COMPOSE="$COMPOSE" >/dev/null 2>&1 ||
      say "WARNING: make down-volumes failed; run it by hand"
  fi
  echo
  echo "test-compose summary:"
  printf '  %s\n' "${results[@]}"
  if [ ${#notes[@]} -gt 0 ]; then
    echo "transient failures that a retry got past (worth fixing in the code):"
    printf '  %s\n' "${notes[@]}"
  fi
  if [ "$rc" -eq 0 ]; then echo "test-compose: PASS"; else echo "test-compose: FAIL"; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 2 s until it
# succeeds; fails after SECONDS, saying WHAT it waited for.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      say "gave up after ${limit}s waiting for: $what"
      return 1
    fi
    sleep 2
  done
  say "$what ($((SECONDS - start))s)"
}

# retry SECONDS WHAT COMMAND...: runs COMMAND (its output captured) until it
# succeeds, at most for SECONDS. A failure that a later attempt gets past
# is recorded in the summary: the cluster recovered, but a user running the
# command once would have seen the error.
retry() {
  local limit=$1 what=$2 start=$SECONDS out first=""
  shift 2
  until out=$("$@" 2>&1); do
    say "$what: $out"
    [ -n "$first" ] || first=$out
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      say "gave up after ${limit}s: $what"
      return 1
    fi
    sleep 2
  done
  [ -z "$out" ] || printf '%s\n' "$out"
  if [ -n "$first" ]; then
    first=$(grep -m 1 '^strata:' <<<"$first" || head -n 1 <<<"$first")
    notes+=("$what failed for $((SECONDS - start))s before succeeding; first error: $first")
  fi
}

# partitions prints one line per partition of the topic:
# "<partition> <leader, -1 when offline> <ISR, comma-separated>".
partitions() {
  cli topic describe "$topic" --json |
    jq -r '.partitions[] | "\(.partition) \(if .offline then -1 else .leader_id end) \(.isr | map(tostring) | join(","))"'
}

# led_by NODE...: each of the 3 partitions has a leader among NODEs.
# Returns 2 when that cannot happen any more: a partition is offline and
# no node of its ISR is among NODEs (unclean election is off).
led_by() {
  local got n=0 p l isr hopeless=0
  got=$(partitions 2>&1) || { say "describe: $got"; return 1; }
  while read -r p l isr; do
    [ -n "$p" ] || continue
    if [[ " $* " == *" $l "* ]]; then
      n=$((n + 1))
    elif [ "$l" = -1 ] && ! grep -qwE "$(tr ' ' '|' <<<"$*")" <<<"${isr//,/ }"; then
      say "partition $p is offline and its ISR ($isr) holds none of: $*"
      hopeless=1
    fi
  done <<<"$got"
  say "partition leader isr: $(tr '\n' ';' <<<"$got") (want every leader among: $*)"
  [ "$hopeless" -eq 0 ] || return 2
  [ "$n" -eq 3 ]
}

fresh() { timeout 180 make --no-print-directory down-volumes COMPOSE="$COMPOSE"; }

up() {
  timeout 900 make --no-print-directory up COMPOSE="$COMPOSE" &&
    [ -f "$STRATA_CONTEXT_FILE" ] || { say "make up did not write $STRATA_CONTEXT_FILE"; return 1; }
}

create_topic() {
  retry 60 "topic create" cli topic create "$topic" --partitions 3 --replication-factor 3 &&
    wait_until 60 "every partition has a leader" led_by 1 2 3
}

records=(k0:v0 k1:v1 k2:v2 k3:v3 k4:v4 k5:v5)

# Produce with acks=all: once acknowledged, a record is below the high
# watermark, so a consumer must see it at once.
produce_records() { printf '%s\n' "${records[@]}" | cli produce "$topic" --key-delim : --acks all -v; }
produce() { retry 30 "produce right after topic create" produce_records; }

# consume reads every partition to its end and wants each record at least
# once (a retried produce may have written some twice); after the failover
# they must all still be there: they were acknowledged with acks=all.
consume() {
  local got want n
  got=$(cli consume "$topic" --from earliest --format '%k:%s\n') || return 1
  got=$(grep -v '^:after-failover-' <<<"$got")
  n=$(grep -c . <<<"$got")
  got=$(sort -u <<<"$got")
  want=$(printf '%s\n' "${records[@]}" | sort)
  if [ "$got" != "$want" ]; then
    say "consumed $n records, distinct: ${got:-(none)}" | tr '\n' ' '
    echo
    say "want: $(tr '\n' ' ' <<<"$want")"
    cli topic describe "$topic" | sed -n '/^PARTITIONS$/,$p'
    return 1
  fi
  say "consumed $n records: all ${#records[@]} produced ones"
}

kill_node1() { docker kill strata-broker-1 strata-replicator-1; }

# failover waits until nodes 2 and 3 lead every partition; it gives up at
# once when a partition can no longer get a leader.
failover() {
  local start=$SECONDS rc
  while :; do
    led_by 2 3
    rc=$?
    case $rc in
      0) say "every partition led by node 2 or 3 ($((SECONDS - start))s)"; return 0 ;;
      2) return 1 ;;
    esac
    if [ $((SECONDS - start)) -ge 90 ]; then
      say "gave up after 90s waiting for every partition to be led by node 2 or 3"
      return 1
    fi
    sleep 2
  done
}

produce_one() { echo "after-failover-$1" | cli produce "$topic" --partition "$1" --acks all -v; }
produce_each() {
  local p ok=0
  for p in 0 1 2; do
    retry 60 "produce to partition $p after failover" produce_one "$p" || ok=1
  done
  return "$ok"
}

consume_each() {
  local p got ok=0
  for p in 0 1 2; do
    got=$(cli consume "$topic" --partition "$p" --from -1 -n 1 --format '%s\n') || ok=1
    say "partition $p, last record: ${got:-(none)} (want after-failover-$p)"
    [ "$got" = "after-failover-$p" ] || ok=1
  done
  [ "$ok" -eq 0 ] || cli topic describe "$topic" | sed -n '/^PARTITIONS$/,$p'
  return "$ok"
}

restart_node1() {
  docker start strata-broker-1 strata-replicator-1 &&
    wait_healthy 90 broker-1 replicator-1 &&
    wait_until 60 "node 1 alive in the cluster metadata" node1_alive
}

node1_alive() {
  [ "$(cli cluster info --json 2>/dev/null | jq -r '.brokers[] | select(.id == 1) | .alive')" = true ]
}

down() { timeout 180 make --no-print-directory down COMPOSE="$COMPOSE"; }

step "start from nothing (make down-volumes)" fresh
step "make up: every service healthy" up
step "create topic $topic: 3 partitions, replication factor 3" create_topic
check "produce ${#records[@]} records" produce
check "consume them back" consume
step "docker kill broker-1 and replicator-1" kill_node1
check "fail over: no partition led by node 1" failover
check "the records acknowledged before the kill are all still readable" consume
check "produce to every partition (--partition N)" produce_each
check "consume every partition" consume_each
step "docker start broker-1 and replicator-1: healthy again" restart_node1
step "make down" down
