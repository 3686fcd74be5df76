# bench/lib.sh: helpers shared by the benchmark scripts (sourced, not run).

log() { printf '%s\n' "$*" >&2; }

# free_port prints a loopback TCP port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# wait_port waits up to 10 s for a listener on loopback port $1.
wait_port() {
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "port $1 did not open"; return 1
}

# RES collects each case's figures; median prints the median of a list on
# stdin (n/a entries ignored; n/a when there is none).
declare -A RES
add() { RES[$1]+="$2 "; }
median() { tr ' ' '\n' | { grep -v -e '^$' -e n/a || true; } | sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
