#!/usr/bin/env bash
# High-availability fault test: pg_auto_failover (Debian's postgresql-15-auto-failover) with a
# monitor, a primary and a synchronous standby, each a separate cluster made here on its own
# loopback port; two Closeloop servers on the libpq multi-host URL; answers at a steady rate
# through both; the primary node (its pg_autoctl keeper and its postmaster) killed with
# SIGKILL mid-run; failover. Reports: answers acknowledged (303) vs stored (0 lost), seconds
# without service, what clients saw, and whether the email and webhook queues resumed
# without sending again what was recorded as sent. Needs root (it runs PostgreSQL as
# `postgres`). Usage: bash benches/ha.sh [seconds of load, default 40]
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD_SECONDS=${1:-45}
RATE=${RATE:-20}            # answers per second, over both servers
KILL_AFTER=${KILL_AFTER:-10} # seconds into the load
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ "$(id -u)" -eq 0 ] || { echo "FAIL: ha.sh must run as root (it runs PostgreSQL as postgres)" >&2; exit 1; }
if ! command -v pg_autoctl >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q postgresql-15-auto-failover >/dev/null
fi
started=$(date +%s)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mon_port=$(free_port); p1=$(free_port); p2=$(free_port)
http1=$(free_port); http2=$(free_port); smtp_port=$(free_port); hook_port=$(free_port)
work=$(mktemp -d /tmp/closeloop-ha.XXXXXX)
chmod 755 "$work"; chown postgres "$work"
pids=()
# A process and its descendants (pg_autoctl runs PostgreSQL under service processes of its own).
tree() { echo "$1"; for c in $(ps -o pid= --ppid "$1"); do tree "$c"; done; }
cleanup() {
    local all=""
    for p in "${pids[@]}"; do all="$all $(tree "$p" | tr '\n' ' ')"; done
    # shellcheck disable=SC2086
    [ -n "${all// /}" ] && kill -9 $all 2>/dev/null || true
    for d in n1 n2 mon; do
        [ -d "$work/$d" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/$d" -m immediate stop >/dev/null 2>&1 || true
    done
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# pg_autoctl as postgres, its configuration and state kept inside $work.
autoctl() {
    runuser -u postgres -- env PATH="$PGBIN:$PATH" HOME="$work" XDG_CONFIG_HOME="$work/config" \
        XDG_DATA_HOME="$work/share" XDG_RUNTIME_DIR="$work/run" pg_autoctl "$@"
}
psql_at() { runuser -u postgres -- "$PGBIN/psql" -h 127.0.0.1 -p "$1" -X -q -t -A -v ON_ERROR_STOP=1 "${@:2}"; }
state() { autoctl show state --pgdata "$work/mon" 2>/dev/null || true; }

phase() { echo "== [+$(( $(date +%s) - started ))s] $*"; }
phase "pg_auto_failover: monitor :$mon_port, nodes :$p1 and :$p2"
autoctl create monitor --pgdata "$work/mon" --pgport "$mon_port" --hostname 127.0.0.1 \
    --auth trust --no-ssl >"$work/mon.create.log" 2>&1
autoctl config set --pgdata "$work/mon" postgresql.listen_addresses 127.0.0.1 >/dev/null
autoctl run --pgdata "$work/mon" >"$work/mon.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do psql_at "$mon_port" -d pg_auto_failover -c 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
# Faster health checks than the defaults (5 s period, 20 s to call a node unhealthy).
psql_at "$mon_port" -d pg_auto_failover >/dev/null <<'SQL'
ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1;
ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000;
-- The monitor promotes the standby this long after it asked the unreachable primary to
-- demote (default 30 s). It must exceed the nodes' network_partition_timeout (set to 5 s
-- below), after which a primary cut off from the monitor and the standby demotes itself:
-- so two primaries never take writes at once.
ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 8000;
SELECT pg_reload_conf();
SQL
monitor="postgres://autoctl_node@127.0.0.1:$mon_port/pg_auto_failover?sslmode=disable"
node() { # name port
    autoctl create postgres --pgdata "$work/$1" --pgport "$2" --hostname 127.0.0.1 \
        --listen 127.0.0.1 --name "$1" --auth trust --no-ssl --dbname closeloop --monitor "$monitor" \
        >"$work/$1.create.log" 2>&1
    autoctl config set --pgdata "$work/$1" timeout.network_partition_timeout 5 >/dev/null
    autoctl run --pgdata "$work/$1" >"$work/$1.log" 2>&1 &
    pids+=($!)
    eval "keeper_$1=$!"
}
node n1 "$p1"
for _ in $(seq 1 120); do state | grep -Eq '\| +single +\| +single' && break; sleep 0.5; done
node n2 "$p2"
for _ in $(seq 1 240); do
    state | grep -Eq '\| +secondary +\| +secondary' && break; sleep 0.5
done
state
sync=$(psql_at "$p1" -d closeloop -c 'SHOW synchronous_standby_names')
echo "synchronous_standby_names on the primary: $sync"
[ -n "$sync" ] || { echo "FAIL: replication is not synchronous" >&2; exit 1; }

phase "two Closeloop servers on the multi-host URL"
cargo build --quiet --locked --bin closeloop
BIN=${CARGO_TARGET_DIR:-target}/debug/closeloop
export DATABASE_URL="postgres://postgres@127.0.0.1:$p1,127.0.0.1:$p2/closeloop?target_session_attrs=read-write&connect_timeout=2"
"$BIN" migrate >/dev/null
key=$("$BIN" api-key create --name ha --role admin | tail -n 1)
python3 benches/ha_client.py sinks "$work" "$smtp_port" "$hook_port" &
pids+=($!)
serve() { # port instance [extra env]
    env ${3:-} RUST_LOG=warn BIND_ADDR=127.0.0.1:$1 INSTANCE_ID=$2 SMTP_URL=smtp://127.0.0.1:$smtp_port \
        PUBLIC_URL=http://127.0.0.1:$1 WEBHOOK_ALLOW_PRIVATE=true WEBHOOK_RETRY_BASE_SECONDS=1 \
        EMAIL_RETRY_BASE_SECONDS=1 EMAIL_CONCURRENCY=2 SMTP_POOL_SIZE=2 EMAIL_BATCH_SIZE=20 \
        EMAIL_LEASE_SECONDS=10 WEBHOOK_LEASE_SECONDS=10 DISPATCH_INTERVAL_MS=200 \
        ALERT_DELAY_SECONDS=0 "$BIN" >"$work/$2.log" 2>&1 &
    pids+=($!)
}
serve "$http1" app1
# The second server reads its reports and lists from the standby, a real streaming replica.
serve "$http2" app2 "DATABASE_READ_URL=postgres://postgres@127.0.0.1:$p2/closeloop"
for port in "$http1" "$http2"; do
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
done
base1="http://127.0.0.1:$http1"
api() { curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
api -X POST "$base1/api/v1/webhooks" -d "{\"url\":\"http://127.0.0.1:$hook_port/hook\",\"events\":[\"response.created\"]}" >/dev/null
sid=$(api -X POST "$base1/api/v1/surveys" -d '{"kind":"nps","name":"ha","throttle_days":0}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
need=$(python3 -c "print(int($LOAD_SECONDS*$RATE)+100)")
: >"$work/tokens"
for start in $(seq 0 1000 $((need - 1))); do
    python3 -c "import json;print(json.dumps({'channel':'link','contacts':[{'email':f'l{i}@example.com'} for i in range($start,min($start+1000,$need))]}))" >"$work/batch.json"
    api -X POST "$base1/api/v1/surveys/$sid/invitations" --data @"$work/batch.json" \
        | python3 -c 'import json,sys;[print(i["url"].rsplit("/",1)[1]) for i in json.load(sys.stdin)["items"]]' >>"$work/tokens"
done
echo "$(wc -l <"$work/tokens") link invitations for the answers"

phase "load: $RATE answers/s for ${LOAD_SECONDS}s through both servers; kill -9 of the primary node after ${KILL_AFTER}s"
# Emails being dispatched during the kill: 600 invitations of another survey (its report
# counters are other rows than the answers') over a slow SMTP sink, queued now and sent
# from 5 s into the load on.
sid2=$(api -X POST "$base1/api/v1/surveys" -d '{"kind":"csat","name":"ha mail","throttle_days":0}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
send_at=$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%SZ)
python3 -c "import json;print(json.dumps({'channel':'email','send_at':'$send_at','contacts':[{'email':f'e{i}@example.com'} for i in range(600)]}))" >"$work/batch.json"
api -X POST "$base1/api/v1/surveys/$sid2/invitations" --data @"$work/batch.json" >/dev/null
python3 benches/ha_client.py load "$work" "$LOAD_SECONDS" "$RATE" "$base1,http://127.0.0.1:$http2" <"$work/tokens" &
load_pid=$!
sleep $((KILL_AFTER - 2))
# A report served by the standby through app2's DATABASE_READ_URL, before the kill.
report=$(api "http://127.0.0.1:$http2/api/v1/surveys/$sid/report")
fallbacks=$(curl -s "http://127.0.0.1:$http2/metrics" | sed -n 's/^closeloop_db_read_fallback_total //p')
ready=$(curl -s "http://127.0.0.1:$http2/readyz")
echo "app2's report from the standby: $(echo "$report" | python3 -c 'import json,sys;print(json.load(sys.stdin)["responses"])') answers; reads that fell back to the primary: $fallbacks; readyz pools: $(echo "$ready" | python3 -c 'import json,sys;print(json.load(sys.stdin)["pools"])')"
[ "$fallbacks" = 0 ] || { echo "FAIL: app2's reads did not come from the replica" >&2; exit 1; }
sleep 2
# The whole node: its pg_autoctl processes (else the keeper restarts PostgreSQL at once, and
# that is a restart, not a failover) and the postmaster with its backends, by process id.
primary_pid=$(head -n 1 "$work/n1/postmaster.pid")
victims=$( (tree "$keeper_n1"; echo "$primary_pid") | sort -u | tr '\n' ' ')
kill -9 $victims 2>/dev/null || true
killed_at=$(date +%s.%N)
echo "killed the primary node with SIGKILL at +${KILL_AFTER}s: postmaster $primary_pid and the keeper's processes ($(echo $victims | wc -w) pids)"
# n2 takes writes when it is out of recovery and not read-only (pg_auto_failover keeps it
# read-only until the old primary is known to be down).
for _ in $(seq 1 300); do
    [ "$(psql_at "$p2" -d closeloop -c "select not pg_is_in_recovery() and current_setting('transaction_read_only') = 'off'" 2>/dev/null)" = t ] && break
    sleep 0.1
done
promoted_at=$(date +%s.%N)
echo "n2 takes writes $(python3 -c "print(round($promoted_at-$killed_at,1))") s after the kill"
state
wait "$load_pid"

phase "after the load: letting the queues drain"
for _ in $(seq 1 90); do
    left=$(psql_at "$p2" -d closeloop -c "select (select count(*) from invitations where channel='email' and status in ('scheduled','sending')) + (select count(*) from webhook_deliveries where status not in ('delivered','failed'))")
    [ "$left" = 0 ] && break
    sleep 1
done
psql_at "$p2" -d closeloop -F $'\t' -c "select id, status, sent_at from invitations where channel='email'" >"$work/emails.db"
psql_at "$p2" -d closeloop -F $'\t' -c "select id, status, delivered_at from webhook_deliveries" >"$work/hooks.db"
psql_at "$p2" -d closeloop -F $'\t' -c "select i.token, r.score from responses r join invitations i on i.id = r.invitation_id" >"$work/stored"
grep -h 'ERROR\|panicked' "$work/app1.log" "$work/app2.log" | head -n 5 >"$work/errors" || true

python3 - "$work" "$killed_at" "$promoted_at" "$left" "$started" <<'PY'
import json, sys, collections
work, killed, promoted, left, started = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
import time
acked = dict(l.rstrip("\n").split("\t") for l in open(f"{work}/acked.log") if l.strip())
stored = dict(l.rstrip("\n").split("\t") for l in open(f"{work}/stored") if l.strip())
lost = [t for t, s in acked.items() if stored.get(t) != s]
events = json.load(open(f"{work}/load.json"))
# Epoch of the load's start: the kill happened KILL_AFTER s in (events are relative).
by = collections.Counter(str(e[2]) for e in events)
bad = [e for e in events if e[2] != 303]
ok_times = sorted(e[0] + e[1] for e in events if e[2] == 303)
# Seconds without service: the longest gap between two acknowledged answers.
gap = max((b - a for a, b in zip(ok_times, ok_times[1:])), default=0.0)
slowest = max((e[1] for e in events), default=0.0)
no_retry = [e for e in events if e[2] == 503 and not e[3]]
others = [e for e in events if e[2] not in (303, 503)]
def dupes(log, db):
    sent = {}
    for l in open(db):
        if l.strip():
            i, status, at = (l.rstrip("\n").split("\t") + ["", ""])[:3]
            sent[i] = (status, at)
    seen = collections.defaultdict(list)
    try:
        for l in open(log):
            if l.strip():
                k, at = l.rstrip("\n").split("\t")
                seen[k.split("@")[0]].append(at)
    except FileNotFoundError:
        pass
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    # A violation: a copy received after the row was recorded as sent.
    after = [k for k, v in twice.items() if sent.get(k, ("", ""))[1] and sorted(v)[1] > sent[k][1]]
    recorded = sum(1 for s, _ in sent.values() if s in ("sent", "delivered", "responded"))
    return len(seen), len(twice), after, recorded, len(sent)
e_seen, e_twice, e_bad, e_rec, e_all = dupes(f"{work}/smtp.log", f"{work}/emails.db")
h_seen, h_twice, h_bad, h_rec, h_all = dupes(f"{work}/hooks.log", f"{work}/hooks.db")
errors = open(f"{work}/errors").read().strip()
print("== result")
print(f"answers acknowledged (303): {len(acked)}; stored with that score: {len(acked) - len(lost)}; LOST: {len(lost)}")
print(f"requests: {len(events)}; outcomes: {dict(by)}")
print(f"failover: n2 took writes {promoted - killed:.1f} s after the kill; longest gap between acknowledged answers: {gap:.1f} s")
print(f"slowest request: {slowest:.2f} s; 503 without Retry-After: {len(no_retry)}; other non-303 outcomes: {len(others)}")
print(f"emails: {e_all} invitations, {e_rec} recorded sent, {e_seen} distinct received, {e_twice} received twice, {len(e_bad)} received again after being recorded sent")
print(f"webhooks: {h_all} deliveries, {h_rec} recorded delivered, {h_seen} distinct received, {h_twice} received twice, {len(h_bad)} received again after being recorded delivered")
print(f"queues left undone: {left}; run took {int(time.time()) - started} s")
if errors:
    print("server log errors (first lines):\n" + errors)
fail = []
if lost: fail.append(f"{len(lost)} acknowledged answers lost")
if others: fail.append(f"clients saw {sorted(set(str(e[2]) for e in others))}")
if no_retry: fail.append("503 without Retry-After")
if slowest > 10: fail.append(f"a request hung {slowest:.1f} s")
if e_bad or h_bad: fail.append("a message recorded as sent was sent again")
if left != "0": fail.append("the queues did not drain")
if fail:
    print("FAIL: " + "; ".join(fail)); sys.exit(1)
print("PASS")
PY
