#!/usr/bin/env bash
# Benchmark: the full survey report over 1,000,000 answers spread over a year, the CSV
# export of all of them, and the workspace dashboards (/app/surveys/{id}, /app/reports) as a
# signed-in reader sees them, on SQLite and on PostgreSQL, each beside the report's main SQL
# run directly with sqlite3 / psql as the floor. Then it snapshots the `plan` property onto
# every answer (`report_segments`), timing the backfill and the writes made meanwhile, and
# times `segment=plan` and the dashboard's segment comparison again (read from the rollups).
# Usage: bash benches/reports.sh   (needs sqlite3 and psql; PostgreSQL on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RUNS=${RUNS:-5}
PG_ADMIN=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release --quiet --bin closeloop
BIN=${CARGO_TARGET_DIR:-target}/release/closeloop
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18095

wait_ready() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done; return 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

start_server() {
  RUST_LOG=warn,closeloop::reports::segments=info DISPATCHER=off WEBHOOKS=off BIND_ADDR=127.0.0.1:$port OUTBOX_DIR=$work/outbox $BIN > "$work/server.log" 2>&1 &
  pid=$!
  wait_ready
}

create_survey() {
  curl -s -X POST "http://127.0.0.1:$port/api/v1/surveys" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"kind":"nps","name":"bench"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'
}

# A reader's session cookie: `closeloop user create` prints a one-time link, POSTing it
# (from this site's origin) starts the session.
sign_in() {
  local link
  link=$(PUBLIC_URL="http://127.0.0.1:$port" $BIN user create --email "bench-$1@example.com" --name Bench --role reader | tail -n 1)
  curl -s -o /dev/null -c "$work/cookies" -X POST -H "Origin: http://127.0.0.1:$port" --data "next=/app/reports" "$link"
  grep -q closeloop_session "$work/cookies"
}

measure_dashboards() {
  local name=$1 from to t status
  from=$(date -u -d '365 days ago' +%Y-%m-%d)
  to=$(date -u +%Y-%m-%d)
  for path in "/app/surveys/$survey" "/app/surveys/$survey?period=90d" "/app/reports" \
      "/app/surveys/$survey?period=custom&from=$from&to=$to&interval=week" \
      "/app/reports?period=custom&from=$from&to=$to&interval=week" \
      "/app/surveys/$survey?period=custom&from=$from&to=$to&interval=week&segment=plan"; do
    status=$(curl -s -o "$work/page.html" -w '%{http_code}' -b "$work/cookies" "http://127.0.0.1:$port$path")
    [ "$status" = 200 ] || { echo "$name dashboard $path: HTTP $status"; exit 1; }
    echo "  check: $(grep -o 'id="headline-responses" data-value="[0-9]*"' "$work/page.html"), buckets $(grep -o ' data-start="' "$work/page.html" | wc -l)"
    t=$(for _ in $(seq 1 "$RUNS"); do curl -s -o /dev/null -w '%{time_total}\n' -b "$work/cookies" "http://127.0.0.1:$port$path"; done | median)
    echo "$name dashboard GET $path: median of $RUNS = ${t}s"
  done
}

