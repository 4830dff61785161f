#!/usr/bin/env bash
# All of Wavry's checks, as CI runs them: formatting, clippy, every test of the workspace, the
# wavry-media tests of the openh264 feature, then a short fuzz run of every fuzz target under fuzz/ (each target `cargo fuzz list` shows). Stops
# with a non-zero exit at the first step that fails (all tests run before that step fails).
#
# Environment:
#   FUZZ_SECONDS  seconds of fuzzing per target (default 30; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
case "$FUZZ_SECONDS" in
'' | *[!0-9]*)
    echo "test.sh: FUZZ_SECONDS must be a whole number of seconds, got '$FUZZ_SECONDS'" >&2
    exit 2
    ;;
esac

if [ "${CI:-}" = "true" ]; then
    # Fresh clone, one build: incremental compilation only costs time and disk.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

# Each step says how long the run has taken so far: CI's budget is 30 minutes on 2 cores.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    bash scripts/setup.sh --fuzz
else
    bash scripts/setup.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is its own workspace (without --all: not rift-core a second time).
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# A throwaway PostgreSQL for the gateway's tests: its own data directory, trust auth, listening
# on 127.0.0.1 only, stopped and removed at exit. Without PostgreSQL that test skips.
pg_dir=""
pg_bin=""
pg_run=()
start_postgres() {
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
        echo "test.sh: PostgreSQL not installed: the gateway's PostgreSQL test skips" >&2
        return 0
    fi
    pg_dir=$(mktemp -d)
    # initdb refuses to run as root: the cluster belongs to the postgres user then.
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$pg_dir"
        pg_run=(runuser -u postgres --)
    fi
    local port=$((40000 + $$ % 20000))
    "${pg_run[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U wavry --auth=trust -E UTF8 >/dev/null
    "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
    export WAVRY_TEST_POSTGRES_URL="postgres://wavry@127.0.0.1:$port/postgres"
    echo "PostgreSQL for the tests: $WAVRY_TEST_POSTGRES_URL"
}
stop_postgres() {
    if [ -n "$pg_dir" ]; then
        "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}

step "cargo test --workspace"
test_log=$(mktemp)
trap 'rm -f "$test_log"; stop_postgres' EXIT
start_postgres
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log"
# The gateway's whole suite a second time, every test gateway on PostgreSQL (a database each).
if [ -n "${WAVRY_TEST_POSTGRES_URL:-}" ]; then
    step "wavry-gateway tests on PostgreSQL"
    # The test binaries the workspace run built, run directly: `cargo test -p wavry-gateway`
    # would unify features differently and rebuild axum and sqlx (about 2 minutes). Cargo runs
    # a test binary in its package's directory; so does this.
    mapfile -t gateway_tests < <(cargo test --workspace --no-run --message-format=json 2>/dev/null |
        grep -o '"package_id":"[^"]*/wavry-gateway[#" ][^"]*".*"executable":"[^"]*"' |
        sed 's/.*"executable":"\([^"]*\)"$/\1/')
    if [ "${#gateway_tests[@]}" -eq 0 ]; then
        echo "test.sh: found no wavry-gateway test binaries to run on PostgreSQL" >&2
        exit 1
    fi
    gateway_failed=0
    for bin in "${gateway_tests[@]}"; do
        (cd crates/wavry-gateway && WAVRY_TEST_GATEWAY_DB=postgres "$bin") 2>&1 |
            tee -a "$test_log" || gateway_failed=1
    done
    if [ "$gateway_failed" -ne 0 ]; then
        echo "test.sh: wavry-gateway tests failed on PostgreSQL" >&2
        exit 1
    fi
fi
# Sum the "test result:" lines of every test binary and doc-test run.
read -r tests_passed tests_failed tests_ignored < <(awk '
    /^test result:/ {
        for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) g += $i
        }
    }
    END { print p + 0, f + 0, g + 0 }' "$test_log")

# openh264 is a cargo feature (it builds Cisco's C++ source), off in the workspace run above.
# Build it and run only the wavry-media tests that use it: the codec round trip and keyframe
# (filtered by name) and the no-allocation stream (x264 and openh264 in one test).
step "wavry-media --features openh264: clippy, codec and no_alloc tests"
cargo clippy -p wavry-media --all-targets --features openh264 -- -D warnings
h264_log=$(mktemp)
trap 'rm -f "$test_log" "$h264_log"; stop_postgres' EXIT
cargo test -p wavry-media --features openh264 --no-fail-fast --test codec -- openh264 2>&1 | tee "$h264_log"
cargo test -p wavry-media --features openh264 --no-fail-fast --test no_alloc 2>&1 | tee -a "$h264_log"
read -r h264_passed h264_failed h264_ignored < <(awk '
    /^test result:/ {
        for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) g += $i
        }
    }
    END { print p + 0, f + 0, g + 0 }' "$h264_log")
tests_passed=$((tests_passed + h264_passed))
tests_failed=$((tests_failed + h264_failed))
tests_ignored=$((tests_ignored + h264_ignored))
if ! grep -q "openh264_roundtrip_and_keyframe ... ok" "$h264_log"; then
    echo "test.sh: the openh264 round trip did not run" >&2
    exit 1
fi

fuzz_targets=()
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    # cargo-fuzz on stable Rust: `--sanitizer none` keeps libFuzzer's coverage instrumentation
    # (stable -C flags) and drops AddressSanitizer, the one part that needs nightly `-Z`.
    # Our code is safe Rust, so ASan would add little but a 5x slowdown.
    target_list=$(cargo fuzz list)
    mapfile -t fuzz_targets <<<"$target_list"
    if [ -z "$target_list" ]; then
        echo "test.sh: cargo fuzz list found no fuzz targets under fuzz/" >&2
        exit 1
    fi
    step "cargo fuzz build (${#fuzz_targets[@]} targets: ${fuzz_targets[*]})"
    cargo fuzz build --sanitizer none
    # Two targets at a time, one per core of the 2-core CI machine (libFuzzer runs one process
    # per target), so the fuzzing takes half the wall time.
    fuzz_dir=$(mktemp -d)
    fuzz_failed=()
    for ((i = 0; i < ${#fuzz_targets[@]}; i += 2)); do
        pair=("${fuzz_targets[@]:i:2}")
        step "cargo fuzz run ${pair[*]} (${FUZZ_SECONDS} s each, side by side)"
        pids=()
        for target in "${pair[@]}"; do
            cargo fuzz run --sanitizer none "$target" -- \
                -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 \
                >"$fuzz_dir/$target.log" 2>&1 &
            pids+=($!)
        done
        for j in "${!pair[@]}"; do
            target=${pair[j]}
            if wait "${pids[j]}"; then
                echo "$target: $(grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs' "$fuzz_dir/$target.log" ||
                    tail -n 5 "$fuzz_dir/$target.log")"
            else
                tail -n 80 "$fuzz_dir/$target.log"
                fuzz_failed+=("$target")
            fi
        done
    done
    rm -rf "$fuzz_dir"
    if [ "${#fuzz_failed[@]}" -gt 0 ]; then
        echo "test.sh: fuzz targets failed: ${fuzz_failed[*]}; the inputs are saved under fuzz/artifacts/<target>/" >&2
        exit 1
    fi
fi

printf '\n==> all checks passed\n'
if [ "${#fuzz_targets[@]}" -gt 0 ]; then
    echo "fuzz: ${#fuzz_targets[@]} targets ran ${FUZZ_SECONDS} s each without a failure"
fi
echo "tests: ${tests_passed} passed, ${tests_failed} failed, ${tests_ignored} skipped"
