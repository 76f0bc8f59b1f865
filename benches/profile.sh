#!/usr/bin/env bash
# Profiles the answer path: starts the release server (dispatcher and webhook workers on, no
# webhook subscribed) on a fresh SQLite file or PostgreSQL database, creates a survey with
# reminders and TOKENS_N link invitations, runs wrk on POST /s/{token} (benches/answers.lua)
# and, with PERF=1, records the server with `perf record --call-graph dwarf` meanwhile, then
# prints the share of samples under a few functions of the answer path.
# Usage: bash benches/profile.sh sqlite|postgres   (DURATION=8 CONNS=64 TOKENS_N=10000 PERF=0)
#   needs wrk, curl, python3; PERF=1 needs perf (Debian's linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${1:-sqlite}
DURATION=${DURATION:-8} CONNS=${CONNS:-64} TOKENS_N=${TOKENS_N:-10000} PERF=${PERF:-0}
PG_ADMIN=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release --quiet --bin closeloop
BIN=${CARGO_TARGET_DIR:-target}/release/closeloop
work=$(mktemp -d)
port=18190
dbname=closeloop_profile_$$
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ "$ENGINE" = postgres ] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$ENGINE" = sqlite ]; then
  export DATABASE_URL=sqlite://$work/bench.db
else
  psql "$PG_ADMIN" -qc "CREATE DATABASE $dbname"
  export DATABASE_URL=${PG_ADMIN%/*}/$dbname
fi
$BIN migrate >/dev/null
key=$($BIN api-key create --name bench --role admin | tail -n 1)
RUST_LOG=warn BIND_ADDR=127.0.0.1:$port OUTBOX_DIR=$work/outbox $BIN > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
survey=$(curl -s -X POST "http://127.0.0.1:$port/api/v1/surveys" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"kind":"nps","name":"bench","throttle_days":0,"reminder_after_days":3}' \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
python3 benches/link_tokens.py "$port" "$key" "$survey" "$TOKENS_N" > "$work/tokens"
sleep 1
if [ "$PERF" = 1 ]; then
  perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p $pid -o "$work/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
  perf_pid=$!
fi
TOKENS="$work/tokens" wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s benches/answers.lua "http://127.0.0.1:$port" \
  | grep -E "Requests/sec|50%|99%|non-2xx|Socket errors"
if [ "$PERF" = 1 ]; then
  wait $perf_pid || true
  perf script -i "$work/perf.data" 2>/dev/null | python3 -c '
import sys, collections
keys = ["record_in_tx", "survey::load", "store::batch", "mark_responded", "Tally::flush", "webhooks::",
        "followups::on_response", "sqlite3Prepare", "sqlite3Reprepare", "batch_execute", "commit_transaction",
        "push_identifier", "actix_http::h1", "malloc", "finish_task_switch"]
seen, total = collections.Counter(), 0
for stack in sys.stdin.read().split("\n\n"):
    lines = stack.strip().split("\n")
    if len(lines) < 2:
        continue
    total += 1
    body = "\n".join(lines[1:])
    for k in keys:
        seen[k] += k in body
print(f"{total} samples of the server; share of samples with each function on the stack:")
for k in keys:
    print(f"  {100 * seen[k] / max(total, 1):5.1f} %  {k}")'
fi
