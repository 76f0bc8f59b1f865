#!/usr/bin/env bash
# Benchmark: recorded answers per second for POST /s/{token} at 64 connections (wrk), on
# SQLite and on PostgreSQL, with the dispatcher and webhook workers on (the defaults) and a
# webhook subscribed, on a small database and on a large one, beside two ceilings measured in
# the same run: a trivial actix-web handler, and the same handler doing one raw INSERT per
# request (examples/insert_ceiling.rs) on the same engine.
#
# SIZES="small large" (default both):
#   small: the TOKENS_N (10,000) link invitations wrk answers, nothing else;
#   large: the same, plus 1,000,000 earlier invitations and 1,000,000 earlier answers written
#          by SQL (500,000 invitations answered, 500,000 emails sent in the last 2 days and
#          waiting for their reminder, 500,000 anonymous public-link answers), 10,000 contacts.
# The survey has reminders on (3 days). wrk cycles through the tokens: the first pass records
# answers, later passes change them (the edit window), the same mix for both sizes.
# Each run prints `RESULT engine size answers/s p50 p99 idle-RSS peak-RSS` lines, then (unless
# GETPOST=0) `GETPOST engine size answers/s p50 p99 peak-RSS` for customers who open the page
# (GET) and then submit it (POST) on the same server, and `CEILING engine kind req/s p50 p99`
# lines; benches/run-all.sh turns them into the table.
# Usage: bash benches/answers.sh   (needs wrk, sqlite3, psql; PostgreSQL on 127.0.0.1)
#   ENGINES="sqlite postgres" SIZES="small large" CONNS=64 DURATION=15s TOKENS_N=10000 N=1000000
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
TOKENS_N=${TOKENS_N:-10000}
N=${N:-1000000}
ENGINES=${ENGINES:-sqlite postgres}
SIZES=${SIZES:-small large}
PG_ADMIN=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for tool in wrk sqlite3 psql curl python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (apt-get install wrk sqlite3 postgresql-client curl python3)"; exit 1; }
done
cargo build --release --quiet --bin closeloop --example ceiling --example insert_ceiling
T=${CARGO_TARGET_DIR:-target}/release
BIN=$T/closeloop
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18090 hook_port=18093

wait_ready() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/$2" >/dev/null && return 0; sleep 0.1; done; return 1; }
rss() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# wrk's answers/s, p50 and p99 (ms) from its --latency output.
wrk_figures() {
  awk '/Requests\/sec/ {r=$2}
       function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
       $1 == "50%" {p50=ms($2)} $1 == "99%" {p99=ms($2)}
       END {printf "%.0f %.2f %.2f", r, p50, p99}' "$1"
}

# The webhook receiver (204 to every POST /hook) and the trivial-handler ceiling.
$T/examples/ceiling 127.0.0.1:$hook_port > /dev/null 2>&1 &
sleep 0.3

start_server() { # name
  # WEBHOOK_ALLOW_PRIVATE: the benchmark's webhook receiver listens on 127.0.0.1.
  RUST_LOG=warn WEBHOOK_ALLOW_PRIVATE=true BIND_ADDR=127.0.0.1:$port OUTBOX_DIR=$work/outbox $BIN > "$work/$1.log" 2>&1 &
  pid=$!
  wait_ready $port readyz
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

seed_sqlite() { # db file, survey
  sqlite3 "$1" <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 10000)
INSERT INTO contacts (id, email, properties, value, created_at, updated_at)
SELECT printf('con_B%025d', n), printf('c%d@example.com', n), '{"plan":"pro"}', n % 1000,
       datetime('now', '-400 days'), datetime('now', '-400 days') FROM c;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $N)
INSERT INTO invitations (id, survey_id, contact_id, channel, token, status, send_at, next_attempt_at, attempts, sent_at, responded_at, remind_at, created_at, updated_at)
SELECT printf('inv_B%025d', n), '$2', printf('con_B%025d', 1 + n % 10000), 'email', printf('tok%040d', n),
       CASE n % 2 WHEN 0 THEN 'responded' ELSE 'sent' END,
       sent, sent, 1, sent,
       CASE n % 2 WHEN 0 THEN datetime(sent, '+1 hour') END,
       CASE n % 2 WHEN 1 THEN datetime(sent, '+3 days') END,
       sent, sent
