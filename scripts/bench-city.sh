#!/usr/bin/env bash
# A city's server on its own: `signage serve` (release build) with a generated city of N
# screens and a real Mosquitto holding every screen's retained schedule, no agents. Prints,
# per size: the import, the time from start until every schedule was sent, the server's and
# Mosquitto's memory once settled, and reports through the live API (`signage report
# venues --server`), on whole hours and on windows whose ends cut hours.
#
#   scripts/bench-city.sh [SCREENS...]          (default: 11000 50000)
#   CITY_STORE=postgres scripts/bench-city.sh   (the store in PostgreSQL on 127.0.0.1:5432,
#                                                a database of its own, dropped after)
#
# The city is `signage scenario generate`'s (about 3 venues per 11 screens) with the
# campaigns' flights moved to now - 1 day .. now + 6 days, so what is published plays now.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(11000 50000)
store_kind=${CITY_STORE:-redb}
for n in "${sizes[@]}"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench-city: a size is a number of screens, not \"$n\"" >&2; exit 2; }
done
case $store_kind in
  redb | postgres) ;;
  *) echo "bench-city: CITY_STORE is redb or postgres, not \"$store_kind\"" >&2; exit 2 ;;
esac

if [ -z "${SIGNAGE_BIN:-}" ]; then
  cargo build --release -q -p server --bin signage
  SIGNAGE_BIN=${CARGO_TARGET_DIR:-target}/release/signage
fi
signage=$SIGNAGE_BIN
command -v mosquitto >/dev/null || PATH=$PATH:/usr/sbin
command -v mosquitto >/dev/null || { echo "mosquitto not found: run scripts/setup.sh" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_s() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now_s)"; }
# Resident and peak resident memory of a process, in MiB.
memory() {
  awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {printf "%.0f MiB (peak %.0f MiB)", r/1024, h/1024}' "/proc/$1/status"
}
# Schedules the server has sent (empty while it is not up yet).
published() {
  { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } |
    awk '/^signage_schedules_published_total/ {print $2}' | head -n 1
}

work=$(mktemp -d)
pids=()
database=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$database" ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

for n in "${sizes[@]}"; do
  dir=$work/$n
  mkdir -p "$dir"
  echo "== $n screens ($store_kind store, $(nproc) cores)"
  # About 3 venues per 11 screens, and at least the base scenario's 42.
  venues=$((n * 3 / 11 > 42 ? n * 3 / 11 : 42))
  "$signage" scenario generate --venues "$venues" --screens "$n" --seed 1 --out "$dir/city" >/dev/null
  scripts/scenario-now.py "$dir/city/scenario.json"
  store=()
  if [ "$store_kind" = postgres ]; then
    database=city_bench_$$_$n
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $database" >/dev/null
    store=(--store "postgres://postgres@127.0.0.1:5432/$database")
  fi
  t=$(now_s)
  "$signage" import "$dir/city" --data-dir "$dir/data" "${store[@]}" >/dev/null
  echo "import: $(since "$t") s"

  mqtt=$(free_port)
  http=$(free_port)
  "$signage" broker mosquitto-config --data-dir "$dir/data" "${store[@]}" --out "$dir/mosquitto" --port "$mqtt" >/dev/null
  # As root, Mosquitto would drop to its own user, who cannot read these 0600 files.
  [ "$(id -u)" -ne 0 ] || echo "user root" >>"$dir/mosquitto/mosquitto.conf"
  mosquitto -c "$dir/mosquitto/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  broker=$!
  pids+=("$broker")
  sleep 1
  t=$(now_s)
  "$signage" serve --data-dir "$dir/data" "${store[@]}" --mqtt-url "mqtt://127.0.0.1:$mqtt" \
    --http "127.0.0.1:$http" --log-format json >"$dir/serve.log" 2>&1 &
  server=$!
  pids+=("$server")
  for i in $(seq 1 2400); do
    sent=$(published "$http")
    [ -n "$sent" ] && [ "${sent%.*}" -ge "$n" ] && break
    kill -0 "$server" 2>/dev/null || { tail -n 20 "$dir/serve.log" >&2; exit 1; }
    kill -0 "$broker" 2>/dev/null || { tail -n 20 "$dir/mosquitto.log" >&2; exit 1; }
    [ "$i" -lt 2400 ] || { echo "not every schedule sent after 10 minutes" >&2; exit 1; }
    sleep 0.25
  done
  echo "start until every schedule was sent: $(since "$t") s ($(published "$http") sent)"
  sleep 10
  echo "memory, settled: server $(memory "$server"), Mosquitto $(memory "$broker")"

  api=(--server "http://127.0.0.1:$http" --token-file "$dir/data/admin.token")
  hour=$(( $(date +%s) / 3600 * 3600 + 3600 ))
  at() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
  report() {
    local name=$1 from=$2 to=$3 t
    "$signage" report venues "${api[@]}" --from "$(at "$from")" --to "$(at "$to")" --format csv >/dev/null
    t=$(now_s)
    "$signage" report venues "${api[@]}" --from "$(at "$from")" --to "$(at "$to")" --format csv >"$dir/report.csv"
    echo "report per venue, $name: $(since "$t") s ($(($(wc -l <"$dir/report.csv") - 1)) venues; the command included)"
  }
  report "the next whole 24 hours" "$hour" $((hour + 86400))
  report "a day from 17m07s into an hour to 13m into one" $((hour + 1027)) $((hour + 86400 + 780))
  report "six hours, cut at both ends" $((hour + 7200 + 1500)) $((hour + 7200 + 6 * 3600 + 300))
  report "the next 6 days, cut at both ends" $((hour + 60)) $((hour + 6 * 86400 - 60))

  kill "$server" "$broker" 2>/dev/null || true
  wait "$server" "$broker" 2>/dev/null || true
  pids=()
  if [ -n "$database" ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $database" >/dev/null
    database=""
  fi
  rm -rf "$dir"
done
