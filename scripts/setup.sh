#!/usr/bin/env bash
# Installs what a fresh Debian machine with Rust lacks to build and test signage:
# FFmpeg development libraries and the ffmpeg command line (tests make and check
# videos with ffmpeg and ffprobe), clang (for ffmpeg-sys bindgen), pkg-config, Mosquitto
# (end-to-end tests start their own broker process), Chromium, its driver and a font with
# Chinese glyphs (the dashboard's and the kiosk page's browser tests); dpkg-dev (cargo-deb's
# dependency computation) and systemd (systemd-analyze verify) for the package install test.
set -euo pipefail

packages=(clang libclang-dev pkg-config libavcodec-dev libavformat-dev libavutil-dev
  libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev ffmpeg mosquitto dpkg-dev
  systemd)
if [ "${1:-}" = "--with-browser" ]; then
  packages+=(chromium chromium-driver fonts-wqy-microhei)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

# Services the tests need: PostgreSQL on 127.0.0.1:5432 (user postgres, trust on loopback; the
# tests create and drop their own databases) and the nats-server binary (the cluster test starts
# its own nodes). Started here when they are not running, as on a fresh machine.
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "PostgreSQL is not listening on 127.0.0.1:5432: installing and starting it" >&2
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! $SUDO grep -q "^host all postgres 127.0.0.1/32 trust" "$hba"; then
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  $SUDO pg_ctlcluster "$version" main start 2>/dev/null || $SUDO pg_ctlcluster "$version" main reload
  for _ in $(seq 1 30); do
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break
    sleep 1
  done
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
fi
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nats-server >/dev/null
fi
