#!/usr/bin/env bash
# Installs what a fresh Debian machine with Rust lacks to build and test signage:
# FFmpeg development libraries and its command line (tests generate clips with it), clang
# (for ffmpeg-sys bindgen), pkg-config, Mosquitto (end-to-end tests start their own broker
# process), Chromium, its driver and a font with
# Chinese glyphs (the dashboard's and the kiosk page's browser tests).
set -euo pipefail

packages=(clang libclang-dev pkg-config libavcodec-dev libavformat-dev libavutil-dev
  libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev mosquitto ffmpeg)
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