FROM (SELECT n, CASE n % 2 WHEN 0 THEN datetime('now', printf('-%d seconds', n * 31 + 3600))
                ELSE datetime('now', printf('-%d seconds', n % 172800)) END AS sent FROM c);
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $N)
INSERT INTO responses (id, survey_id, invitation_id, contact_id, score, category, comment, channel, created_at, updated_at)
SELECT printf('rsp_B%025d', n), '$2', CASE n % 2 WHEN 0 THEN printf('inv_B%025d', n) END,
       CASE n % 2 WHEN 0 THEN printf('con_B%025d', 1 + n % 10000) END, s,
       CASE WHEN s >= 9 THEN 'promoter' WHEN s >= 7 THEN 'passive' ELSE 'detractor' END,
       CASE WHEN n % 4 = 0 THEN 'an earlier answer ' || n END, CASE n % 2 WHEN 0 THEN 'email' ELSE 'link' END,
       datetime('now', printf('-%d seconds', n * 31)), datetime('now', printf('-%d seconds', n * 31))
FROM (SELECT n, (n * 7919) % 11 AS s FROM c);
COMMIT;
ANALYZE;
SQL
}

seed_postgres() { # url, survey
  psql -q "$1" <<SQL
BEGIN;
INSERT INTO contacts (id, email, properties, value, created_at, updated_at)
SELECT 'con_B' || lpad(n::text, 25, '0'), 'c' || n || '@example.com', '{"plan":"pro"}', n % 1000,
       now() - interval '400 days', now() - interval '400 days' FROM generate_series(1, 10000) n;
INSERT INTO invitations (id, survey_id, contact_id, channel, token, status, send_at, next_attempt_at, attempts, sent_at, responded_at, remind_at, created_at, updated_at)
SELECT 'inv_B' || lpad(n::text, 25, '0'), '$2', 'con_B' || lpad((1 + n % 10000)::text, 25, '0'), 'email',
       'tok' || lpad(n::text, 40, '0'), CASE n % 2 WHEN 0 THEN 'responded' ELSE 'sent' END,
       sent, sent, 1, sent,
       CASE n % 2 WHEN 0 THEN sent + interval '1 hour' END,
       CASE n % 2 WHEN 1 THEN sent + interval '3 days' END,
       sent, sent
FROM (SELECT n, CASE n % 2 WHEN 0 THEN (now() at time zone 'utc') - (n * 31 + 3600) * interval '1 second'
                ELSE (now() at time zone 'utc') - (n % 172800) * interval '1 second' END AS sent
      FROM generate_series(1, $N) n) g;
INSERT INTO responses (id, survey_id, invitation_id, contact_id, score, category, comment, channel, created_at, updated_at)
SELECT 'rsp_B' || lpad(n::text, 25, '0'), '$2', CASE n % 2 WHEN 0 THEN 'inv_B' || lpad(n::text, 25, '0') END,
       CASE n % 2 WHEN 0 THEN 'con_B' || lpad((1 + n % 10000)::text, 25, '0') END, s,
       CASE WHEN s >= 9 THEN 'promoter' WHEN s >= 7 THEN 'passive' ELSE 'detractor' END,
       CASE WHEN n % 4 = 0 THEN 'an earlier answer ' || n END, CASE n % 2 WHEN 0 THEN 'email' ELSE 'link' END,
       (now() at time zone 'utc') - n * 31 * interval '1 second', (now() at time zone 'utc') - n * 31 * interval '1 second'
FROM (SELECT n, (n * 7919) % 11 AS s FROM generate_series(1, $N) n) g;
COMMIT;
ANALYZE;
SQL
}

