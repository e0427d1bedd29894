#!/usr/bin/env bash
# make e2e: the newcomer test. Clones the repository's HEAD commit into a
# temporary folder, runs the README's quick start there (`make run`, in the
# background, on free ports chosen here through its environment overrides),
# then runs the README's API examples -- the ```sh blocks between
# <!-- e2e:begin NAME --> and <!-- e2e:end --> -- and checks their answers:
# register, verify at central and at the edge (once synced), identify, the
# user admin endpoints, delete, the edge's purge and central's receipt.
# Finally it stops `make run` with SIGTERM and checks that no process of
# the clone is left.
#
# Only committed work is tested (a clone of HEAD). To save time the clone
# uses this checkout's model cache (MODELS_DIR, verified by `make models`
# in the clone as usual) and the machine's Go build cache.
#
# Needs git, curl and jq. E2E_KEEP=1 keeps the temporary folder.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

fail() { printf '\ne2e: FAIL: %s\n' "$*" >&2; exit 1; }
step() { printf 'e2e: %s\n' "$*"; }

for c in git curl jq go make setsid pgrep; do
  command -v "$c" >/dev/null || fail "$c is missing (apt-get install git curl jq make util-linux procps)"
done
MODELS_DIR=$(cd "${MODELS_DIR:-$repo/models/cache}" && pwd) || fail "no model cache: run \`make models-testdata\`"
for s in sample1 sample2 sample3 sample4 sample5 sample6; do
  [ -f "$MODELS_DIR/testdata/$s.jpg" ] || fail "$MODELS_DIR/testdata/$s.jpg is missing: run \`make models-testdata\`"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/faceauth-e2e.XXXXXX")
clone=$work/repo
run_pid=

# leftovers lists the processes running from the clone: by command line
# (run.sh starts the binaries by absolute path) and by working directory.
leftovers() {
  local pids p
  pids=$(pgrep -f -- "$work" || true)
  for p in /proc/[0-9]*; do
    case $(readlink "$p/cwd" 2>/dev/null) in "$work"*) pids="$pids ${p#/proc/}" ;; esac
  done
  for p in $pids; do
    [ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && kill -0 "$p" 2>/dev/null && echo "$p"
  done | sort -un
}

# shutdown stops `make run` with SIGTERM (make passes it on to run.sh,
# which stops central and the edge) and checks nothing is left.
shutdown() {
  local t=0 left
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    step "stopping make run (SIGTERM to pid $run_pid)"
    kill -TERM "$run_pid"
    while kill -0 "$run_pid" 2>/dev/null && [ $t -lt 600 ]; do sleep 0.1; t=$((t + 1)); done
    kill -0 "$run_pid" 2>/dev/null && { echo "e2e: make run did not stop within 60s" >&2; return 1; }
  fi
  [ -z "$run_pid" ] || wait "$run_pid" 2>/dev/null || true
  run_pid=
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "e2e: processes of the clone are still running after make run stopped:" >&2
    ps -o pid,args -p "$(echo $left | tr ' ' ,)" >&2 || true
    # They are this test's own processes: do not leave them behind.
    kill -KILL $left 2>/dev/null || true
    return 1
  fi
  return 0
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if ! shutdown; then rc=1; fi
  if [ $rc -ne 0 ] && [ -f "$work/run.log" ]; then
    echo "--- end of make run's output ($work/run.log):" >&2
    tail -n 15 "$work/run.log" >&2
    for l in central edge; do
      [ -f "$clone/data/logs/$l.log" ] && { echo "--- end of $l.log:" >&2; tail -n 15 "$clone/data/logs/$l.log" >&2; }
    done
  fi
  if [ -n "${E2E_KEEP:-}" ] || [ $rc -ne 0 ]; then
    echo "e2e: kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- 1. clone HEAD ---------------------------------------------------------
head=$(git -C "$repo" rev-parse HEAD)
step "cloning $repo at ${head:0:12} into $work"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  step "note: the working tree has uncommitted changes; they are not tested"
fi
git clone -q "$repo" "$clone"
git -C "$clone" checkout -q --detach "$head"

# --- 2. make run on free ports --------------------------------------------
# free_port prints a port nothing listens on (checked by connecting).
taken=" "
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    case $taken in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      taken="$taken$p "
      echo "$p"
      return 0
    fi
  done
  fail "no free port found"
}
central_port=$(free_port); taken="$taken$central_port "
edge_port=$(free_port); taken="$taken$edge_port "
nats_port=$(free_port)

