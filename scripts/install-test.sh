#!/usr/bin/env bash
# The packages as an administrator gets them: builds the amd64 .debs from the dev binaries
# (scripts/package.sh --dev), installs them on this machine with dpkg, checks the installed
# units with systemd-analyze verify, starts both daemons as their units would (their user,
# ExecStart, state directory; a notification socket standing in for systemd's, checked for
# READY=1 and WATCHDOG=1), imports the installed scenario and provisions one kiosk with the
# installed CLI, and lets the kiosk play about a minute of its schedule in real time: the
# server's report must hold its plays. Purges the packages and their data on exit.
#
# Needs root (dpkg, users). Leftovers of an earlier run are purged first. Ports: free ones
# found at run time (SIGNAGE_HTTP, SIGNAGE_EMBEDDED_BROKER), so a CI machine's own
# services do not collide. PLAY_SECONDS (default 60) sets how long the kiosk plays.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi

PLAY_SECONDS=${PLAY_SECONDS:-60}
SCREEN=bj-metro-tiananmen-east-s1
SERVER_UNIT=/usr/lib/systemd/system/signage.service
AGENT_UNIT=/usr/lib/systemd/system/signage-agent.service
work=$(mktemp -d /tmp/signage-install-test.XXXXXX)
chmod 0755 "$work"
pids=()