run_case() { # engine size url
  local engine=$1 size=$2 url=$3 key survey
  export DATABASE_URL=$url
  $BIN migrate >/dev/null
  key=$($BIN api-key create --name bench --role admin | tail -n 1)
  start_server "$engine-$size"
  survey=$(curl -s -X POST "http://127.0.0.1:$port/api/v1/surveys" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"kind":"nps","name":"bench","throttle_days":0,"reminder_after_days":3}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  if [ "${WEBHOOK:-1}" = 1 ]; then # WEBHOOK=0: no webhook subscribed (the answer path alone)
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/webhooks" -H "Authorization: Bearer $key" \
      -H 'Content-Type: application/json' -d "{\"url\":\"http://127.0.0.1:$hook_port/hook\",\"events\":[\"response.created\",\"response.updated\",\"followup.created\"]}"
  fi
  python3 benches/link_tokens.py "$port" "$key" "$survey" "$TOKENS_N" > "$work/tokens"
  if [ "$size" = large ]; then
    stop_server
    local t0; t0=$(date +%s)
    if [ "$engine" = sqlite ]; then seed_sqlite "${url#sqlite://}" "$survey"; else seed_postgres "$url" "$survey"; fi
    $BIN rebuild-rollups >/dev/null
    # Finish the checkpoint the bulk load started, so it does not run during the measurement
    # (PostgreSQL: the load writes more WAL than max_wal_size; SQLite: the WAL of the load).
    if [ "$engine" = sqlite ]; then sqlite3 "${url#sqlite://}" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    else psql -q "$url" -c CHECKPOINT; fi
    echo "$engine $size: seeded $N invitations and $N answers in $(( $(date +%s) - t0 )) s"
    start_server "$engine-$size"
  fi
  sleep 3
  local idle; idle=$(rss $pid VmRSS)
  echo "== $engine $size: $(wc -l < "$work/tokens") tokens; wrk -t2 -c$CONNS -d$DURATION; idle RSS $idle MB"
  TOKENS="$work/tokens" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s benches/answers.lua "http://127.0.0.1:$port" > "$work/wrk.txt"
  cat "$work/wrk.txt"
  local peak; peak=$(rss $pid VmHWM)
  grep -E 'non-2xx|Socket errors' "$work/wrk.txt" || true
  curl -s "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
  echo "$engine $size: answers (303) counted by /metrics: $(awk '/^closeloop_http_requests_total/ && /\/s\/\{token\}/ && /status="303"/ {s += $NF} END {print s + 0}' "$work/metrics.txt");" \
    "webhook deliveries: $(grep '^closeloop_webhook_deliveries_total' "$work/metrics.txt" | tr '\n' ' ')"
  echo "RESULT $engine $size $(wrk_figures "$work/wrk.txt") $idle $peak"
  if [ "${GETPOST:-1}" = 1 ]; then # the customer opens the page, then submits it
    MODE=getpost TOKENS="$work/tokens" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s benches/answers.lua "http://127.0.0.1:$port" > "$work/wrk-getpost.txt"
    cat "$work/wrk-getpost.txt"
    grep -E 'non-2xx|Socket errors' "$work/wrk-getpost.txt" || true
    # Half of the requests are answers; p50 and p99 are over GETs and POSTs together.
    echo "GETPOST $engine $size $(wrk_figures "$work/wrk-getpost.txt" | awk '{printf "%d %s %s", $1 / 2, $2, $3}') $(rss $pid VmHWM)"
  fi
  stop_server
}

ceiling() { # engine url
  local engine=$1 url=$2 cpid
  $T/examples/insert_ceiling 127.0.0.1:18092 "$url" > /dev/null 2>&1 &
  cpid=$!
  sleep 1
  TOKENS="$work/tokens" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s benches/answers.lua "http://127.0.0.1:18092" > "$work/wrk-ceiling.txt"
  echo "CEILING $engine insert $(wrk_figures "$work/wrk-ceiling.txt")"
  kill $cpid; wait $cpid 2>/dev/null || true
}

for engine in $ENGINES; do
  for size in $SIZES; do
    if [ "$engine" = sqlite ]; then
      rm -f "$work"/bench.db*
      run_case sqlite "$size" "sqlite://$work/bench.db"
    else
      dbname=closeloop_bench_answers_$$
      psql "$PG_ADMIN" -qc "CREATE DATABASE $dbname"
      run_case postgres "$size" "${PG_ADMIN%/*}/$dbname"
      psql "$PG_ADMIN" -qc "DROP DATABASE $dbname WITH (FORCE)"
    fi
  done
  if [ "$engine" = sqlite ]; then
    ceiling sqlite "sqlite://$work/ceiling.db"
  else
    dbname=closeloop_bench_ceiling_$$
    psql "$PG_ADMIN" -qc "CREATE DATABASE $dbname"
    ceiling postgres "${PG_ADMIN%/*}/$dbname"
    psql "$PG_ADMIN" -qc "DROP DATABASE $dbname WITH (FORCE)"
  fi
done

echo "== ceiling: trivial actix-web handler, same wrk script"
TOKENS="$work/tokens" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s benches/answers.lua "http://127.0.0.1:$hook_port" > "$work/wrk-trivial.txt"
echo "CEILING any trivial $(wrk_figures "$work/wrk-trivial.txt")"
