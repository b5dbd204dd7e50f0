#!/usr/bin/env bash
# Builds the Debian packages signage (server) and signage-agent (kiosk) for this machine's
# architecture into target/debian/, installing cargo-deb first when it is missing.
#
#   scripts/package.sh          release build of both binaries, then the packages
#   scripts/package.sh --dev    packages the dev binaries already built (target/debug, as
#                               `cargo build --workspace --bins` leaves them): no release
#                               compile, faster compression; what CI's install test uses
#
# Package contents: [package.metadata.deb] in server/Cargo.toml and agent/Cargo.toml, and
# packaging/ (units, default configs, README.Debian, maintainer scripts).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
mode=release
case "${1:-}" in
  "") ;;
  --dev) mode=dev ;;
  *) echo "usage: $0 [--dev]" >&2; exit 2 ;;
esac

if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

out=target/debian
mkdir -p "$out"
if [ "$mode" = release ]; then
  cargo build --release -p server -p agent --bins
  args=(--no-build)
else
  for bin in signage signage-agent; do
    [ -x "target/debug/$bin" ] || { echo "target/debug/$bin missing: run cargo build --workspace --bins first" >&2; exit 1; }
  done
  # cargo-deb maps target/release/ in the asset lists to the profile's directory.
  args=(--no-build --profile dev --fast)
fi
for pkg in server agent; do
  cargo deb -p "$pkg" "${args[@]}" --output "$out/" 2> >(grep -v "dev profile is not supported\|To enable debug symbols set\|profile.dist" >&2)
done