# `report_segments: ["plan"]` on the survey: the backfill gives every earlier answer its
# contact's plan, in batches, in the background. Meanwhile contacts are upserted one after
# the other (a write each) to see how long a write waits; then the segment report and the
# dashboard's segment comparison are timed again, now from the rollups.
snapshot_segments() {
  local name=$1 from to q t0 t src i=0
  to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  from=$(date -u -d '366 days ago' +%Y-%m-%dT%H:%M:%SZ)
  q="from=$from&to=$to&interval=week&segment=plan"
  curl -s "http://127.0.0.1:$port/api/v1/surveys/$survey/report?$q" -H "Authorization: Bearer $key" \
    | python3 -c 'import json,sys;r=json.load(sys.stdin);print(json.dumps(sorted((g["value"],g["responses"],g["nps"]) for g in r["segments"])))' > "$work/segments-live.json"
  : > "$work/writes"
  t0=$(date +%s.%N)
  curl -s -o /dev/null -X PATCH "http://127.0.0.1:$port/api/v1/surveys/$survey" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"report_segments":["plan"]}'
  while :; do
    # A cheap probe (the last minute only) tells whether the backfill is done.
    src=$(curl -s "http://127.0.0.1:$port/api/v1/surveys/$survey/report?from=$(date -u -d '1 minute ago' +%Y-%m-%dT%H:%M:%SZ)&segment=plan" \
      -H "Authorization: Bearer $key" | python3 -c 'import json,sys;print(json.load(sys.stdin).get("segment_source"))')
    [ "$src" = answer_time ] && break
    for _ in 1 2 3 4 5; do
      curl -s -o /dev/null -w '%{time_total}\n' -X POST "http://127.0.0.1:$port/api/v1/contacts" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -d "{\"email\":\"w$i@example.com\",\"properties\":{\"plan\":\"pro\"}}" >> "$work/writes"
      i=$((i + 1))
    done
  done
  echo "$name backfill of plan over $N answers: $(echo "$(date +%s.%N) - $t0" | bc) s; $(grep -o 'slowest_batch_ms=[0-9.]*' "$work/server.log" | tail -1)"
  echo "$name writes during the backfill: $(wc -l < "$work/writes") contact upserts, median $(median < "$work/writes") s, max $(sort -n "$work/writes" | tail -1) s"
  curl -s "http://127.0.0.1:$port/api/v1/surveys/$survey/report?$q" -H "Authorization: Bearer $key" \
    | python3 -c 'import json,sys;r=json.load(sys.stdin);print(json.dumps(sorted((g["value"],g["responses"],g["nps"]) for g in r["segments"])))' > "$work/segments-snapshot.json"
  if cmp -s "$work/segments-live.json" "$work/segments-snapshot.json"; then
    echo "  check: the snapshot's segments equal the live join's: $(cat "$work/segments-snapshot.json")"
  else
    echo "  check FAILED: live $(cat "$work/segments-live.json") snapshot $(cat "$work/segments-snapshot.json")"; exit 1
  fi
  t=$(for _ in $(seq 1 "$RUNS"); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/api/v1/surveys/$survey/report?$q" -H "Authorization: Bearer $key"; done | median)
  echo "$name report (interval=week&segment=plan, snapshotted): median of $RUNS = ${t}s"
  local path status
  path="/app/surveys/$survey?period=custom&from=$(date -u -d '365 days ago' +%Y-%m-%d)&to=$(date -u +%Y-%m-%d)&interval=week&segment=plan"
  status=$(curl -s -o "$work/page.html" -w '%{http_code}' -b "$work/cookies" "http://127.0.0.1:$port$path")
  [ "$status" = 200 ] || { echo "$name dashboard $path: HTTP $status"; exit 1; }
  grep -q 'when they answered' "$work/page.html" || { echo "$name dashboard: not from the snapshots"; exit 1; }
  t=$(for _ in $(seq 1 "$RUNS"); do curl -s -o /dev/null -w '%{time_total}\n' -b "$work/cookies" "http://127.0.0.1:$port$path"; done | median)
  echo "$name dashboard GET $path (snapshotted): median of $RUNS = ${t}s"
}

