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

# Prints "median min max cpu" of "$@" over $runs runs: whole-process wall time in ms, and
# the median CPU time (user + system, ms), which a busy machine disturbs less.
measure() {
  "$@" >/dev/null 2>&1 # warm-up (page cache, dynamic linking)
  local log="$work/times"
  : >"$log"
  local TIMEFORMAT='%R %U %S'
  for _ in $(seq "$runs"); do
    { time "$@" >/dev/null 2>&1; } 2>>"$log"
  done
  local walls cpus m
  walls=$(awk '{print int($1 * 1000)}' "$log" | sort -n)
  cpus=$(awk '{print int(($2 + $3) * 1000)}' "$log" | sort -n)
  m=$(((runs + 1) / 2))
  echo "$(sed -n "${m}p" <<<"$walls") $(head -1 <<<"$walls") $(tail -1 <<<"$walls") $(sed -n "${m}p" <<<"$cpus")"
}

read -r ours ours_min ours_max ours_cpu < <(measure "$bin" media rendition "$input" "$work/ours.jpg" --width 1920 --height 1080)
read -r vips vips_min vips_max vips_cpu < <(measure vipsthumbnail "$input" --size 1920x1080 -o "$work/vips.jpg[Q=85]")

echo "4K JPEG ($(stat -c %s "$input") bytes) -> 1920x1080 JPEG q85, whole process, median of $runs:"
echo "  (wall ms, min-max; CPU ms = user + system; load average $(cut -d' ' -f1 /proc/loadavg))"
printf '  %-26s wall %5d ms (%d-%d)  CPU %5d ms  %s bytes\n' "signage media rendition" "$ours" "$ours_min" "$ours_max" "$ours_cpu" "$(stat -c %s "$work/ours.jpg")"
printf '  %-26s wall %5d ms (%d-%d)  CPU %5d ms  %s bytes\n' "vipsthumbnail" "$vips" "$vips_min" "$vips_max" "$vips_cpu" "$(stat -c %s "$work/vips.jpg")"
echo "  signage binary: $bin"
