#!/usr/bin/env bash
# The HTTP API against its own OpenAPI document: starts a real `signage serve` (embedded
# broker and store in a temporary directory, the Beijing scenario imported), then
# Schemathesis generates requests for every operation of /api/v1/openapi.json with the
# admin's token (every role): no response may be a 500, and every documented response
# must match its schema. Needs target/debug/signage (scripts/test.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION=4.32.5
if ! command -v st >/dev/null || ! st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION" >&2
  python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
bin=target/debug/signage
[ -x "$bin" ] || cargo build -p server --bin signage
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
mqtt_port=$(free_port)
cat > "$work/config.toml" <<CONFIG
http = "127.0.0.1:$http_port"
embedded_broker = "127.0.0.1:$mqtt_port"
CONFIG
"$bin" import scenarios/beijing-role-models --data-dir "$work/store" >/dev/null
"$bin" serve --data-dir "$work/store" --config "$work/config.toml" >"$work/serve.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
base="http://127.0.0.1:$http_port"
python3 - "$base/health" <<'WAIT'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("the server did not answer /health")
WAIT
token=$(cat "$work/store/admin.token")
status=0
st run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${API_FUZZ_EXAMPLES:-30}" \
  --workers 2 --seed 42 --no-color \
  --request-timeout 60 \
  --suppress-health-check too_slow,filter_too_much \
  --report junit --report-dir "${API_FUZZ_REPORT_DIR:-target/schemathesis}" || status=$?
if [ "$status" -ne 0 ] && grep -q " ERROR " "$work/serve.log"; then
  echo "the server logged these errors during the run:" >&2
  grep -A3 " ERROR " "$work/serve.log" | tail -40 >&2
fi
if grep -q "panicked" "$work/serve.log"; then
  echo "the server panicked during the run:" >&2
  grep -A5 panicked "$work/serve.log" >&2
  status=1
fi
exit $status