step "make run in the clone: central :$central_port, edge :$edge_port, NATS :$nats_port, MODELS_DIR=$MODELS_DIR (log $work/run.log)"
(
  cd "$clone"
  # A newcomer's shell: no make state from the outer `make e2e`.
  unset MAKEFLAGS MAKELEVEL MFLAGS NATS_URL
  export LISTEN_ADDR=127.0.0.1:$central_port EDGE_LISTEN_ADDR=127.0.0.1:$edge_port \
    NATS_LISTEN=127.0.0.1:$nats_port MODELS_DIR
  # Its own session, so that only the SIGTERM below stops it.
  exec setsid make run >"$work/run.log" 2>&1
) &
run_pid=$!

deadline=$((SECONDS + ${E2E_READY_TIMEOUT:-900}))
until grep -q '^Xplore Face Auth is running' "$work/run.log" 2>/dev/null; do
  kill -0 "$run_pid" 2>/dev/null || fail "make run exited before both services were ready"
  [ $SECONDS -lt $deadline ] || fail "make run did not get ready within ${E2E_READY_TIMEOUT:-900}s"
  sleep 1
done
step "make run is ready (after ${SECONDS}s)"

# --- 3. the README's examples ---------------------------------------------
blocks=$work/blocks
mkdir -p "$blocks"
awk -v dir="$blocks" '
  /^<!-- e2e:begin [A-Za-z0-9_-]+ -->$/ { name = $3; n++; next }
  /^<!-- e2e:end -->$/                  { name = ""; next }
  name != "" && /^```sh$/               { file = dir "/" name ".sh"; inblock = 1; next }
  inblock && /^```$/                    { inblock = 0; next }
  inblock                               { print > file }
' "$clone/README.md"

# The photos: single faces cut from the pinned sample group photos (the
# examples need one face per photo); person1 is "alice", person2 "bob".
step "cutting single-face photos from the sample photos"
(cd "$clone" && go run ./scripts/facecrop -models-dir "$MODELS_DIR" -out "$work" -n 2 "$MODELS_DIR"/testdata/sample{1,2,3,4,5,6}.jpg) >/dev/null

export CENTRAL=http://127.0.0.1:$central_port EDGE=http://127.0.0.1:$edge_port
export PHOTO_A=$work/person1.jpg PHOTO_A2=$work/person1-wide.jpg PHOTO_B=$work/person2.jpg
export TOKEN= VERIFY_TOKEN= IMAGE_ID=

# The status of every curl goes to stderr as "HTTP nnn".
curl() { command curl --write-out '%{stderr}HTTP %{http_code}\n' "$@"; }
export -f curl

