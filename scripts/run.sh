#!/usr/bin/env bash
# make run: the whole system on this machine, in the foreground. Starts
# `central serve` (local store, embedded NATS) and one edge (`edged run`),
# waits until both are ready, prints where they are, and stops both
# cleanly on Ctrl-C or SIGTERM. `make run` builds and fetches the models
# first; run this script directly only after that.
#
# Overrides (environment):
#   LISTEN_ADDR       central's HTTP address       (127.0.0.1:5000)
#   EDGE_LISTEN_ADDR  the edge's HTTP address      (127.0.0.1:5001)
#   NATS_LISTEN       the embedded NATS address    (127.0.0.1:4222)
#   CENTRAL_DATA      central's data folder        (data/central)
#   EDGE_DATA         the edge's data folder       (data/edge)
#   EDGE_ID           the edge's id                (local-edge)
#   LOG_DIR           where the two logs go        (data/logs)
#   MODELS_DIR        the fetched model files      (models/cache)
#   READY_TIMEOUT     seconds to wait for each     (180)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1:5000}
EDGE_LISTEN_ADDR=${EDGE_LISTEN_ADDR:-127.0.0.1:5001}
NATS_LISTEN=${NATS_LISTEN:-127.0.0.1:4222}
CENTRAL_DATA=${CENTRAL_DATA:-data/central}
EDGE_DATA=${EDGE_DATA:-data/edge}
EDGE_ID=${EDGE_ID:-local-edge}
LOG_DIR=${LOG_DIR:-data/logs}
MODELS_DIR=${MODELS_DIR:-models/cache}
READY_TIMEOUT=${READY_TIMEOUT:-180}
export MODELS_DIR

say() { printf '%s\n' "$*"; }
die() { printf 'run: %s\n' "$*" >&2; exit 1; }

for b in bin/central bin/edged; do
  [ -x "$b" ] || die "$b is missing: run \`make run\` (it builds first)"
done
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
mkdir -p "$CENTRAL_DATA" "$EDGE_DATA" "$LOG_DIR"

central_pid= edge_pid=

# stop sends SIGTERM to a process and waits for it, SIGKILL after $2 s.
stop() {
  local pid=$1 grace=$2 name=$3 t=0
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $t -lt $((grace * 10)) ]; do
      sleep 0.1
      t=$((t + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name did not stop within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  trap - INT TERM EXIT
  say ""
  say "stopping..."
  # The edge first, so that it does not log central's absence.
  stop "$edge_pid" 20 edged
  stop "$central_pid" 40 central
  say "stopped. Logs: $LOG_DIR/central.log, $LOG_DIR/edge.log"
}
# A requested stop is a clean exit.
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# wait_ready polls URL until it answers 200, while the process lives.
wait_ready() {
  local url=$1 pid=$2 name=$3 log=$4 deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited before it was ready; the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; then
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "$name is not ready after ${READY_TIMEOUT}s ($url says: $(curl -sS --max-time 5 "$url" 2>&1 || true)); the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# NATS_URL, when set, names an external NATS server for both; otherwise
# central embeds one on NATS_LISTEN and the edge connects to it.
nats_url=${NATS_URL:-nats://$NATS_LISTEN}

say "starting central on http://$LISTEN_ADDR (data $CENTRAL_DATA, log $LOG_DIR/central.log)"
"$root/bin/central" serve --listen "$LISTEN_ADDR" --data "$CENTRAL_DATA" --models-dir "$MODELS_DIR" \
  --nats-listen "$NATS_LISTEN" --nats-local-edges "$EDGE_ID" >>"$LOG_DIR/central.log" 2>&1 &
central_pid=$!
wait_ready "http://$LISTEN_ADDR/readyz" "$central_pid" central "$LOG_DIR/central.log"

# The edge trusts only changes signed by central's feed key, provisioned
# here; on the embedded NATS it signs in with the NKey seed central
# generated for it in its data folder (mode 0600). An external NATS_URL
# takes the edge's own NATS_NKEY_SEED/NATS_CREDS from the environment.
edge_auth=(--feed-public-key "$("$root/bin/central" feed-key --data "$CENTRAL_DATA")")
if [ -z "${NATS_URL:-}" ]; then
  edge_auth+=(--nats-nkey "$CENTRAL_DATA/nats-auth/$EDGE_ID.nk")
fi

say "starting edge $EDGE_ID on http://$EDGE_LISTEN_ADDR (data $EDGE_DATA, log $LOG_DIR/edge.log)"
"$root/bin/edged" run --listen "$EDGE_LISTEN_ADDR" --data "$EDGE_DATA" --edge-id "$EDGE_ID" \
  --models-dir "$MODELS_DIR" --nats-url "$nats_url" "${edge_auth[@]}" >>"$LOG_DIR/edge.log" 2>&1 &
edge_pid=$!
wait_ready "http://$EDGE_LISTEN_ADDR/readyz" "$edge_pid" edged "$LOG_DIR/edge.log"

cat <<EOF

Xplore Face Auth is running.
  central  http://$LISTEN_ADDR   (API, /readyz, /metrics, /api/openapi.json)
  edge     http://$EDGE_LISTEN_ADDR   (edge id $EDGE_ID: /api/verify, /api/identify, /readyz)
  NATS     $nats_url
  logs     $LOG_DIR/central.log, $LOG_DIR/edge.log

Get an admin token (in another terminal, from $(pwd)):
  TOKEN=\$(bin/central token create --role admin --data $CENTRAL_DATA)
then try the API examples in README.md. Ctrl-C stops both.
EOF

# Stay in the foreground until a signal or until either process exits.
while kill -0 "$central_pid" 2>/dev/null && kill -0 "$edge_pid" 2>/dev/null; do
  wait -n "$central_pid" "$edge_pid" 2>/dev/null || true
done
for p in central:"$central_pid":central.log edged:"$edge_pid":edge.log; do
  IFS=: read -r name pid log <<<"$p"
  if ! kill -0 "$pid" 2>/dev/null; then
    say "$name exited on its own; the end of $LOG_DIR/$log:" >&2
    tail -n 20 "$LOG_DIR/$log" >&2
  fi
done
exit 1
