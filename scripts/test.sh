#!/usr/bin/env bash
# The tests: installs what is missing, checks formatting and lints, builds the binaries the
# end-to-end tests start, runs every test of the workspace, the API fuzzing and the
# package install test (root: it installs the .debs on this machine and purges them).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's wall time, printed as it ends (where CI's time goes).
phase() {
    local started=$SECONDS
    "$@"
    echo "== phase done in $((SECONDS - started)) s: $*" >&2
}
phase scripts/setup.sh --with-browser
phase cargo fmt --all --check
phase cargo clippy --workspace --all-targets -- -D warnings
# Supply chain: licences, bans and sources against deny.toml. Advisories are left out: their
# database is fetched from GitHub, which these machines cannot reach (README, Operations).
if ! command -v cargo-deny >/dev/null 2>&1; then
    cargo install cargo-deny --locked
fi
phase cargo deny check licenses bans sources
phase cargo build --workspace --bins
phase cargo test --workspace --no-fail-fast "$@"
# The API against its own OpenAPI document (Schemathesis on a live server).
phase scripts/api-fuzz.sh
# The .deb packages installed on this machine, their units run and a kiosk playing a minute.
phase scripts/install-test.sh