used=" "
body= status=
# example NAME runs a README block in the clone: its stdout becomes $body,
# the status of its last request $status, and the variables it sets
# (TOKEN, VERIFY_TOKEN, IMAGE_ID) are taken over.
example() {
  local name=$1 f=$blocks/$1.sh
  [ -f "$f" ] || fail "README.md has no example block \"$name\" (<!-- e2e:begin $name -->)"
  used="$used$name "
  if ! (cd "$clone" && bash -c '
      set -euo pipefail
      source "$1"
      for v in TOKEN VERIFY_TOKEN IMAGE_ID; do printf "%s=%q\n" "$v" "${!v:-}"; done >"$2"
    ' _ "$f" "$work/vars") >"$work/out" 2>"$work/err"; then
    fail "example \"$name\" failed: $(cat "$work/err")"
  fi
  # shellcheck disable=SC1091
  source "$work/vars"
  export TOKEN VERIFY_TOKEN IMAGE_ID
  body=$(cat "$work/out")
  status=$(grep -E '^HTTP [0-9]{3}$' "$work/err" | tail -n 1 | cut -d' ' -f2 || true)
}

# expect NAME STATUS JQ runs example NAME and checks its status and that
# the jq expression is true of its answer.
expect() {
  local name=$1 want=$2 check=$3
  example "$name"
  [ "$status" = "$want" ] || fail "example \"$name\": status $status, want $want; answer: $body"
  if [ -n "$check" ] && ! jq -e "$check" >/dev/null 2>&1 <<<"$body"; then
    fail "example \"$name\": answer does not satisfy $check: $body"
  fi
  step "ok  $name -> $status"
}

# eventually NAME STATUS JQ retries expect until it holds (for the edge,
# which follows central asynchronously), up to 60 s.
eventually() {
  local name=$1 want=$2 check=$3 deadline=$((SECONDS + 60))
  while :; do
    example "$name"
    if [ "$status" = "$want" ] && { [ -z "$check" ] || jq -e "$check" >/dev/null 2>&1 <<<"$body"; }; then
      step "ok  $name -> $status"
      return 0
    fi
    [ $SECONDS -lt $deadline ] || fail "example \"$name\": still status $status after 60s, want $want with $check; answer: $body"
    sleep 0.5
  done
}

expect healthz 200 '.status == "ok"'
expect readyz 200 '.status == "ready"'
expect openapi 200 '.openapi | startswith("3.")'
example metrics
[ "$status" = 200 ] && grep -q '^# TYPE faceauth_central_' <<<"$body" || fail "example \"metrics\": status $status, no faceauth_central_ metrics"
step "ok  metrics -> 200"
example token
[[ $TOKEN == fa1.* ]] || fail "example \"token\" did not set TOKEN to a token: ${TOKEN:0:40}"
[[ $VERIFY_TOKEN == fa1.* ]] || fail "example \"token\" did not set VERIFY_TOKEN to a token"
step "ok  token (admin and verify tokens)"

expect register 201 '.user_id == "alice" and .created == true and .references == 1'
expect register-bob 201 '.user_id == "bob" and .created == true'
expect verify 200 '.verified == true and .user_id == "alice"'
expect verify-other 200 '.verified == false'
expect identify 200 '.matches[0].user_id == "alice"'
eventually edge-readyz 200 '.synced == true and .users == 2'
eventually edge-verify 200 '.verified == true and .user_id == "alice"'
expect edge-identify 200 '.matches[0].user_id == "alice"'
eventually edges 200 '[.edges[] | select(.id == "local-edge" and .state == "in_sync")] | length == 1'
example admin-cli
grep -q '^bob ' <<<"$body" && grep -q '^local-edge ' <<<"$body" || fail "example \"admin-cli\" does not list bob and local-edge: $body"
step "ok  admin-cli (central users list, central edges)"

expect users-list 200 '[.users[].user_id] == ["alice", "bob"]'
expect add-image 201 '.references == 2 and .created == false'
expect user-show 200 '.user_id == "alice" and (.images | length) == 2'
[ -n "$IMAGE_ID" ] || fail "example \"user-show\" did not set IMAGE_ID"
expect delete-image 200 '.user_id == "alice" and .references == 1'

expect delete-user 200 '.deleted == true and .user_id == "alice"'
eventually edge-verify 404 '.code == "user_not_found"'
eventually deletions 200 '[.deletions[] | select(.user_id == "alice" and any((.purged // [])[]; . == "local-edge"))] | length == 1'

for f in "$blocks"/*.sh; do
  name=$(basename "$f" .sh)
  case $used in *" $name "*) ;; *) fail "README.md example \"$name\" is marked for e2e but not checked here" ;; esac
done

# --- 4. stop --------------------------------------------------------------
shutdown || fail "make run did not stop cleanly"
grep -q '^stopped' "$work/run.log" || fail "run.sh did not report a clean stop"
step "PASS: the README's quick start and examples work on a fresh clone of ${head:0:12}"
