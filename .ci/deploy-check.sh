#!/usr/bin/env bash
# Checks deploy/ without a container engine or systemd running:
# - deploy/compose.yaml against the Compose Specification's JSON schema (vendored in
#   check-jsonschema, so no network is needed once it is installed), plus what the schema
#   cannot say: two replicas built from the Dockerfile, PUBLIC_URL and health checks set,
#   PostgreSQL healthy before they start, Caddy balancing both on /readyz;
# - deploy/systemd/closeloop.service with `systemd-analyze verify` (ExecStart pointed at the
#   binary just built, since nothing is installed in /usr/local/bin here).
# Usage: bash .ci/deploy-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check check-jsonschema==0.39.0 2>&1 | grep -v "Running pip as the 'root' user" || true
check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
python3 - <<'PY'
import re, sys
from ruamel.yaml import YAML
doc = YAML(typ="safe").load(open("deploy/compose.yaml"))
s = doc["services"]
apps = [n for n, v in s.items() if n.startswith("closeloop")]
problems = []
if len(apps) < 2:
    problems.append(f"wanted two closeloop replicas, found {apps}")
for n in apps:
    v = s[n]
    env = v.get("environment", {})
    if v.get("build", {}).get("dockerfile") != "Dockerfile":
        problems.append(f"{n}: not built from the Dockerfile")
    for var in ("PUBLIC_URL", "DATABASE_URL", "SMTP_URL", "INSTANCE_ID", "DISPATCHER", "WEBHOOKS"):
        if var not in env:
            problems.append(f"{n}: {var} is not set")
    if "healthcheck" not in v:
        problems.append(f"{n}: no healthcheck")
    if v.get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append(f"{n}: does not wait for a healthy postgres")
if not s.get("postgres", {}).get("healthcheck"):
    problems.append("postgres: no healthcheck")
if not s.get("postgres", {}).get("image", "").startswith("postgres:15"):
    problems.append("postgres: not postgres:15")
if "mailpit" not in s:
    problems.append("no mailpit")
caddy = open("deploy/Caddyfile").read()
upstreams = re.search(r"reverse_proxy\s+([^{]+)\{", caddy)
targets = upstreams.group(1).split() if upstreams else []
if sorted(t.split(":")[0] for t in targets) != sorted(apps):
    problems.append(f"Caddyfile balances {targets}, the replicas are {apps}")
if "health_uri /readyz" not in caddy:
    problems.append("Caddyfile: no active health check on /readyz")
if problems:
    sys.exit("FAIL: deploy/compose.yaml: " + "; ".join(problems))
print(f"deploy/compose.yaml: {len(apps)} replicas behind Caddy on /readyz, postgres, mailpit")
PY
if ! command -v systemd-analyze >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
cargo build --quiet --locked --bin closeloop
bin=$(realpath "${CARGO_TARGET_DIR:-target}/debug/closeloop")
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
sed "s#^ExecStart=/usr/local/bin/closeloop#ExecStart=$bin#" deploy/systemd/closeloop.service >"$unit_dir/closeloop.service"
# verify prints problems and exits non-zero on errors; any output at all is a failure here.
out=$(systemd-analyze verify "$unit_dir/closeloop.service" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then echo "$out" >&2; echo "FAIL: systemd-analyze verify complained" >&2; exit 1; fi
echo "deploy/systemd/closeloop.service: systemd-analyze verify passed"
echo "exposure (systemd-analyze security, lower is safer):"
systemd-analyze security --offline=true "$unit_dir/closeloop.service" 2>/dev/null | tail -n 1 || true
