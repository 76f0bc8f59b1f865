#!/usr/bin/env bash
# Benchmark: recorded answers per second for POST /s/{token} at 64 connections (wrk), on
# SQLite and on PostgreSQL, beside a trivial actix-web handler measured in the same run.
# Usage: bash benches/answers.sh   (needs wrk: apt-get install wrk; PostgreSQL on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
TOKENS_N=${TOKENS_N:-40000}
PG_ADMIN=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --quiet --bin closeloop --example ceiling
BIN=target/release/closeloop
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18090

wait_ready() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/$2" >/dev/null && return 0; sleep 0.1; done; return 1; }

run_engine() {
  local name=$1 url=$2
  export DATABASE_URL=$url
  $BIN migrate >/dev/null
  local key; key=$($BIN api-key create --name bench --role admin | tail -n 1)
  # WEBHOOK_ALLOW_PRIVATE: webhook receivers of a benchmark listen on 127.0.0.1.
  RUST_LOG=warn WEBHOOK_ALLOW_PRIVATE=true BIND_ADDR=127.0.0.1:$port OUTBOX_DIR=$work/outbox $BIN > "$work/$name.log" 2>&1 &
  local pid=$!
  wait_ready $port readyz
  local survey
  survey=$(curl -s -X POST "http://127.0.0.1:$port/api/v1/surveys" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"kind":"nps","name":"bench","throttle_days":0}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  : > "$work/tokens-$name"
  python3 - "$port" "$key" "$survey" "$TOKENS_N" >> "$work/tokens-$name" <<'PY'
import json, sys, urllib.request
port, key, survey, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for b in range(n // 1000):
    body = json.dumps({"channel": "link", "contacts": [{"email": f"p{b}-{i}@example.com"} for i in range(1000)]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/surveys/{survey}/invitations", data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    for item in json.load(urllib.request.urlopen(req))["items"]:
        print(item["url"].rsplit("/", 1)[1])
PY
  echo "== $name: $(wc -l < "$work/tokens-$name") tokens; wrk -t2 -c$CONNS -d$DURATION"
  TOKENS="$work/tokens-$name" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s benches/answers.lua "http://127.0.0.1:$port" | tee "$work/wrk-$name.txt"
  local recorded followups
  recorded=$(curl -s "http://127.0.0.1:$port/api/v1/reports?kind=nps&from=2000-01-01T00:00:00Z&interval=month" -H "Authorization: Bearer $key" | python3 -c 'import json,sys;print(json.load(sys.stdin)["responses"])')
  followups=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c 'route="/s/{token}",status="303"' || true)
  echo "$name: responses stored: $recorded (distinct invitations answered; re-answers update in place)"
  echo "$name: server peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MB"}')"
  grep -E 'non-2xx|Socket errors' "$work/wrk-$name.txt" || echo "$name: no socket errors"
  kill $pid; wait $pid 2>/dev/null || true
}

run_engine sqlite "sqlite://$work/bench.db"
dbname=closeloop_bench_answers_$$
psql "$PG_ADMIN" -qc "CREATE DATABASE $dbname" 
run_engine postgres "${PG_ADMIN%/*}/$dbname"
psql "$PG_ADMIN" -qc "DROP DATABASE $dbname WITH (FORCE)"

echo "== ceiling: trivial actix-web handler, same wrk script"
target/release/examples/ceiling 127.0.0.1:18091 &
cpid=$!
sleep 0.5
TOKENS="$work/tokens-sqlite" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s benches/answers.lua "http://127.0.0.1:18091"
kill $cpid
