#!/usr/bin/env bash
# All of Wavry's checks, as CI runs them: formatting, clippy, every test of the workspace with
# cargo-nextest (the gateway's a second time on PostgreSQL), the doc tests, every bench once in
# its quick test mode, then a short fuzz run of every fuzz target under fuzz/. Stops with a
# non-zero exit at the first step that fails (all tests run before that step fails).
#
# A test whose environment is missing (root, network namespaces, Xvfb, PostgreSQL, Chromium …)
# skips outside CI, and fails under CI: this script sets WAVRY_REQUIRE_ENV=1 when CI=true or
# when it runs as root (then scripts/setup.sh has installed everything a test needs). The
# closing line counts passed, failed and skipped tests; a skip under CI fails the run.
#
# Environment:
#   FUZZ_SECONDS  the fuzzing budget in seconds, split evenly across the fuzz targets
#                 (default 120; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-120}
case "$FUZZ_SECONDS" in
'' | *[!0-9]*)
    echo "test.sh: FUZZ_SECONDS must be a whole number of seconds, got '$FUZZ_SECONDS'" >&2
    exit 2
    ;;
esac

ci=0
if [ "${CI:-}" = "true" ]; then
    ci=1
    # Fresh clone, one build: incremental compilation only costs time and disk.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
if [ "$ci" -eq 1 ] || [ "$(id -u)" -eq 0 ]; then
    export WAVRY_REQUIRE_ENV=1
fi

# Each step says how long the run has taken so far: CI's budget is 18 minutes on 2 cores.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    bash scripts/setup.sh --test --fuzz
else
    bash scripts/setup.sh --test
fi

step "crate graph against docs/ARCHITECTURE.md"
python3 scripts/check_architecture.py

step "cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is its own workspace (without --all: not rift-core a second time).
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

