#!/usr/bin/env bash
# Fault test: a PostgreSQL outage under a running server. Creates a throwaway cluster on its
# own port (never touches the shared one), starts closeloop on it, stops the cluster and
# checks that requests get fast 503s (< 2 s, with Retry-After, and the survey page says the
# answer was NOT saved), then starts the cluster again and checks that the same server
# process recovers without a restart. Needs root (it runs initdb/pg_ctl as `postgres`).
# Usage: bash tests/faults/pg_outage.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ "$(id -u)" -eq 0 ] || { echo "FAIL: pg_outage.sh must run as root (it runs initdb as postgres)" >&2; exit 1; }
[ -x "$PGBIN/initdb" ] || { echo "FAIL: no $PGBIN/initdb" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
http_port=$(free_port)
work=$(mktemp -d /tmp/closeloop-pg-outage.XXXXXX)
chown postgres "$work"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
pg() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/data" -l "$work/pg.log" -w -t 30 "$@" >/dev/null; }

echo "== throwaway cluster on 127.0.0.1:$pg_port"
runuser -u postgres -- "$PGBIN/initdb" -D "$work/data" -A trust -U postgres >/dev/null
pg -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start

cargo build --quiet --locked --bin closeloop
BIN=${CARGO_TARGET_DIR:-target}/debug/closeloop
export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
"$BIN" migrate >/dev/null
key=$("$BIN" api-key create --name outage --role admin | tail -n 1)
RUST_LOG=warn BIND_ADDR=127.0.0.1:$http_port OUTBOX_DIR=$work/outbox "$BIN" >"$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$http_port"
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
api() { curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
sid=$(api -X POST "$base/api/v1/surveys" -d '{"kind":"nps","name":"outage","throttle_days":0}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
tokens=$(api -X POST "$base/api/v1/surveys/$sid/invitations" \
    -d '{"channel":"link","contacts":[{"email":"a@example.com"},{"email":"b@example.com"}]}' \
    | python3 -c 'import json,sys;[print(i["url"].rsplit("/",1)[1]) for i in json.load(sys.stdin)["items"]]')
t1=$(echo "$tokens" | sed -n 1p)
t2=$(echo "$tokens" | sed -n 2p)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d 'score=9&comment=before' "$base/s/$t1")
[ "$code" = 303 ] || { echo "FAIL: answer before the outage: $code" >&2; exit 1; }

echo "== stopping the cluster"
pg -m fast stop
fail=0
# name method path [body [content type]]: expects 503 in < 2 s with Retry-After (the
# readiness probe needs no Retry-After).
check_503() {
    local name=$1 method=$2 path=$3 body=${4:-} ctype=${5:-application/x-www-form-urlencoded}
    local args=(-s -D "$work/h" -o "$work/body" -w '%{http_code} %{time_total}\n' -X "$method" -H "Authorization: Bearer $key")
    if [ -n "$body" ]; then args+=(-H "Content-Type: $ctype" --data "$body"); fi
    read -r code secs < <(curl "${args[@]}" "$base$path")
    local retry; retry=$(grep -i '^retry-after:' "$work/h" | tr -d '\r' || true)
    printf '%-28s %s in %ss %s\n' "$name" "$code" "$secs" "${retry:-(no Retry-After)}"
    if [ "$code" != 503 ] || ! python3 -c "import sys; sys.exit(0 if float('$secs') < 2.0 else 1)"; then
        echo "FAIL: $name: wanted a 503 in < 2 s" >&2; fail=1
    elif [ -z "$retry" ] && [ "$path" != /readyz ]; then
        echo "FAIL: $name: no Retry-After" >&2; fail=1
    fi
}
for round in 1 2; do
    check_503 "API list ($round)" GET /api/v1/surveys
    check_503 "API create ($round)" POST /api/v1/contacts '{"email":"c@example.com"}' application/json
    check_503 "survey page ($round)" GET "/s/$t2"
    check_503 "survey answer ($round)" POST "/s/$t2" 'score=3&comment=during'
    if ! grep -q 'NOT been saved' "$work/body" || grep -q 'was lost' "$work/body"; then
        echo "FAIL: the answer page does not say plainly that the answer was not saved" >&2; fail=1
    fi
    check_503 "readyz ($round)" GET /readyz
done
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz")
[ "$code" = 200 ] || { echo "FAIL: /healthz during the outage: $code" >&2; fail=1; }

echo "== starting the cluster again"
pg -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start
recovered=""
for i in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ]; then recovered=$i; break; fi
    sleep 0.1
done
[ -n "$recovered" ] || { echo "FAIL: /readyz not 200 within 10 s of the restart" >&2; exit 1; }
echo "ready again within $((recovered * 100)) ms of the restart"
kill -0 "$server_pid" || { echo "FAIL: the server process died" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d 'score=3&comment=after' "$base/s/$t2")
[ "$code" = 303 ] || { echo "FAIL: answer after the outage: $code" >&2; fail=1; }
stored=$(api "$base/api/v1/responses?survey_id=$sid" | python3 -c 'import json,sys;print(len(json.load(sys.stdin)["items"]))')
[ "$stored" = 2 ] || { echo "FAIL: $stored responses stored, wanted 2" >&2; fail=1; }
[ "$fail" = 0 ] || exit 1
echo "PASS: fast 503s during the outage, recovery without a restart (same process, $stored answers stored)"
