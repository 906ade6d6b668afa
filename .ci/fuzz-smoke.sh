#!/usr/bin/env bash
# Runs every fuzz target briefly from its seed corpus and fails on any crash.
#
# Usage: .ci/fuzz-smoke.sh [seconds per target]   (default 9: six targets stay under 60 s)
#
# cargo-fuzz needs nightly-only sanitizer flags; with a stable toolchain they are unlocked
# with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed once (cached in ~/.cargo/bin).
set -euo pipefail

cd "$(dirname "$0")/.."
per_target="${1:-9}"
targets=(lines frame envelope json_str models agent_name)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo fuzz has no --locked: check the lock file first, so a stale one fails rather than
# being rewritten.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
cargo fuzz build -O

status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "--- fuzzing $target for ${per_target}s"
    if ! cargo fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$per_target" -print_final_stats=1 2>"fuzz/$target.log"; then
        echo "FAIL: $target crashed; the reproducer is in fuzz/artifacts/$target/" >&2
        grep -A5 'panicked at' "fuzz/$target.log" >&2 || tail -20 "fuzz/$target.log" >&2
        status=1
    else
        grep -E '^stat::number_of_executed_units' "fuzz/$target.log" || true
    fi
done
exit "$status"
