#!/usr/bin/env bash
# Transcoding throughput, side by side on the same input: seconds of video transcoded per
# second of wall time by our transcoder (`signage media transcode`, ffmpeg-next) and by the
# `ffmpeg` command line with the same settings (scale to fit 1920x1080, fps=30, yuv420p,
# libx264 veryfast crf 23 High 4.2, AAC 128 kb/s 48 kHz stereo, fast-start MP4).
#
#   scripts/bench-transcode.sh [SECONDS]      (default 8 s of 2560x1440 at 60 fps VP9)
#
# Uses target/release/signage when built (cargo build --release -p server), else the dev
# build (the heavy work is in FFmpeg's C libraries either way). Best of 3 runs each.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-8}
bin=${SIGNAGE_BIN:-target/release/signage}
[ -x "$bin" ] || bin=target/debug/signage
[ -x "$bin" ] || { echo "build signage first: cargo build -p server --bins" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "input: $seconds s of 2560x1440 at 60 fps VP9 with Opus audio (testsrc2, sine)"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=2560x1440:rate=60:duration=$seconds" \
  -f lavfi -i "sine=frequency=440:duration=$seconds" \
  -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 6M -c:a libopus "$dir/in.webm"

now() { date +%s.%N; }
best() { # best wall time of 3 runs of "$@"
  local best=""
  for _ in 1 2 3; do
    local t0 t1
    t0=$(now); "$@" >/dev/null; t1=$(now)
    best=$(awk -v a="$t0" -v b="$t1" -v c="$best" 'BEGIN { t = b - a; if (c == "" || t < c) c = t; printf "%.3f", c }')
  done
  echo "$best"
}

ours=$(best "$bin" media transcode --no-loudness "$dir/in.webm" "$dir/ours.mp4")
ours_loud=$(best "$bin" media transcode "$dir/in.webm" "$dir/ours-loud.mp4")
cli=$(best ffmpeg -v error -y -i "$dir/in.webm" \
  -vf "scale=1920:1080:flags=bicubic,fps=30,format=yuv420p,setsar=1" \
  -c:v libx264 -preset veryfast -crf 23 -profile:v high -level:v 4.2 \
  -c:a aac -b:a 128k -ar 48000 -ac 2 -movflags +faststart "$dir/cli.mp4")

row() { awk -v n="$1" -v t="$2" -v s="$seconds" 'BEGIN { printf "%-48s %7.2f s  %6.2f s of video/s\n", n, t, s / t }'; }
echo
row "ours (signage media transcode --no-loudness)" "$ours"
row "ffmpeg command line, same settings" "$cli"
row "ours with the loudness pass (normalised)" "$ours_loud"
for f in ours cli; do
  printf '%-5s %s\n' "$f" "$(ffprobe -v error -select_streams v:0 \
    -show_entries stream=codec_name,profile,level,width,height,avg_frame_rate -of csv=p=0 "$dir/$f.mp4") \
    $(stat -c %s "$dir/$f.mp4") bytes"
done
