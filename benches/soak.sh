#!/usr/bin/env bash
# Soak: the release binary on SQLite under a steady ~8 answers/s (POST /s/{token}, 10 %
# detractors who open follow-ups, a comment on most answers, a report read every 10 s),
# recording the server's RSS once a minute. Loopback only; stops after SOAK_MINUTES.
# Usage: SOAK_MINUTES=30 RATE=8 bash benches/soak.sh   (output: target/soak/rss.csv)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${SOAK_MINUTES:-30}
RATE=${RATE:-8}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/closeloop}
[ -x "$BIN" ] || cargo build --release --quiet --bin closeloop
out=target/soak
mkdir -p "$out"
work=$(mktemp -d)
port=${PORT:-18095}
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export DATABASE_URL="sqlite://$work/soak.db"
"$BIN" migrate >/dev/null
key=$("$BIN" api-key create --name soak --role admin | tail -n 1)
RUST_LOG=warn WEBHOOK_ALLOW_PRIVATE=true BIND_ADDR=127.0.0.1:$port OUTBOX_DIR=$work/outbox PUBLIC_URL=http://127.0.0.1:$port \
  "$BIN" > "$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
python3 - "$port" "$key" "$pid" "$MINUTES" "$RATE" "$out/rss.csv" <<'PY'
import json, random, sys, time, urllib.request, urllib.parse, urllib.error
port, key, pid, minutes, rate, csv = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
base = f"http://127.0.0.1:{port}"
H = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect)
def api(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, headers=H,
                                 data=json.dumps(body).encode() if body is not None else None)
    return json.load(urllib.request.urlopen(req))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
survey = api("POST", "/api/v1/surveys", {"kind": "nps", "name": "soak", "throttle_days": 0})["id"]
need = int(minutes * 60 * rate * 1.05) + 1000
tokens = []
b = 0
while len(tokens) < need:
    items = api("POST", f"/api/v1/surveys/{survey}/invitations",
                {"channel": "link", "contacts": [{"email": f"s{b}-{i}@example.com", "properties": {"plan": random.choice(["free", "pro"])}} for i in range(1000)]})["items"]
    tokens += [it["url"].rsplit("/", 1)[1] for it in items]
    b += 1
out = open(csv, "w")
out.write("minute,rss_mb,answers,errors\n")
start = time.time(); sent = errors = 0; next_mark = 0
print(f"{len(tokens)} invitations; start RSS {rss():.1f} MB", flush=True)
while True:
    el = time.time() - start
    if el >= next_mark * 60:
        line = f"{next_mark},{rss():.1f},{sent},{errors}"
        out.write(line + "\n"); out.flush(); print(line, flush=True)
        if next_mark >= minutes: break
        next_mark += 1
    due = int(el * rate)
    while sent < due:
        tok = tokens[sent % len(tokens)]
        score = random.choice([0, 3, 6] + [7, 8] * 3 + [9, 10] * 6)
        form = {"score": score}
        if random.random() < 0.7: form["comment"] = "soak comment " * random.randint(1, 20)
        req = urllib.request.Request(f"{base}/s/{tok}", data=urllib.parse.urlencode(form).encode(), method="POST")
        try:
            opener.open(req).read()
        except urllib.error.HTTPError as e:
            if e.code != 303: errors += 1
        except Exception:
            errors += 1
        sent += 1
        if sent % 80 == 0:
            try: api("GET", f"/api/v1/surveys/{survey}/report?interval=day")
            except Exception: errors += 1
    time.sleep(0.02)
PY
echo "server peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MB"}')"
