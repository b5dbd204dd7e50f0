#!/usr/bin/env bash
# Renditions, whole process, side by side: a 4K JPEG to a 1920x1080 JPEG (quality 85) with
# `signage media rendition` and with `vipsthumbnail` (Debian libvips-tools), 15 runs each
# after one warm-up, median and range in milliseconds.
#
#   scripts/bench-media.sh [SIGNAGE_BINARY] [INPUT.jpg]
#
# The binary defaults to target/release/signage (`cargo build --release -p server`), else
# target/debug/signage. The input defaults to a generated 3840x2160 test picture (FFmpeg's
# testsrc2 with noise, JPEG quality 2), so both tools decode the same detailed file.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-}"
if [ -z "$bin" ]; then
  bin=target/release/signage
  [ -x "$bin" ] || bin=target/debug/signage
fi
[ -x "$bin" ] || { echo "no signage binary at $bin: cargo build --release -p server" >&2; exit 1; }
command -v vipsthumbnail >/dev/null || { echo "vipsthumbnail missing: apt-get install libvips-tools" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
input="${2:-$work/in-4k.jpg}"
if [ -z "${2:-}" ]; then
  ffmpeg -v error -f lavfi -i "testsrc2=size=3840x2160:rate=1,noise=alls=20:allf=t" \
    -frames:v 1 -q:v 2 "$input"
fi
runs=15

# Prints "median min max" of the whole-process wall time of "$@" in ms over $runs runs.
measure() {
  "$@" >/dev/null 2>&1 # warm-up (page cache, dynamic linking)
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}'
}

read -r ours ours_min ours_max < <(measure "$bin" media rendition "$input" "$work/ours.jpg" --width 1920 --height 1080)
read -r vips vips_min vips_max < <(measure vipsthumbnail "$input" --size 1920x1080 -o "$work/vips.jpg[Q=85]")

echo "4K JPEG ($(stat -c %s "$input") bytes) -> 1920x1080 JPEG q85, whole process, median of $runs (min-max):"
printf '  %-28s %5d ms  (%d-%d)  %s bytes\n' "signage media rendition" "$ours" "$ours_min" "$ours_max" "$(stat -c %s "$work/ours.jpg")"
printf '  %-28s %5d ms  (%d-%d)  %s bytes\n' "vipsthumbnail" "$vips" "$vips_min" "$vips_max" "$(stat -c %s "$work/vips.jpg")"
echo "  signage binary: $bin"
