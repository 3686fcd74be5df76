#!/usr/bin/env bash
# `make up`: build the images from bin/ (make build ran first), start the
# 3-node cluster, wait until every service is healthy, copy the operator's
# certificate out of the pki volume and point the strata CLI at the cluster.
#
# Environment: COMPOSE (the compose command; detected when unset),
# WAIT_TIMEOUT (seconds to wait for health, default 120),
# STRATA_CONTEXT_FILE (the CLI's contexts file; default the user's).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=deployments/compose/lib.sh
. deployments/compose/lib.sh

wait_timeout=${WAIT_TIMEOUT:-120}
out=.data/compose
pki_out=$out/pki

for b in strata-broker strata-replicator strata-admin strata; do
  [ -x "bin/$b" ] || die "bin/$b is missing: run make build"
done

# Images: FROM scratch, the context a small staging directory per image
# (the binary and its empty mount points), never the repository. The
# broker and the replicator also hold /run/strata, mode 0700: the mount
# point of the node's socket volume (node-N-sock), which takes its owner
# (65532, from the Dockerfile's COPY --chown) and mode when first mounted.
old_images=()
for svc in broker replicator admin; do
  old_images+=("$(docker image inspect --format '{{.Id}}' "strata/$svc:dev" 2>/dev/null || true)")
  stage=$out/build/$svc
  rm -rf "$stage"
  mkdir -p "$stage/rootfs/data" "$stage/rootfs/pki"
  if [ "$svc" != admin ]; then
    mkdir -p "$stage/rootfs/run/strata"
    chmod 700 "$stage/rootfs/run/strata"
  fi
  ln "bin/strata-$svc" "$stage/" 2>/dev/null || cp "bin/strata-$svc" "$stage/"
  say "docker build strata/$svc:dev"
  docker build --quiet --tag "strata/$svc:dev" --file "deployments/compose/Dockerfile.$svc" "$stage" >/dev/null
  rm -rf "$stage"
done
rmdir "$out/build"

say "$COMPOSE up -d"
if ! compose up -d --remove-orphans; then
  compose ps || true
  show_logs pki-init
  die "compose up failed"
fi

# Images the rebuild replaced, now that no container runs them.
for id in "${old_images[@]}"; do
  [ -z "$id" ] || [ -n "$(docker images --quiet --filter "reference=strata/*:dev" --no-trunc | grep -Fx "$id")" ] ||
    docker rmi "$id" >/dev/null 2>&1 || true
done

if ! wait_healthy "$wait_timeout" "${SERVICES[@]}"; then
  compose ps || true
  for s in "${SERVICES[@]}"; do
    [ "$(health "$s")" = healthy ] || show_logs "$s"
  done
  die "the cluster is not healthy after ${wait_timeout}s"
fi

# The operator's client certificate and the CA, out of the pki volume
# through the finished pki-init container (nothing can be pulled, so no
# helper image). Streamed as tar so the host user owns the copies.
mkdir -p "$pki_out"
chmod 700 "$pki_out"
for f in ca.pem operator.pem operator-key.pem; do
  (umask 077 && docker cp "strata-pki-init:/pki/$f" - | tar -xO >"$pki_out/$f.tmp")
  mv "$pki_out/$f.tmp" "$pki_out/$f"
done
chmod 600 "$pki_out/operator-key.pem"
chmod 644 "$pki_out/ca.pem" "$pki_out/operator.pem"

bin/strata context set compose --brokers 127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093 \
  --ca "$root/$pki_out/ca.pem" --cert "$root/$pki_out/operator.pem" --key "$root/$pki_out/operator-key.pem" \
  --admin https://127.0.0.1:9443
bin/strata context use compose

cat <<EOF

The cluster is up: brokers on 127.0.0.1:19091-19093, admin API on
https://127.0.0.1:9443, all mutual TLS. The CLI context "compose" uses the
operator certificate in $pki_out/.
Web console: https://127.0.0.1:9443/console/ (import the operator's identity
into your browser first: bin/strata cert export --p12 $pki_out/operator.p12; see README "Console"). Try:

  bin/strata cluster info
  bin/strata topic create demo --partitions 3 --replication-factor 3
  printf 'k1:hello\nk2:world\n' | bin/strata produce demo --key-delim : -v
  bin/strata consume demo --from earliest -n 2 --format '%p/%o %k=%s\n'
  curl --cacert $pki_out/ca.pem --cert $pki_out/operator.pem --key $pki_out/operator-key.pem https://127.0.0.1:9443/v1/acl/policy

$COMPOSE -p strata -f deployments/compose/docker-compose.yml ps|logs   to look around
make down            stop (data kept in the volumes)
make down-volumes    stop and wipe every volume and $out
EOF
