# Shared by up.sh and test.sh (sourced, run from the repository root).

# The compose command: the plugin (`docker compose`) when it works, else
# the standalone docker-compose. The Makefile passes its choice in COMPOSE.
if [ -z "${COMPOSE:-}" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
COMPOSE_PROJECT=strata
COMPOSE_YML=deployments/compose/docker-compose.yml

# The long-running services; each container is named strata-<service>.
SERVICES=(replicator-1 replicator-2 replicator-3 broker-1 broker-2 broker-3 admin)

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

compose() {
  # shellcheck disable=SC2086 # COMPOSE is one or two words
  $COMPOSE -p "$COMPOSE_PROJECT" -f "$COMPOSE_YML" "$@"
}

# health SERVICE prints healthy, starting or unhealthy, else the
# container's state (exited, restarting, ...) or "missing".
health() {
  docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
    "strata-$1" 2>/dev/null || echo missing
}

# probe SERVICE runs the container's own healthcheck command once, now.
# Docker runs it only every interval (10 s: each run is a container exec,
# and at 3 s those execs took a quarter of a 2-core machine's CPU while
# the cluster sat idle), and a wait should not lag behind by that much.
probe() {
  local args
  mapfile -t args < <(docker inspect --format \
    '{{range $i, $a := .Config.Healthcheck.Test}}{{if gt $i 1}}{{"\n"}}{{end}}{{if $i}}{{$a}}{{end}}{{end}}' "strata-$1" 2>/dev/null)
  [ "${#args[@]}" -gt 0 ] && timeout 10 docker exec "strata-$1" "${args[@]}" >/dev/null 2>&1
}

# wait_healthy SECONDS SERVICE... waits until every service is healthy
# (or passes its probe), printing progress; returns 1 when SECONDS pass
# first.
wait_healthy() {
  local limit=$1 start=$SECONDS last="" printed=-100 line s st n
  shift
  while :; do
    n=0
    line=""
    for s in "$@"; do
      st=$(health "$s")
      # Between docker's own runs, a passing probe is as good.
      if [ "$st" = healthy ] || { [[ $st == starting || $st == unhealthy ]] && probe "$s"; }; then
        n=$((n + 1))
      else
        line+=" $s:$st"
      fi
    done
    if [ "$n" -eq "$#" ]; then
      say "healthy: $* ($((SECONDS - start))s)"
      return 0
    fi
    if [ "$line" != "$last" ] || [ $((SECONDS - printed)) -ge 10 ]; then
      say "waiting for health: $n/$# healthy, not yet:$line ($((SECONDS - start))s of ${limit}s)"
      last=$line
      printed=$SECONDS
    fi
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 1
  done
}

# show_logs SERVICE prints the container's last log lines and its last
# healthcheck outputs.
show_logs() {
  say "---- strata-$1: last logs"
  docker logs --tail 40 "strata-$1" 2>&1 || true
  local hc
  hc=$(docker inspect --format '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{end}}{{end}}' "strata-$1" 2>/dev/null || true)
  if [ -n "$hc" ]; then
    say "---- strata-$1: last healthchecks"
    printf '%s\n' "$hc" | tail -n 5
  fi
}