# wavry-media's tests enable its openh264 feature (a dev-dependency on itself), so this one
# feature set serves clippy, the tests and the benches alike: nothing is built twice.
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# A throwaway PostgreSQL for the gateway's tests: its own data directory, trust auth, listening
# on 127.0.0.1 only, stopped and removed at exit.
pg_dir=""
pg_bin=""
pg_run=()
start_postgres() {
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
        echo "test.sh: PostgreSQL not installed: the gateway's PostgreSQL tests skip" >&2
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

# The fuzz targets' build, started in the background with the tests (below), or "".
fuzz_build_pid=""
stop_fuzz_build() {
    if [ -n "$fuzz_build_pid" ]; then
        # Its own process group (setsid): cargo-fuzz, cargo and every rustc stop together.
        kill -- -"$fuzz_build_pid" 2>/dev/null || true
        wait "$fuzz_build_pid" 2>/dev/null || true
        fuzz_build_pid=""
    fi
}

work=$(mktemp -d)
trap 'stop_fuzz_build; rm -rf "$work"; stop_postgres' EXIT
test_log="$work/nextest.log"
libtest_log="$work/libtest.log"
# wavry-testenv appends one line per skipped test here (a passing test's output is captured).
export WAVRY_SKIP_LOG="$work/skipped"
: >"$WAVRY_SKIP_LOG"
failed_steps=()

fuzz_targets=()
fuzz_each=0
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    target_list=$(cargo fuzz list)
    mapfile -t fuzz_targets <<<"$target_list"
    if [ -z "$target_list" ]; then
        echo "test.sh: cargo fuzz list found no fuzz targets under fuzz/" >&2
        exit 1
    fi
    # cargo-fuzz on stable Rust: `--sanitizer none` keeps libFuzzer's coverage instrumentation
    # (stable -C flags) and drops AddressSanitizer, the one part that needs nightly `-Z`.
    # Our code is safe Rust, so ASan would add little but a 5x slowdown.
    #
    # The fuzz build (release, its own target directory fuzz/target) runs in the background
    # while the tests build and run, at the lowest CPU priority: the test run leaves about
    # half of the 2 CI cores idle (most of its tests wait on real time), and the fuzz build
    # takes only what the tests leave, so it costs the run almost no wall time (nearly a
    # minute when it ran on its own). Its output is shown when it fails.
    echo "cargo fuzz build --sanitizer none: in the background, at nice 19"
    setsid nice -n 19 cargo fuzz build --sanitizer none >"$work/fuzz-build.log" 2>&1 &
    fuzz_build_pid=$!
fi

step "cargo nextest run --workspace"
start_postgres
cargo nextest run --workspace 2>&1 | tee "$test_log" || failed_steps+=("tests")

# The gateway's suite a second time, every test gateway on PostgreSQL (a database each): the
# same build, filtered to the one package.
if [ -n "${WAVRY_TEST_POSTGRES_URL:-}" ]; then
    step "wavry-gateway tests on PostgreSQL"
    WAVRY_TEST_GATEWAY_DB=postgres cargo nextest run --workspace -E 'package(wavry-gateway)' 2>&1 |
        tee -a "$test_log" || failed_steps+=("gateway tests on PostgreSQL")
fi

# cargo-nextest does not run doc tests; libtest does (in the same test profile).
step "cargo test --workspace --doc"
cargo test --workspace --doc 2>&1 | tee "$libtest_log" || failed_steps+=("doc tests")

# Every bench once, briefly: criterion runs each benchmark once when not given `--bench`, and
# the hand-written benches measure for a moment (wavry_testenv::bench_is_test).
step "cargo test --workspace --bench '*' (each bench once, in its quick test mode)"
cargo test --workspace --bench '*' 2>&1 | tee -a "$libtest_log" || failed_steps+=("benches")

# nextest's summary lines ("N tests run: P passed, F failed, S skipped"), then libtest's
# ("test result: ok. P passed; F failed; I ignored"); benches in test mode print no result line.
read -r tests_passed tests_failed tests_ignored < <(awk '
    /Summary \[/ && /tests? run:/ {
        for (i = 1; i <= NF; i++) {
            w = $(i + 1); gsub(/[,;]/, "", w)
            if (w == "passed") p += $i
            if (w == "failed" || w == "timed") f += $i
            if (w == "skipped") g += $i
        }
    }
    /^test result:/ {
        for (i = 1; i < NF; i++) {
            w = $(i + 1); gsub(/[,;]/, "", w)
            if (w == "passed") p += $i
            if (w == "failed") f += $i
            if (w == "ignored") g += $i
        }
    }
    END { print p + 0, f + 0, g + 0 }' "$test_log" "$libtest_log")
env_skipped=$(wc -l <"$WAVRY_SKIP_LOG")
tests_skipped=$((tests_ignored + env_skipped))

# The openh264 fallback is a cargo feature: make sure its round trip was built and ran.
if ! grep -Eq 'PASS .*openh264_roundtrip_and_keyframe' "$test_log"; then
    echo "test.sh: the openh264 round trip did not run" >&2
    failed_steps+=("openh264 round trip")
fi

summary() {
    if [ "$env_skipped" -gt 0 ]; then
        echo "skipped for a missing environment:"
        sed 's/^/  /' "$WAVRY_SKIP_LOG"
    fi
    echo "tests: ${tests_passed} passed, ${tests_failed} failed, ${tests_skipped} skipped"
}
if [ "${#failed_steps[@]}" -gt 0 ]; then
    summary
    echo "test.sh: failed: ${failed_steps[*]}" >&2
    exit 1
fi
if [ "$ci" -eq 1 ] && [ "$tests_skipped" -gt 0 ]; then
    summary
    echo "test.sh: CI skipped ${tests_skipped} tests; under CI every test must run" >&2
    exit 1
fi

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    # One budget for all targets, at least 5 s each.
    fuzz_each=$((FUZZ_SECONDS / ${#fuzz_targets[@]}))
    [ "$fuzz_each" -ge 5 ] || fuzz_each=5
    step "cargo fuzz build (${#fuzz_targets[@]} targets: ${fuzz_targets[*]}), started with the tests"
    build_status=0
    wait "$fuzz_build_pid" || build_status=$?
    fuzz_build_pid=""
    if [ "$build_status" -ne 0 ]; then
        cat "$work/fuzz-build.log"
        echo "test.sh: cargo fuzz build failed (exit $build_status)" >&2
        exit 1
    fi
    tail -n 1 "$work/fuzz-build.log"
    # Two targets at a time, one per core of the 2-core CI machine (libFuzzer runs one process
    # per target), so the fuzzing takes half the wall time.
    fuzz_dir="$work/fuzz"
    mkdir -p "$fuzz_dir"
    fuzz_failed=()
    for ((i = 0; i < ${#fuzz_targets[@]}; i += 2)); do
        pair=("${fuzz_targets[@]:i:2}")
        step "cargo fuzz run ${pair[*]} (${fuzz_each} s each, side by side)"
        pids=()
        for target in "${pair[@]}"; do
            cargo fuzz run --sanitizer none "$target" -- \
                -max_total_time="$fuzz_each" -timeout=10 -print_final_stats=1 \
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
    if [ "${#fuzz_failed[@]}" -gt 0 ]; then
        echo "test.sh: fuzz targets failed: ${fuzz_failed[*]}; the inputs are saved under fuzz/artifacts/<target>/" >&2
        exit 1
    fi
fi

step "all checks passed"
if [ "${#fuzz_targets[@]}" -gt 0 ]; then
    echo "fuzz: ${#fuzz_targets[@]} targets ran ${fuzz_each} s each without a failure"
fi
summary
