#!/usr/bin/env bash
# `make test-chaos`: the acks=ALL guarantee under faults, on the 3-node
# compose cluster. make up; a topic with 3 partitions, replication factor 3
# and min.insync.replicas 2; `strata verify produce` (acks=all, every
# outcome logged) runs for the whole test; then ROUNDS rounds, cycling
# through four faults:
#
#   kill        docker kill -s KILL of the node (broker + replicator) that
#               leads partition 0; docker start after KILL_DOWN_SECS
#   disconnect  docker network disconnect of the node that leads
#               partition 1, reconnected after DISCONNECT_SECS
#   pause       docker pause of the node that leads partition 2 for
#               PAUSE_SECS, longer than Serf's failure detection (about 5 s
#               with memberlist's LAN defaults), then docker unpause
#   restart     docker stop of a follower of partition 0, down for
#               FOLLOWER_DOWN_SECS under load, then docker start: it must
#               catch up and rejoin the ISR
#
# Each round records the time from the fault until every partition has a
# leader off the faulted node (failover), the time from the start of the
# repair until every broker agrees that every ISR is full again (heal), the acks so far, and (CHECK_EACH_ROUND=1) a `strata verify
# check` of the log so far, under load. At the end the producer stops and
# a final check reads every replica. The test fails when any check reports
# a lost acknowledged record, divergence or a gap, or when the cluster
# does not fail over or heal in time.
#
# Environment (defaults in brackets): ROUNDS [10], RATE records/s [1000],
# PRODUCERS [4], LOAD_SECS of load before each fault [5], KILL_DOWN_SECS
# [5], DISCONNECT_SECS [20], PAUSE_SECS [15], FOLLOWER_DOWN_SECS [10],
# FAILOVER_TIMEOUT [60], HEAL_TIMEOUT [120], DELIVERY_TIMEOUT [10] (seconds
# the producer retries a record before it gives up: shorter than a
# disconnect, so that some outcomes are indefinite and the checker resolves
# them), CHECK_EACH_ROUND [1], KEEP [0] (1 leaves the cluster up). COMPOSE
# as for make up.
#
# Refuses to run while a strata compose cluster exists (it would be torn
# down). Writes under .data/chaos: the outcome log, each check's JSON, the
# containers' logs after a failure. Needs docker, a compose tool, jq, timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=deployments/compose/lib.sh
. deployments/compose/lib.sh

ROUNDS=${ROUNDS:-10}
RATE=${RATE:-1000}
PRODUCERS=${PRODUCERS:-4}
LOAD_SECS=${LOAD_SECS:-5}
KILL_DOWN_SECS=${KILL_DOWN_SECS:-5}
DISCONNECT_SECS=${DISCONNECT_SECS:-20}
PAUSE_SECS=${PAUSE_SECS:-15}
FOLLOWER_DOWN_SECS=${FOLLOWER_DOWN_SECS:-10}
FAILOVER_TIMEOUT=${FAILOVER_TIMEOUT:-60}
HEAL_TIMEOUT=${HEAL_TIMEOUT:-120}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-10}
CHECK_EACH_ROUND=${CHECK_EACH_ROUND:-1}
KEEP=${KEEP:-0}

topic=chaos
work=$root/.data/chaos
outlog=$work/outcomes.jsonl
faults=(kill disconnect pause restart)
export STRATA_CONTEXT_FILE=$work/contexts.json
unset STRATA_CONTEXT STRATA_BROKERS

for tool in docker jq timeout; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
for v in ROUNDS RATE PRODUCERS LOAD_SECS KILL_DOWN_SECS DISCONNECT_SECS PAUSE_SECS FOLLOWER_DOWN_SECS FAILOVER_TIMEOUT HEAL_TIMEOUT DELIVERY_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done

ours=0          # set once make up starts: only then does the trap tear down
producer_pid="" # verify produce, in the background
rows=()         # the rounds table
failed=0
final_summary="(no final check)"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# cli runs the strata CLI, bounded by its own --timeout and by timeout.
cli() { timeout 45 bin/strata --timeout 30s "$@"; }
# status: every broker's view of the topic, merged (strata verify status:
# per partition the answer with the highest leader epoch, and whether all
# brokers agree on a healthy state). One broker's answer is not enough: a
# node back from a partition serves stale metadata for a while. A broker
# that does not answer within a second (paused, cut off) is left out.
status() { timeout 20 bin/strata --timeout 15s verify status --topic "$topic" --json --rpc-timeout 1s; }

