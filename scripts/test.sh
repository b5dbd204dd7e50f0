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
# Tests of every binary side by side, each in a process of its own (.config/nextest.toml:
# how many at once, which take the machine alone). cargo-nextest is a test tool: installed
# when missing. It does not run doc tests; the workspace's doc comments hold no code to run
# (add `cargo test --doc` here with the first).
if ! command -v cargo-nextest >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
phase cargo nextest run --workspace --no-fail-fast "$@"
# The end-to-end tests that involve the server's store, again with the store in PostgreSQL
# (SIGNAGE_TEST_STORE=postgres: each TestEnv and test store its own database on
# 127.0.0.1:5432, dropped after it; tests/src/store.rs), browser tests included, and those
# that start `signage serve` processes (given `--store` beside `--data-dir`, as are the
# commands they run on the store). Left out: the kiosk and install ones, those whose server
# runs on the simulator's own redb store (e2e, simulate), and those that test redb itself
# (corruption; store_copy copies between both backends on every pass). In store_cli, the
# "held by a running server" checks are redb's file lock and run on redb only.
phase env SIGNAGE_TEST_STORE=postgres cargo nextest run -p tests --no-fail-fast -E \
    'binary(import) | binary(roles) | binary(approval) | binary(emergency_api) |
     binary(api_bad_input) | binary(live) | binary(emergency) | binary(epochs) |
     binary(forged) | binary(offline) | binary(crash) | binary(fleet_trust) |
     binary(renditions) | binary(video_renditions) | binary(ops_metrics) |
     binary(dashboard) | binary(session) | binary(ui_audit) | binary(ui_campaigns) |
     binary(ui_media_checks) | binary(ui_operator) | binary(ui_review) | binary(xss) |
     binary(journey) | binary(ops_cli) | binary(tls) | binary(notify) |
     binary(media_checks) | binary(media_gate) | binary(store_cli)'
# The API against its own OpenAPI document (Schemathesis on a live server).
phase scripts/api-fuzz.sh
# The .deb packages installed on this machine, their units run and a kiosk playing a minute.
phase scripts/install-test.sh
