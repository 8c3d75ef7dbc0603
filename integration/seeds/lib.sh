# Shared helpers for the seed runbooks (integration/seeds/seed-*.sh).
# Sourced, not run. Everything binds 127.0.0.1, every wait is bounded, and
# every process started here is killed by its PID when the script exits.
#
#   TLSGATE   the tlsgate binary (default: <repo>/target/debug/tlsgate)
#   KEEP_TMP  set to 1 to keep the temporary folder (logs, certificates)

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TLSGATE="${TLSGATE:-$ROOT/target/debug/tlsgate}"
case "$TLSGATE" in /*) ;; *) TLSGATE="$PWD/$TLSGATE" ;; esac
if [ ! -x "$TLSGATE" ]; then
    echo "FATAL: tlsgate binary not found at $TLSGATE (build it: cargo build -p tlsgate, or set TLSGATE)" >&2
    exit 2
fi
command -v curl >/dev/null || { echo "FATAL: curl is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "FATAL: python3 is required" >&2; exit 2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tlsgate-seed.XXXXXX")"
PIDS=()
FAILS=0
PASSES=0
BLOCKED=()

cleanup() {
    local rc=$?
    local pid
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "(files kept in $TMP)"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
pass() { PASSES=$((PASSES + 1)); echo "PASS: $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
# A step that cannot pass until another part of tlsgate exists: a failure,
# reported again in the summary.
blocked() { fail "$*"; BLOCKED+=("$*"); }

# Ends the script: a summary, then exit 0 only if no step failed.
finish() {
    echo
    if [ "${#BLOCKED[@]}" -gt 0 ]; then
        echo "BLOCKED (waiting for a tlsgate feature):"
        printf '  - %s\n' "${BLOCKED[@]}"
    fi
    if [ "$FAILS" -eq 0 ]; then
        echo "RESULT: PASS ($PASSES steps)"
        exit 0
    fi
    echo "RESULT: FAIL ($FAILS of $((PASSES + FAILS)) steps failed)"
    exit 1
}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# tlsgate with a bound run time (60 s), for `certs` and `check`.
tg() { timeout 60 "$TLSGATE" "$@"; }

# subst FILE FROM=TO...: replace whole numbers / literal words in FILE in place.
subst() {
    local file=$1; shift
    local pair from to
    for pair in "$@"; do
        from=${pair%%=*}
        to=${pair#*=}
        sed -i -e "s#\\b${from}\\b#${to}#g" "$file"
    done
}

# wait_port PORT SECONDS: until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
    local port=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_backend NAME DIR: python3 -m http.server on 127.0.0.1:<free>, serving
# DIR. Sets BACKEND_PORT.
start_backend() {
    local name=$1 dir=$2
    BACKEND_PORT=$(free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$dir" "$BACKEND_PORT" \
        >"$TMP/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    if ! wait_port "$BACKEND_PORT" 10; then
        echo "FATAL: backend $name did not listen on 127.0.0.1:$BACKEND_PORT"
        cat "$TMP/$name.log"
        exit 1
    fi
    echo "backend $name: http://127.0.0.1:$BACKEND_PORT (pid $pid, serving $dir)"
}

# start_gateway NAME ADMIN_PORT ARGS...: `tlsgate run --admin 127.0.0.1:ADMIN ARGS`,
# logs in $TMP/NAME.log, then wait (20 s at most) for /healthz/ready.
# Sets GW_PID; returns non-zero (after printing the log) if it never got ready.
start_gateway() {
    local name=$1 admin=$2; shift 2
    "$TLSGATE" run --admin "127.0.0.1:$admin" "$@" >>"$TMP/$name.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    echo "tlsgate $name: pid $GW_PID, admin http://127.0.0.1:$admin, log $TMP/$name.log"
    wait_ready "$name" "$admin" "$GW_PID" 20
}

# wait_ready NAME ADMIN_PORT PID SECONDS
wait_ready() {
    local name=$1 admin=$2 pid=$3 secs=$4 i code
    for ((i = 0; i < secs * 10; i++)); do
        if ! alive "$pid"; then
            echo "tlsgate $name (pid $pid) exited before it was ready:"
            tail -n 40 "$TMP/$name.log"
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$admin/healthz/ready" 2>/dev/null)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "tlsgate $name not ready after ${secs}s (last /healthz/ready: $code):"
    tail -n 40 "$TMP/$name.log"
    return 1
}

# alive PID: the process runs (an exited, unreaped child is a zombie: not alive).
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# stop_pid PID: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
    return 0
}

# forget_pid PID: a reaped child is not killed again at exit.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && [ "$p" != "$1" ] && keep+=("$p")
    done
    PIDS=("${keep[@]:-}")
}

# run_curl ARGS...: curl -sS --max-time 5 ARGS, setting
#   CURL_RC (exit code), CURL_CODE (HTTP status, 000 without a response),
#   CURL_BODY (file), CURL_ERR (file: stderr, with -v output when asked).
run_curl() {
    CURL_BODY="$TMP/curl.body"
    CURL_ERR="$TMP/curl.err"
    printf '  $ curl'
    printf ' %q' "$@"
    echo
    CURL_CODE=$(curl -sS --max-time 5 -o "$CURL_BODY" -w '%{http_code}' "$@" 2>"$CURL_ERR")
    CURL_RC=$?
    [ -n "$CURL_CODE" ] || CURL_CODE=000
}

curl_detail() {
    echo "    curl exit $CURL_RC, HTTP $CURL_CODE"
    grep -v '^[*<>{}]' "$CURL_ERR" | sed 's/^/    stderr: /' | tail -n 5
    head -c 300 "$CURL_BODY" | sed 's/^/    body: /'
    echo
}

# expect_status DESC CODE ARGS...: curl succeeds with HTTP CODE.
expect_status() {
    local desc=$1 want=$2; shift 2
    run_curl "$@"
    if [ "$CURL_RC" -eq 0 ] && [ "$CURL_CODE" = "$want" ]; then
        pass "$desc (HTTP $CURL_CODE)"
        return 0
    fi
    fail "$desc: expected HTTP $want"
    curl_detail
    return 1
}

# expect_refused DESC PATTERN ARGS...: curl fails (non-zero exit, no HTTP
# 200); when PATTERN is not empty, curl's stderr must match it (grep -E).
expect_refused() {
    local desc=$1 pattern=$2; shift 2
    run_curl "$@"
    if [ "$CURL_RC" -ne 0 ] && [ "$CURL_CODE" != 200 ]; then
        if [ -z "$pattern" ] || grep -Eq "$pattern" "$CURL_ERR"; then
            pass "$desc (curl exit $CURL_RC: $(grep -E '^curl: ' "$CURL_ERR" | head -n 1))"
            return 0
        fi
        fail "$desc: refused, but curl's error does not match /$pattern/"
    else
        fail "$desc: expected a refusal"
    fi
    curl_detail
    return 1
}

# body_contains DESC TEXT: the last curl's body holds TEXT.
body_contains() {
    if grep -qF -- "$2" "$CURL_BODY"; then
        pass "$1"
    else
        fail "$1: '$2' not in the body"
        curl_detail
    fi
}

# err_contains DESC REGEX: the last curl's stderr (-v) matches REGEX.
err_contains() {
    if grep -Eq -- "$2" "$CURL_ERR"; then
        pass "$1"
    else
        fail "$1: /$2/ not in curl's output"
        curl_detail
    fi
}

# check_config DESC ARGS...: `tlsgate check ARGS` exits 0.
check_config() {
    local desc=$1; shift
    local out="$TMP/check.out"
    if tg check "$@" >"$out" 2>&1; then
        pass "$desc"
    else
        fail "$desc"
        sed 's/^/    /' "$out"
    fi
}

# secret_volume DIR: turn credential folder DIR into the layout of a mounted
# Kubernetes Secret: the files live in a timestamped folder, `..data` points
# to it, and each name is a symlink through `..data`.
secret_volume() {
    local dir=$1 stamp f
    stamp="..$(date +%Y_%m_%d_%H_%M_%S).$RANDOM"
    mkdir "$dir/$stamp"
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        mv "$f" "$dir/$stamp/"
    done
    ln -s "$stamp" "$dir/..data"
    for f in "$dir/$stamp"/*; do
        ln -s "..data/$(basename "$f")" "$dir/$(basename "$f")"
    done
}

# secret_update DIR KEY=FILE...: what the kubelet does when the Secret
# changes (`oc replace secret`): write a new timestamped folder with the old
# keys and the new values, then swap `..data` atomically with rename(2).
secret_update() {
    local dir=$1; shift
    local old new pair key src f
    old=$(readlink "$dir/..data")
    new="..$(date +%Y_%m_%d_%H_%M_%S).$RANDOM"
    mkdir "$dir/$new"
    cp -p "$dir/$old"/* "$dir/$new/"
    for pair in "$@"; do
        key=${pair%%=*}
        src=${pair#*=}
        cp "$src" "$dir/$new/$key"
        [ -L "$dir/$key" ] || ln -s "..data/$key" "$dir/$key"
    done
    ln -s "$new" "$dir/..data_tmp"
    mv -T "$dir/..data_tmp" "$dir/..data"
    rm -rf "${dir:?}/$old"
}