# target FAULT: the node a fault hits (retried: a status may fail).
target() {
  local filter i n
  case $1 in
    kill) filter='.partitions[] | select(.partition == 0) | .leader' ;;
    disconnect) filter='.partitions[] | select(.partition == 1) | .leader' ;;
    pause) filter='.partitions[] | select(.partition == 2) | .leader' ;;
    # A replica of partition 0 that does not lead it.
    restart) filter='.partitions[] | select(.partition == 0) | .leader as $l | [.replicas[] | select(. != $l)] | last' ;;
  esac
  for ((i = 0; i < 10; i++)); do
    n=$(status 2>/dev/null | jq -r "$filter" 2>/dev/null) || n=""
    if [[ $n =~ ^[123]$ ]]; then
      echo "$n"
      return 0
    fi
    sleep 1
  done
  return 1
}

# led_off N: every partition has a leader, and none is node N.
led_off() {
  status 2>/dev/null | jq -e --argjson n "$1" \
    'all(.partitions[]; (.offline | not) and .leader >= 0 and .leader != $n)' >/dev/null
}

# healed: every broker answers and agrees; every partition has a leader
# and every replica in its ISR. While not, it logs what is missing each
# time that changes: a slow heal says why.
heal_why=""
healed() {
  local v why
  v=$(status 2>&1) || v='{"converged":false,"not_converged_because":["verify status failed"]}'
  jq -e '.converged' >/dev/null 2>&1 <<<"$v" && return 0
  why=$(jq -r '(.not_converged_because // []) | join("; ")' 2>/dev/null <<<"$v") || why=$v
  if [ "$why" != "$heal_why" ]; then
    say "not healed yet: $why"
    heal_why=$why
  fi
  return 1
}

