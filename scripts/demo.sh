#!/usr/bin/env bash
# The demo: installs what is missing, builds, runs `signage demo` (arguments pass through,
# e.g. --keep-running).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/signage demo "$@"
