#!/usr/bin/env bash
# make e2e: the newcomer test. Clones the repository's HEAD commit into a
# temporary folder, runs the README's quick start there (`make run`, in the
# background, on the README's own ports 5000, 5001 and 4222, which must be
# free), then runs every block of README.md marked
#   <!-- e2e:begin NAME [eventually] -->  ```sh ... ```  [``` answer ```]  <!-- e2e:end -->
# in README order, exactly as written (each in bash from the clone's root,
# with the variables the blocks before it set), and compares what it
# prints with the answer the README prints under it: a first line with the
# HTTP status of the block's last curl, then the output, where "..." stands
# for any text. A block without an answer must print nothing. Blocks
# marked "eventually" (the edge follows central asynchronously) are rerun
# until they give the answer, for up to a minute. Any other difference
# fails. Finally it stops `make run` with SIGTERM and checks that no
# process of the clone is left.
#
# Only committed work is tested (a clone of HEAD). To save time the clone
# uses this checkout's model cache (MODELS_DIR, verified by `make models`
# in the clone as usual) and the machine's Go build cache.
#
# Needs git, curl and jq. E2E_KEEP=1 keeps the temporary folder;
# E2E_SHOW=1 prints every block's actual answer.
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

# pattern turns an answer into a bash pattern: "..." matches any text, the
# rest itself.
pattern() {
  local s=$1 out= part
  while [[ $s == *...* ]]; do
    part=${s%%...*}
    out+=$(glob_escape "$part"; printf x); out=${out%x}'*'
    s=${s#*...}
  done
  out+=$(glob_escape "$s"; printf x); out=${out%x}
  printf '%s' "$out"
}
glob_escape() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\*/\\*}; s=${s//\?/\\?}; s=${s//\[/\\[}; s=${s//\]/\\]}
  printf '%s' "$s"
}

# --- 2. make run on the README's ports ------------------------------------
for port in 5000 5001 4222; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is in use (another make run?): the README's examples use 5000, 5001 and 4222"
  fi
done
step "make run in the clone, MODELS_DIR=$MODELS_DIR (log $work/run.log)"
(
  cd "$clone"
  # A newcomer's shell: no make state from the outer `make e2e`, none of
  # the overrides of the README's defaults.
  unset MAKEFLAGS MAKELEVEL MFLAGS NATS_URL LISTEN_ADDR EDGE_LISTEN_ADDR NATS_LISTEN CENTRAL_DATA EDGE_DATA EDGE_ID LOG_DIR
  export MODELS_DIR
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

# What README.md says `make run` prints (the fenced block after
# <!-- e2e:make-run -->) must be in its output, "..." standing for any text.
printed=$(awk '/^<!-- e2e:make-run -->$/ { on = 1; next } on && /^```$/ { if (inb) exit; inb = 1; next } inb { print }' "$clone/README.md")
[ -n "$printed" ] || fail "README.md has no <!-- e2e:make-run --> block with what make run prints"
ran=$(cat "$work/run.log")
want_pat='*'$'\n'"$(pattern "$printed"; printf x)"; want_pat=${want_pat%x}'*'
# shellcheck disable=SC2053
[[ $'\n'$ran == $want_pat ]] || fail "make run printed"$'\n'"$ran"$'\n'"but README.md says it prints"$'\n'"$printed"
step "ok  make run printed what README.md shows"

# --- 3. the README's examples, in order -----------------------------------
unset MAKEFLAGS MAKELEVEL MFLAGS NATS_URL LISTEN_ADDR EDGE_LISTEN_ADDR NATS_LISTEN
blocks=$work/blocks
mkdir -p "$blocks"
awk -v dir="$blocks" '
  match($0, /^<!-- e2e:begin [A-Za-z0-9_-]+( eventually)? -->$/) {
    n++; split($0, w, " "); base = sprintf("%s/%02d-%s", dir, n, w[3])
    printf "" > (base ".sh")
    if (w[4] == "eventually") printf "" > (base ".eventually")
    region = 1; part = 0; next
  }
  /^<!-- e2e:end -->$/ { region = 0; next }
  region && part == 0 && /^```sh$/ { part = 1; next }
  region && part == 1 && /^```$/   { part = 2; next }
  region && part == 2 && /^```$/   { part = 3; printf "" > (base ".answer"); next }
  region && part == 3 && /^```$/   { part = 4; next }
  region && part == 1 { print > (base ".sh"); next }
  region && part == 3 { print > (base ".answer"); next }
' "$clone/README.md"
ls "$blocks"/*.sh >/dev/null 2>&1 || fail "README.md has no block marked e2e:begin"

# The status of every curl goes to stderr as "HTTP nnn".
curl() { command curl --write-out '%{stderr}HTTP %{http_code}\n' "$@"; }
export -f curl

# run_block FILE runs one block in the clone with the variables of the
# blocks before it, and sets $got: the status of its last curl (if any) on
# the first line, then its output.
state=$work/state
: >"$state"
run_block() {
  local f=$1 status
  if ! (cd "$clone" && bash -c '
      set -euo pipefail
      source "$1"
      set -a
      source "$2"
      set +a
      export -p | grep -v "^declare -[a-z]*r" >"$1.new"
    ' _ "$state" "$f") >"$work/out" 2>"$work/err"; then
    got=
    return 1
  fi
  mv "$state.new" "$state"
  got=$(cat "$work/out"; printf x); got=${got%x}
  got=${got%$'\n'}
  status=$(grep -E '^HTTP [0-9]{3}$' "$work/err" | tail -n 1 | cut -d' ' -f2 || true)
  [ -z "$status" ] || got="$status"$'\n'"$got"
  got=${got%$'\n'}
  return 0
}

passed=0
for f in "$blocks"/*.sh; do
  base=${f%.sh}; name=${base##*/}; name=${name#*-}
  want=
  [ -f "$base.answer" ] && { want=$(cat "$base.answer"; printf x); want=${want%x}; want=${want%$'\n'}; }
  pat=$(pattern "$want"; printf x); pat=${pat%x}
  deadline=$((SECONDS + 60))
  while :; do
    if ! run_block "$f"; then
      fail "example \"$name\" failed:"$'\n'"$(cat "$work/err")"
    fi
    # shellcheck disable=SC2053
    [[ $got == $pat ]] && break
    if [ -f "$base.eventually" ] && [ $SECONDS -lt $deadline ]; then
      sleep 0.5
      continue
    fi
    fail "example \"$name\" answered"$'\n'"$got"$'\n'"but README.md prints"$'\n'"$want"
  done
  [ -z "${E2E_SHOW:-}" ] || printf -- '--- %s\n%s\n' "$name" "$got"
  step "ok  $name"
  passed=$((passed + 1))
done
step "$passed README examples gave the printed answers"

# --- 4. stop --------------------------------------------------------------
shutdown || fail "make run did not stop cleanly"
grep -q '^stopped' "$work/run.log" || fail "run.sh did not report a clean stop"
step "PASS: the README's quick start and examples work on a fresh clone of ${head:0:12}"