measure() {
  local name=$1 floor_cmd=$2 rollup_cmd=$3
  local from to q
  to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  from=$(date -u -d '366 days ago' +%Y-%m-%dT%H:%M:%SZ)
  for variant in "interval=week&segment=plan" "interval=week" "interval=day"; do
    q="from=$from&to=$to&$variant"
    curl -s -o "$work/report.json" "http://127.0.0.1:$port/api/v1/surveys/$survey/report?$q" -H "Authorization: Bearer $key"
    python3 -c "import json;r=json.load(open('$work/report.json'));print('  check: responses', r['responses'], 'nps', r['nps'], 'series', len(r['series']), 'segments', len(r['segments']))"
    local t
    t=$(for _ in $(seq 1 "$RUNS"); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/api/v1/surveys/$survey/report?$q" -H "Authorization: Bearer $key"; done | median)
    echo "$name report ($variant): median of $RUNS = ${t}s"
  done
  echo "$name floor (the raw day × score GROUP BY over all answers, run directly): $(eval "$floor_cmd")"
  echo "$name floor (the rollup read, run directly): $(eval "$rollup_cmd")"
  local before after t
  before=$(grep VmHWM /proc/$pid/status | awk '{print $2}')
  t=$(curl -s -o "$work/export.csv" -w '%{time_total}' "http://127.0.0.1:$port/api/v1/surveys/$survey/responses.csv" -H "Authorization: Bearer $key")
  after=$(grep VmHWM /proc/$pid/status | awk '{print $2}')
  echo "$name CSV export: $(($(wc -l < "$work/export.csv") - 1)) rows, $(du -m "$work/export.csv" | cut -f1) MB in ${t}s; server peak RSS before $((before / 1024)) MB, after $((after / 1024)) MB"
}

echo "== SQLite, $N answers"
export DATABASE_URL="sqlite://$work/bench.db"
$BIN migrate >/dev/null
key=$($BIN api-key create --name bench --role admin | tail -n 1)
start_server
survey=$(create_survey)
t0=$(date +%s.%N)
sqlite3 "$work/bench.db" <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 10000)
INSERT INTO contacts (id, email, properties, value, created_at, updated_at)
SELECT printf('con_B%025d', n), printf('c%d@example.com', n),
       CASE n % 3 WHEN 0 THEN '{"plan":"pro"}' WHEN 1 THEN '{"plan":"free"}' ELSE '{"plan":"team"}' END,
       n % 1000, datetime('now', '-400 days'), datetime('now', '-400 days') FROM c;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $N)
INSERT INTO invitations (id, survey_id, contact_id, channel, token, status, send_at, next_attempt_at, attempts, sent_at, responded_at, created_at, updated_at)
SELECT printf('inv_B%025d', n), '$survey', printf('con_B%025d', 1 + n % 10000), 'email', printf('tok%040d', n), 'responded',
       datetime('now', printf('-%d seconds', n * 31 + 3600)), datetime('now', printf('-%d seconds', n * 31 + 3600)), 1,
       datetime('now', printf('-%d seconds', n * 31 + 3600)), datetime('now', printf('-%d seconds', n * 31)),
       datetime('now', printf('-%d seconds', n * 31 + 3600)), datetime('now', printf('-%d seconds', n * 31)) FROM c;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $N)
INSERT INTO responses (id, survey_id, invitation_id, contact_id, score, category, comment, channel, created_at, updated_at)
SELECT printf('rsp_B%025d', n), '$survey', printf('inv_B%025d', n), printf('con_B%025d', 1 + n % 10000), s,
       CASE WHEN s >= 9 THEN 'promoter' WHEN s >= 7 THEN 'passive' ELSE 'detractor' END,
       CASE WHEN n % 4 = 0 THEN 'Comment, with "quotes" ' || n ELSE NULL END, 'email',
       datetime('now', printf('-%d seconds', n * 31)), datetime('now', printf('-%d seconds', n * 31))
FROM (SELECT n, (n * 7919) % 11 AS s FROM c);
COMMIT;
ANALYZE;
SQL
echo "generated in $(echo "$(date +%s.%N) - $t0" | bc) s"
t0=$(date +%s.%N); $BIN rebuild-rollups >/dev/null; echo "closeloop rebuild-rollups took $(echo "$(date +%s.%N) - $t0" | bc) s"
measure sqlite "printf '.timer on\\nSELECT substr(created_at,1,10) AS day, score, COUNT(*) FROM responses WHERE survey_id = \\x27$survey\\x27 AND created_at >= datetime(\\x27now\\x27,\\x27-366 days\\x27) GROUP BY 1, 2;\\n' | sqlite3 $work/bench.db 2>&1 | grep -o 'real [0-9.]*' | head -1" \
  "printf '.timer on\\nSELECT day, score, n FROM response_daily WHERE survey_id = \\x27$survey\\x27 AND day >= date(\\x27now\\x27,\\x27-366 days\\x27);\\n' | sqlite3 $work/bench.db 2>&1 | grep -o 'real [0-9.]*' | head -1"