# isr_state prints each partition's leader, epoch and ISR, and what keeps
# the brokers from agreeing, for the log.
isr_state() {
  status 2>/dev/null | jq -r '([.partitions[] | "p\(.partition): leader \(.leader) epoch \(.leader_epoch) isr \(.isr | map(tostring) | join(","))"] | join("; "))
    + (if .converged then "" else " [not converged: " + ((.not_converged_because // []) | join("; ")) + "]" end)' ||
    echo "(verify status failed)"
}

# poll_until SECONDS COMMAND...: runs COMMAND every half second until it
# succeeds (0) or SECONDS pass (1).
poll_until() {
  local limit=$1 start=$SECONDS
  shift
  until "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.5
  done
}

# sleep_until T: sleeps until T seconds since the epoch (fractional).
sleep_until() {
  local d
  d=$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; if (d > 0) printf "%.2f", d; else print 0 }')
  sleep "$d"
}

acks() { grep -c '"kind":"ack"' "$outlog" 2>/dev/null || true; }

node_containers() { echo "strata-broker-$1 strata-replicator-$1"; }

# docker_net: the compose network the nodes are on.
docker_net() { docker inspect strata-broker-1 --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}'; }

# check NAME [FLAGS...]: strata verify check of the log so far; its JSON
# report goes to $work/check-NAME.json, its verdict to stdout.
check() {
  local name=$1 f=$work/check-$1.json rc=0
  shift
  timeout 300 bin/strata --timeout 240s verify check --topic "$topic" --log "$outlog" --json "$@" >"$f" 2>"$work/check-$name.err" || rc=$?
  if ! jq -e . "$f" >/dev/null 2>&1; then
    echo "ERROR (exit $rc: $(tail -n 1 "$work/check-$name.err"))"
    return 1
  fi
  jq -r '.total as $t | (if .passed then "PASS" else "FAIL" end) +
    " lost=\($t.lost) divergent=\($t.divergent) gaps=\($t.gaps) dup-acked=\($t.dup_acked) dup-indef=\($t.dup_indefinite)" +
    " indef=\($t.indefinite)(found \($t.indefinite_found)) unreadable=\($t.unreadable)"' "$f"
  [ "$rc" -eq 0 ]
}

stop_producer() {
  [ -n "$producer_pid" ] || return 0
  local pid=$producer_pid
  producer_pid=""
  # SIGTERM, not SIGINT: a background job of a script starts with SIGINT
  # ignored. verify produce then drains for at most --drain-timeout (45 s).
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 120; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "verify produce did not stop in 60s after SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" || rc=$?
  say "verify produce exited $rc: $(tail -n 1 "$work/produce.out" 2>/dev/null)"
  return "$rc"
}

print_table() {
  echo
  echo "test-chaos rounds (topic $topic: 3 partitions, RF 3, min.insync.replicas 2; acks=all at ${RATE}/s from $PRODUCERS producers):"
  printf '%-6s %-11s %-5s %-11s %-8s %-9s %s\n' ROUND FAULT NODE FAILOVER-S HEAL-S ACKS RESULT
  local r
  for r in "${rows[@]}"; do printf '%s\n' "$r"; done
  echo
  echo "final check: $final_summary"
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ "$rc" -ne 0 ] || rc=$failed
  stop_producer
  if [ "$ours" = 1 ]; then
    # A paused container cannot be stopped; a cut-off one must be able to
    # report its logs.
    local s
    for s in "${SERVICES[@]}"; do
      [ "$(docker inspect --format '{{.State.Paused}}' "strata-$s" 2>/dev/null)" != true ] || timeout 30 docker unpause "strata-$s" >/dev/null
    done
    if [ "$rc" -ne 0 ]; then
      mkdir -p "$work/logs"
      # shellcheck disable=SC2086 # COMPOSE is one or two words
      timeout 60 $COMPOSE -p "$COMPOSE_PROJECT" -f "$COMPOSE_YML" ps
      for s in "${SERVICES[@]}"; do
        timeout 30 docker logs "strata-$s" >"$work/logs/$s.log" 2>&1
        show_logs "$s"
      done
      say "full container logs in $work/logs"
    fi
    if [ "$KEEP" = 1 ]; then
      say "KEEP=1: leaving the cluster up; make down-volumes removes it"
    else
      say "tearing down: make down-volumes"
      timeout 180 make --no-print-directory down-volumes COMPOSE="$COMPOSE" >/dev/null 2>&1 ||
        say "WARNING: make down-volumes failed; run it by hand"
    fi
  fi
  print_table
  if [ "$rc" -eq 0 ]; then echo "test-chaos: PASS"; else echo "test-chaos: FAIL"; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

if [ -n "$(docker ps -aq --filter name='^strata-' 2>/dev/null)" ]; then
  die "strata containers exist (a compose cluster is up?): run make down-volumes first"
fi
rm -rf "$work"
mkdir -p "$work"

# ---- setup
ours=1
say "---- make up"
timeout 900 make --no-print-directory up COMPOSE="$COMPOSE"
net=$(docker_net)

say "---- create topic $topic"
poll_until 60 cli topic create "$topic" --partitions 3 --replication-factor 3 --config min.insync.replicas=2 ||
  die "topic create failed for 60s"
poll_until 60 healed || die "topic $topic has no leaders and full ISRs after 60s: $(isr_state)"
say "topic $topic: $(isr_state)"

# The safety bound on the producer: every round at its longest, and the end.
max_run=$((ROUNDS * (LOAD_SECS + FAILOVER_TIMEOUT + DISCONNECT_SECS + PAUSE_SECS + HEAL_TIMEOUT + 60) + 600))
say "---- verify produce in the background (${RATE}/s, $PRODUCERS producers, log $outlog)"
bin/strata verify produce --topic "$topic" --producers "$PRODUCERS" --rate "$RATE" --duration "${max_run}s" \
  --delivery-timeout "${DELIVERY_TIMEOUT}s" --out "$outlog" --progress 30s >"$work/produce.out" 2>&1 &
producer_pid=$!

# ---- rounds
for ((round = 1; round <= ROUNDS; round++)); do
  fault=${faults[$(((round - 1) % ${#faults[@]}))]}
  sleep "$LOAD_SECS"
  kill -0 "$producer_pid" 2>/dev/null || die "verify produce died: $(tail -n 5 "$work/produce.out")"
  node=$(target "$fault") || die "round $round: no node to target ($fault): $(isr_state)"
  say "---- round $round: $fault node $node ($(isr_state))"
  result=ok
  t0=$(now)
  read -r -a ctrs <<<"$(node_containers "$node")"
  case $fault in
    kill) timeout 30 docker kill -s KILL "${ctrs[@]}" >/dev/null ;;
    disconnect)
      ips=()
      for c in "${ctrs[@]}"; do
        ips+=("$(docker inspect "$c" --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}")")
      done
      for c in "${ctrs[@]}"; do timeout 30 docker network disconnect "$net" "$c"; done
      ;;
    pause) timeout 30 docker pause "${ctrs[@]}" >/dev/null ;;
    restart) timeout 60 docker stop "${ctrs[@]}" >/dev/null ;;
  esac

  if poll_until "$FAILOVER_TIMEOUT" led_off "$node"; then
    failover=$(since "$t0")
    say "failover: no partition led by node $node after ${failover}s ($(isr_state))"
  else
    failover=">$FAILOVER_TIMEOUT"
    result="FAIL: no failover"
    failed=1
    say "FAIL: partitions still led by node $node or offline after ${FAILOVER_TIMEOUT}s: $(isr_state)"
  fi

  # Repair, no earlier than the fault's planned length.
  case $fault in
    kill | restart)
      down=$KILL_DOWN_SECS
      [ "$fault" = kill ] || down=$FOLLOWER_DOWN_SECS
      sleep_until "$(awk -v t="$t0" -v d="$down" 'BEGIN { printf "%.3f", t + d }')"
      t1=$(now)
      timeout 60 docker start "${ctrs[@]}" >/dev/null
      wait_healthy 90 "broker-$node" "replicator-$node" || { result="FAIL: node $node not healthy"; failed=1; }
      ;;
    disconnect)
      sleep_until "$(awk -v t="$t0" -v d="$DISCONNECT_SECS" 'BEGIN { printf "%.3f", t + d }')"
      t1=$(now)
      # The same address (the replicator's is fixed: Serf advertises it)
      # and the compose service name as the DNS alias.
      timeout 30 docker network connect --ip "${ips[0]}" --alias "broker-$node" "$net" "${ctrs[0]}"
      timeout 30 docker network connect --ip "${ips[1]}" --alias "replicator-$node" "$net" "${ctrs[1]}"
      ;;
    pause)
      sleep_until "$(awk -v t="$t0" -v d="$PAUSE_SECS" 'BEGIN { printf "%.3f", t + d }')"
      t1=$(now)
      timeout 30 docker unpause "${ctrs[@]}" >/dev/null
      ;;
  esac
  # Heal: from the start of the repair (docker start, connect, unpause)
  # until every broker agrees that every ISR is full.
  if poll_until "$HEAL_TIMEOUT" healed; then
    heal=$(since "$t1")
    say "healed: every ISR full ${heal}s after the repair ($(isr_state))"
  else
    heal=">$HEAL_TIMEOUT"
    result="FAIL: not healed"
    failed=1
    say "FAIL: ISRs not full ${HEAL_TIMEOUT}s after the repair: $(isr_state)"
  fi
  n_acks=$(acks)
  if [ "$CHECK_EACH_ROUND" = 1 ]; then
    verdict=$(check "round-$round") || failed=1
    result="$result; check $verdict"
  fi
  rows+=("$(printf '%-6s %-11s %-5s %-11s %-8s %-9s %s' "$round" "$fault" "$node" "$failover" "$heal" "$n_acks" "$result")")
  say "round $round: $fault node $node: failover ${failover}s, heal ${heal}s, $n_acks acks: $result"
  case $result in "FAIL: not healed"* | "FAIL: node"*) die "the cluster did not recover; stopping after round $round" ;; esac
done

# ---- the end: heal, stop the load, read every replica
poll_until "$HEAL_TIMEOUT" healed || { failed=1; say "FAIL: ISRs not full before the final check: $(isr_state)"; }
say "---- stopping verify produce"
stop_producer || { failed=1; say "FAIL: verify produce failed"; }
say "---- final verify check"
if final_summary=$(check final --wait-isr 60s); then :; else failed=1; fi
timeout 60 bin/strata --timeout 45s verify check --topic "$topic" --log "$outlog" --max-examples 5 || true
