#!/usr/bin/env bash
# Runs every benchmark and prints the markdown table that goes into BENCHMARKS.md.
#   bash benches/run-all.sh            the full run (about 20-30 minutes on 2 cores)
#   QUICK=1 bash benches/run-all.sh    a short run (a few minutes): 5 s of wrk per case,
#                                      100,000 rows instead of 1,000,000, 3 report runs
# Each answers figure comes with the raw-insert ceiling of the same engine measured in the
# same run (examples/insert_ceiling.rs, one INSERT per request behind actix-web), so the
# ratio holds on a noisy machine. Needs wrk, sqlite3, psql, bc; PostgreSQL on 127.0.0.1
# (BENCH_POSTGRES_URL to change it). The full logs are kept in $OUT (default target/bench-all).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${CARGO_TARGET_DIR:-target}/bench-all}
mkdir -p "$OUT"
if [ "${QUICK:-0}" = 1 ]; then
  export DURATION=${DURATION:-5s} N=${N:-100000} RUNS=${RUNS:-3}
else
  export DURATION=${DURATION:-15s} N=${N:-1000000} RUNS=${RUNS:-5}
fi
export BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

echo "== answers (small and large database, both engines, with ceilings)" >&2
bash benches/answers.sh 2>&1 | tee "$OUT/answers.log" >&2
echo "== reports" >&2
bash benches/reports.sh 2>&1 | tee "$OUT/reports.log" >&2
echo "== dispatch" >&2
cargo bench --quiet --bench dispatch 2>&1 | tee "$OUT/dispatch.log" >&2

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Measured $(date -u +%Y-%m-%d) with \`${QUICK:+QUICK=1 }bash benches/run-all.sh\` (DURATION=$DURATION, N=$N) on $machine."
echo
echo "| answers \`POST /s/{token}\` at ${CONNS:-64} connections | answers/s | p50 ms | p99 ms | raw-insert ceiling, same run | share of ceiling | idle RSS MB | peak RSS MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
awk '
  $1 == "CEILING" && $3 == "insert" { ceil[$2] = $4 }
  $1 == "RESULT" { n++; e[n] = $2; s[n] = $3; r[n] = $4; p50[n] = $5; p99[n] = $6; idle[n] = $7; peak[n] = $8 }
  END {
    for (i = 1; i <= n; i++) {
      c = ceil[e[i]]
      printf "| %s, %s database | %d | %.1f | %.1f | %d/s | %.0f %% | %s | %s |\n", e[i], s[i], r[i], p50[i], p99[i], c, (c > 0 ? 100 * r[i] / c : 0), idle[i], peak[i]
      if (s[i] == "small") small[e[i]] = r[i]
      if (s[i] == "large") large[e[i]] = r[i]
    }
    for (k in small) if (k in large)
      printf "\nLarge against small on %s: %.0f %% (aim: within 15 %%).", k, 100 * large[k] / small[k]
    print ""
  }' "$OUT/answers.log"
echo
echo "| GET then POST (the customer opens the page, then submits it) | answers/s | p50 ms (GET and POST) | p99 ms (GET and POST) | peak RSS MB |"
echo "| --- | --- | --- | --- | --- |"
awk '$1 == "GETPOST" { printf "| %s, %s database | %d | %.1f | %.1f | %s |\n", $2, $3, $4, $5, $6, $7 }' "$OUT/answers.log"
grep '^CEILING any trivial' "$OUT/answers.log" | awk '{printf "\nTrivial actix-web handler (no storage), same run: %d req/s, p99 %.1f ms.\n", $4, $6}'
echo
echo "Reports (median of $RUNS, $N answers):"
echo
grep -E 'report \(|dashboard GET|CSV export' "$OUT/reports.log" | sed 's/^/- /'
echo
echo "Dispatch (in-process SMTP sink):"
echo
grep -E 'emails/s' "$OUT/dispatch.log" | sed 's/^/- /'