sign_in sqlite
measure_dashboards sqlite
snapshot_segments sqlite
kill $pid; wait $pid 2>/dev/null || true

echo "== PostgreSQL, $N answers"
dbname=closeloop_bench_reports_$$
psql "$PG_ADMIN" -qc "CREATE DATABASE $dbname"
export DATABASE_URL="${PG_ADMIN%/*}/$dbname"
$BIN migrate >/dev/null
key=$($BIN api-key create --name bench --role admin | tail -n 1)
start_server
survey=$(create_survey)
t0=$(date +%s.%N)
psql -q "$DATABASE_URL" <<SQL
INSERT INTO contacts (id, email, properties, value, created_at, updated_at)
SELECT 'con_B' || lpad(n::text, 25, '0'), 'c' || n || '@example.com',
       CASE n % 3 WHEN 0 THEN '{"plan":"pro"}' WHEN 1 THEN '{"plan":"free"}' ELSE '{"plan":"team"}' END,
       n % 1000, now() - interval '400 days', now() - interval '400 days' FROM generate_series(1, 10000) n;
INSERT INTO invitations (id, survey_id, contact_id, channel, token, status, send_at, next_attempt_at, attempts, sent_at, responded_at, created_at, updated_at)
SELECT 'inv_B' || lpad(n::text, 25, '0'), '$survey', 'con_B' || lpad((1 + n % 10000)::text, 25, '0'), 'email', 'tok' || lpad(n::text, 40, '0'), 'responded',
       now() - make_interval(secs => n * 31 + 3600), now() - make_interval(secs => n * 31 + 3600), 1,
       now() - make_interval(secs => n * 31 + 3600), now() - make_interval(secs => n * 31),
       now() - make_interval(secs => n * 31 + 3600), now() - make_interval(secs => n * 31) FROM generate_series(1, $N) n;
INSERT INTO responses (id, survey_id, invitation_id, contact_id, score, category, comment, channel, created_at, updated_at)
SELECT 'rsp_B' || lpad(n::text, 25, '0'), '$survey', 'inv_B' || lpad(n::text, 25, '0'), 'con_B' || lpad((1 + n % 10000)::text, 25, '0'), s,
       CASE WHEN s >= 9 THEN 'promoter' WHEN s >= 7 THEN 'passive' ELSE 'detractor' END,
       CASE WHEN n % 4 = 0 THEN 'Comment, with "quotes" ' || n ELSE NULL END, 'email',
       now() - make_interval(secs => n * 31), now() - make_interval(secs => n * 31)
FROM (SELECT n, (n::bigint * 7919) % 11 AS s FROM generate_series(1, $N) n) g;
VACUUM ANALYZE;
SQL
echo "generated in $(echo "$(date +%s.%N) - $t0" | bc) s"
t0=$(date +%s.%N); $BIN rebuild-rollups >/dev/null; echo "closeloop rebuild-rollups took $(echo "$(date +%s.%N) - $t0" | bc) s"
measure postgres "psql -q \"$DATABASE_URL\" -c '\\timing on' -c \"SELECT to_char(created_at, 'YYYY-MM-DD') AS day, score, COUNT(*) FROM responses WHERE survey_id = '$survey' AND created_at >= now() - interval '366 days' GROUP BY 1, 2\" | grep -o 'Time: [0-9.]* ms' | head -1" \
  "psql -q \"$DATABASE_URL\" -c '\\timing on' -c \"SELECT day, score, n FROM response_daily WHERE survey_id = '$survey' AND day >= to_char(now() - interval '366 days', 'YYYY-MM-DD')\" | grep -o 'Time: [0-9.]* ms' | head -1"
sign_in postgres
measure_dashboards postgres
snapshot_segments postgres
kill $pid; wait $pid 2>/dev/null || true
psql "$PG_ADMIN" -qc "DROP DATABASE $dbname WITH (FORCE)"