step() { echo "== install test: $*" >&2; }
show_logs() {
  for f in "$work"/*.log "$work"/*.notify; do
    [ -f "$f" ] || continue
    echo "---- $f (last 60 lines)" >&2
    tail -n 60 "$f" >&2
  done
}
fail() {
  echo "install test FAILED: $*" >&2
  show_logs
  exit 1
}
purge() {
  dpkg --purge signage signage-agent >/dev/null 2>&1 || true
  # The packages keep their data on purge (the ledger is evidence): this test's data goes.
  rm -rf /var/lib/signage /var/lib/signage-agent /etc/signage
}
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  purge
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# `KEY=` of a unit's [Service] section (the last one wins, as in systemd).
unit_key() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# Waits up to $3 seconds for a line $2 in the notification file $1.
wait_notified() {
  local file=$1 what=$2 secs=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    grep -qx "$what" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "no $what on $(basename "$file") within ${secs}s"
}

# Starts a unit's ExecStart as its User with its StateDirectory, logging to $work/NAME.log
# and notifying $work/NAME.notify. Extra environment: the remaining arguments.
start_as_unit() {
  local name=$1 unit=$2
  shift 2
  local user exec state
  user=$(unit_key "$unit" User)
  exec=$(unit_key "$unit" ExecStart)
  state=$(unit_key "$unit" StateDirectory)
  [ -n "$user" ] && [ -n "$exec" ] && [ -n "$state" ] || fail "$unit lacks User=, ExecStart= or StateDirectory="
  install -d -o "$user" -g "$user" -m "$(unit_key "$unit" StateDirectoryMode)" "/var/lib/$state"
  scripts/notify-listen.py "$work/$name.sock" "$work/$name.notify" &
  pids+=($!)
  for ((i = 0; i < 50; i++)); do [ -S "$work/$name.sock" ] && break; sleep 0.1; done
  local envs=()
  while IFS= read -r line; do envs+=("$line"); done < <(unit_key "$unit" Environment)
  # As systemd would: the unit's user and group, no new privileges, cwd /, a watchdog of
  # 4 s (pings every 2 s) so a minute shows many.
  (cd / && exec setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs \
    env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "${envs[@]}" "$@" \
    NOTIFY_SOCKET="$work/$name.sock" WATCHDOG_USEC=4000000 $exec) \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!"
}

step "building the packages (dev binaries)"
t0=$(date +%s)
[ -x target/debug/signage ] && [ -x target/debug/signage-agent ] || cargo build -p server -p agent --bins
scripts/package.sh --dev
server_deb=$(ls -t target/debian/signage_*_amd64.deb | head -n 1)
agent_deb=$(ls -t target/debian/signage-agent_*_amd64.deb | head -n 1)

step "installing $(basename "$server_deb") and $(basename "$agent_deb")"
purge
dpkg -i "$server_deb" "$agent_deb" >"$work/dpkg.log" 2>&1 || fail "dpkg -i"
if [ -d /run/systemd/system ]; then
  # A CI machine running systemd: postinst started the server; this test runs the units'
  # commands itself (to watch their notifications), so the real units step aside.
  systemctl stop signage.service signage-agent.service || true
fi
getent passwd signage >/dev/null || fail "no user signage after install"
getent passwd signage-agent >/dev/null || fail "no user signage-agent after install"
for f in /usr/bin/signage /usr/bin/signage-agent /etc/signage/server.toml /etc/signage/agent.toml \
  "$SERVER_UNIT" "$AGENT_UNIT" /usr/share/doc/signage/README.Debian \
  /usr/share/doc/signage-agent/README.Debian \
  /usr/share/signage/scenarios/beijing-role-models/scenario.json; do
  [ -e "$f" ] || fail "$f not installed"
done

step "systemd-analyze verify"
systemd-analyze verify "$SERVER_UNIT" "$AGENT_UNIT" >"$work/verify.log" 2>&1 || fail "systemd-analyze verify"
if grep -v "^$" "$work/verify.log" | grep -q .; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify warned"
fi
for key in Type=notify WatchdogSec=30 ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
  NoNewPrivileges=yes PrivateDevices=yes CapabilityBoundingSet= Restart=on-failure \
  "SystemCallFilter=@system-service" "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"; do
  for unit in "$SERVER_UNIT" "$AGENT_UNIT"; do
    grep -qx "$key" "$unit" || fail "$unit lacks $key"
  done
done

step "starting the server as signage.service would"
http_port=$(free_port)
broker_port=$(free_port)
url="http://127.0.0.1:$http_port"
start_as_unit server "$SERVER_UNIT" SIGNAGE_HTTP="127.0.0.1:$http_port" \
  SIGNAGE_EMBEDDED_BROKER="127.0.0.1:$broker_port"
wait_notified "$work/server.notify" READY=1 60
wait_notified "$work/server.notify" WATCHDOG=1 10
token=/var/lib/signage/admin.token
[ -s "$token" ] || fail "no admin token at $token"
[ "$(stat -c %U /var/lib/signage/admin.token)" = signage ] || fail "admin token not owned by signage"

step "importing the installed scenario (flights moved to today, venues open around the clock) and provisioning $SCREEN"
cp -r /usr/share/signage/scenarios/beijing-role-models "$work/scenario"
scripts/scenario-now.py "$work/scenario/scenario.json" --all-hours
/usr/bin/signage import "$work/scenario" --server "$url" --token-file "$token" >"$work/import.log" 2>&1 \
  || fail "signage import"
/usr/bin/signage screens provision "$SCREEN" --server "$url" --token-file "$token" \
  --out /etc/signage/agent.toml >"$work/provision.log" 2>&1 || fail "signage screens provision"
chgrp signage-agent /etc/signage/agent.toml
chmod 0640 /etc/signage/agent.toml

step "starting the agent as signage-agent.service would; playing ${PLAY_SECONDS}s"
start_as_unit agent "$AGENT_UNIT"
wait_notified "$work/agent.notify" READY=1 30
wait_notified "$work/agent.notify" WATCHDOG=1 10
sleep "$PLAY_SECONDS"
kill -0 "$server_pid" 2>/dev/null || fail "the server died"
kill -0 "$agent_pid" 2>/dev/null || fail "the agent died"

step "the server's report"
plays=0
for ((i = 0; i < 30; i++)); do
  /usr/bin/signage report plays --server "$url" --token-file "$token" --format csv >"$work/plays.csv" 2>"$work/report.log" \
    || fail "signage report plays"
  plays=$(grep -E "(^|,)$SCREEN(,|$)" "$work/plays.csv" | grep -c ",complete," || true)
  [ "$plays" -ge 3 ] && break
  sleep 1
done
# Independent of our report: 15-second slots, so a minute holds at least 3 whole plays.
[ "$plays" -ge 3 ] || fail "only $plays complete plays of $SCREEN in the server's report after ${PLAY_SECONDS}s"
head -n 1 "$work/plays.csv" >&2
grep -E "(^|,)$SCREEN(,|$)" "$work/plays.csv" | head -n 3 >&2

step "stopping (SIGTERM, as systemctl stop)"
kill -TERM "$agent_pid" "$server_pid"
wait "$agent_pid" || fail "the agent exited with $?"
wait "$server_pid" || fail "the server exited with $?"
wait_notified "$work/agent.notify" STOPPING=1 5
wait_notified "$work/server.notify" STOPPING=1 5
dogs_server=$(grep -cx WATCHDOG=1 "$work/server.notify")
dogs_agent=$(grep -cx WATCHDOG=1 "$work/agent.notify")
echo "install test passed in $(($(date +%s) - t0)) s: $plays complete plays of $SCREEN in ${PLAY_SECONDS}s; watchdog pings: server $dogs_server, agent $dogs_agent" >&2
