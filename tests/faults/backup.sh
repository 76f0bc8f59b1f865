#!/usr/bin/env bash
# Backup and restore, as README "Running in production" documents them, on live servers:
#   SQLite:     sqlite3 LIVE.db "VACUUM INTO 'BACKUP.db'"  while closeloop is answering,
#               then restore = put the file in place and start closeloop on it;
#   PostgreSQL: pg_dump -Fc while closeloop is answering, pg_restore into a new database,
#               start closeloop on it.
# Each time the restored server must show every answer acknowledged before the backup began,
# its report and the same API key (keys are stored hashed in the database).
# Needs the local PostgreSQL (127.0.0.1:5432, trust) and the sqlite3 CLI (installed when
# missing). Usage: bash tests/faults/backup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG="postgres://postgres@127.0.0.1:5432"
if ! command -v sqlite3 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d /tmp/closeloop-backup.XXXXXX)
pids=()
dbs=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for d in "${dbs[@]}"; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
cargo build --quiet --locked --bin closeloop
BIN=${CARGO_TARGET_DIR:-target}/debug/closeloop

# start URL NAME: a server on DATABASE_URL=URL; sets `base` to its address. (Not called in
# $(…): a background process there would keep the substitution open.)
start() {
    local port; port=$(free_port)
    DATABASE_URL=$1 RUST_LOG=warn BIND_ADDR=127.0.0.1:$port OUTBOX_DIR=$work/$2-outbox \
        "$BIN" >"$work/$2.log" 2>&1 </dev/null &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/$2.log" >&2; echo "FAIL: $2 did not start" >&2; exit 1; }
    base="http://127.0.0.1:$port"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# fill BASE KEY N: a survey and N answers through the survey pages; prints the survey id.
fill() {
    local base=$1 key=$2 n=$3 sid contacts tokens
    sid=$(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -X POST "$base/api/v1/surveys" \
        -d '{"kind":"nps","name":"backup","throttle_days":0}' | json 'd["id"]')
    contacts=$(python3 -c "import json; print(json.dumps([{'email': f'c{i}@example.com'} for i in range($n)]))")
    tokens=$(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -X POST "$base/api/v1/surveys/$sid/invitations" \
        -d "{\"channel\":\"link\",\"contacts\":$contacts}" | json '"\n".join(i["url"].rsplit("/",1)[1] for i in d["items"])')
    local i=0
    for t in $tokens; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d "score=$((i % 11))&comment=answer+$i" "$base/s/$t")
        [ "$code" = 303 ] || { echo "FAIL: answer $i: $code" >&2; exit 1; }
        i=$((i + 1))
    done
    echo "$sid"
}
# answers BASE KEY SID: how many answers the server lists, and the report's NPS.
answers() {
    curl -s -H "Authorization: Bearer $2" "$1/api/v1/responses?survey_id=$3&limit=100" | json 'len(d["items"])'
}
nps() { curl -s -H "Authorization: Bearer $2" "$1/api/v1/surveys/$3/report" | json 'd["nps"]'; }
# keep_answering BASE TOKEN: answers (and changes) one invitation in a loop, so the backup
# is taken under writes; sets `busy` to the loop's pid.
keep_answering() {
    ( while true; do curl -s -o /dev/null -X POST -d "score=$((RANDOM % 11))&comment=busy" "$1/s/$2"; done ) >/dev/null 2>&1 </dev/null &
    busy=$!
    pids+=("$busy")
}

echo "== SQLite: VACUUM INTO from a live database"
live="$work/live.db"
DATABASE_URL="sqlite://$live" "$BIN" migrate >/dev/null
key=$(DATABASE_URL="sqlite://$live" "$BIN" api-key create --name backup --role admin | tail -n 1)
start "sqlite://$live" sqlite-live
sid=$(fill "$base" "$key" 40)
busy_sid=$(fill "$base" "$key" 1)
busy_token=$(sqlite3 "$live" "SELECT token FROM invitations WHERE survey_id = '$busy_sid'")
keep_answering "$base" "$busy_token"
before=$(answers "$base" "$key" "$sid"); before_nps=$(nps "$base" "$key" "$sid")
sqlite3 "$live" "VACUUM INTO '$work/backup.db'"
kill "$busy"
[ "$(sqlite3 "$work/backup.db" 'PRAGMA integrity_check')" = ok ] || { echo "FAIL: the backup is not intact" >&2; exit 1; }
# Restore: the backup file becomes the database of a fresh server.
mkdir -p "$work/restored" && cp "$work/backup.db" "$work/restored/closeloop.db"
live_base=$base
start "sqlite://$work/restored/closeloop.db" sqlite-restored
rbase=$base; base=$live_base
after=$(answers "$rbase" "$key" "$sid"); after_nps=$(nps "$rbase" "$key" "$sid")
echo "live: $before answers (NPS $before_nps); restored: $after answers (NPS $after_nps)"
[ "$before" = 40 ] && [ "$after" = "$before" ] && [ "$after_nps" = "$before_nps" ] || { echo "FAIL: the restored SQLite database lacks answers" >&2; exit 1; }

echo "== PostgreSQL: pg_dump from a live database, pg_restore into a new one"
suffix=$(date +%s)_$$
src="closeloop_backup_src_$suffix"; dst="closeloop_backup_dst_$suffix"
dbs+=("$src" "$dst")
psql -q "$PG/postgres" -c "CREATE DATABASE $src" >/dev/null
DATABASE_URL="$PG/$src" "$BIN" migrate >/dev/null
key=$(DATABASE_URL="$PG/$src" "$BIN" api-key create --name backup --role admin | tail -n 1)
start "$PG/$src" pg-live
sid=$(fill "$base" "$key" 40)
busy_sid=$(fill "$base" "$key" 1)
busy_token=$(psql -At "$PG/$src" -c "SELECT token FROM invitations WHERE survey_id = '$busy_sid'")
keep_answering "$base" "$busy_token"
before=$(answers "$base" "$key" "$sid"); before_nps=$(nps "$base" "$key" "$sid")
pg_dump -Fc -f "$work/closeloop.dump" "$PG/$src"
kill "$busy"
psql -q "$PG/postgres" -c "CREATE DATABASE $dst" >/dev/null
pg_restore --no-owner --exit-on-error -d "$PG/$dst" "$work/closeloop.dump"
live_base=$base
start "$PG/$dst" pg-restored
rbase=$base; base=$live_base
after=$(answers "$rbase" "$key" "$sid"); after_nps=$(nps "$rbase" "$key" "$sid")
echo "live: $before answers (NPS $before_nps); restored: $after answers (NPS $after_nps)"
[ "$before" = 40 ] && [ "$after" = "$before" ] && [ "$after_nps" = "$before_nps" ] || { echo "FAIL: the restored PostgreSQL database lacks answers" >&2; exit 1; }
echo "PASS: SQLite (VACUUM INTO) and PostgreSQL (pg_dump/pg_restore) backups of live servers restore with every answer"
