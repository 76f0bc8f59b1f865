#!/usr/bin/env bash
# Idle memory: starts the release server with the defaults on a fresh SQLite file and a fresh
# PostgreSQL database, waits for /readyz, sleeps 3 s and prints VmRSS, RssAnon, RssFile and the
# thread count from /proc/PID/status (kB). BENCHMARKS.md section 2c.
# Usage: bash benches/idle_rss.sh   ENGINES="sqlite postgres" RUNS=3 PORT=18095
#   DETAIL=1 also prints the mappings over 100 kB resident (/proc/PID/smaps) and the threads.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINES=${ENGINES:-sqlite postgres}
RUNS=${RUNS:-3}
PORT=${PORT:-18095}
PG_ADMIN=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release --quiet --bin closeloop
BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/closeloop")
field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

for engine in $ENGINES; do
  for run in $(seq 1 "$RUNS"); do
    work=$(mktemp -d)
    if [ "$engine" = postgres ]; then
      db=closeloop_bench_idle_$$_$run
      psql "$PG_ADMIN" -qc "CREATE DATABASE $db"
      url="${PG_ADMIN%/*}/$db"
    else
      url="sqlite://$work/idle.db"
    fi
    (cd "$work" && DATABASE_URL=$url RUST_LOG=warn BIND_ADDR=127.0.0.1:$PORT OUTBOX_DIR=$work/outbox exec "$BIN" > "$work/log" 2>&1) &
    pid=$!
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.1; done
    sleep 3
    echo "IDLE $engine run $run: VmRSS $(field $pid VmRSS) RssAnon $(field $pid RssAnon) RssFile $(field $pid RssFile) kB, $(field $pid Threads) threads"
    if [ -n "${DETAIL:-}" ]; then
      awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6)} /^Rss:/ && $2 > 100 {print "  " $2 " kB " name}' "/proc/$pid/smaps" | sort -k1,1nr
      for t in /proc/$pid/task/*; do cat "$t/comm"; done | sort | uniq -c | sed 's/^/  threads: /'
    fi
    kill $pid; wait $pid 2>/dev/null || true
    [ "$engine" = postgres ] && psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)"
    rm -rf "$work"
  done
done
