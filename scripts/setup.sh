#!/usr/bin/env bash
# Install what building and testing Wavry needs on a Debian/Ubuntu machine that has a Rust
# toolchain, and nothing that is already there. Safe to run again: quiet when all is present.
#
#   scripts/setup.sh           apt packages (and rustfmt/clippy if the toolchain lacks them)
#   scripts/setup.sh --test    also cargo-nextest, the test runner of scripts/test.sh
#   scripts/setup.sh --fuzz    also cargo-fuzz, for the fuzz targets under fuzz/
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# PACKAGES: the Debian/Ubuntu packages the build and the tests need. Add to this list when a
# crate starts to need a system library or a test needs a tool (Xvfb, FFmpeg -dev libs, ...).
# ---------------------------------------------------------------------------------------------
PACKAGES=(
    build-essential # cc/c++ for crates that build C (libfuzzer-sys builds libFuzzer in C++)
    pkg-config      # finds system libraries for -sys crates
    iproute2        # ip netns, veth and tc for the network-namespace transport tests
    # wavry-media: FFmpeg libraries (ffmpeg-next binds them through bindgen, hence libclang),
    # the ffmpeg CLI as an independent decoder in tests, Xvfb and X tools for capture tests.
    libavcodec-dev
    libavformat-dev
    libavutil-dev
    libswscale-dev
    libavfilter-dev
    libavdevice-dev
    libclang-dev
    clang
    ffmpeg
    xvfb
    x11-xserver-utils # xrandr: monitors and resolution changes under Xvfb
    x11-utils         # xwininfo, xdpyinfo
    xdotool
    nasm              # openh264 assembly (wavry-media feature openh264): 3x faster encode
    libsdl2-dev       # wavry-client's window, YUV textures, keyboard/mouse/game controllers
    postgresql        # the gateway's tests run on PostgreSQL too (test.sh starts a throwaway one)
    chromium          # headless, for the gateway's admin dashboard test
)

FUZZ=0
TEST=0
for arg in "$@"; do
    case "$arg" in
    --fuzz) FUZZ=1 ;;
    --test) TEST=1 ;;
    -h | --help)
        sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "setup.sh: unknown argument: $arg" >&2
        exit 2
        ;;
    esac
done

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*', and sudo is not installed"
    fi
}

# --- Rust toolchain: we expect it, we do not install it ------------------------------------
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install a stable Rust toolchain first (https://rustup.rs)"

# --- apt packages ----------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done
# scripts/check_architecture.py needs a Python 3; any on PATH will do.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing packages (${missing[*]}) and no apt-get: install them by hand"
    say "installing apt packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# --- rustfmt and clippy (a minimal rustup profile lacks them) --------------------------------
add_component() {
    command -v rustup >/dev/null 2>&1 ||
        die "rust component $1 is missing and rustup is not installed to add it"
    say "installing rustup component: $1"
    rustup component add "$1"
}
cargo fmt --version >/dev/null 2>&1 || add_component rustfmt
cargo clippy --version >/dev/null 2>&1 || add_component clippy

# --- cargo-nextest (only with --test): one process per test, per-test timeouts ---------------
if [ "$TEST" -eq 1 ] && ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest (cargo install cargo-nextest --locked)"
    cargo install cargo-nextest --locked
fi

# --- cargo-fuzz (only with --fuzz) -----------------------------------------------------------
if [ "$FUZZ" -eq 1 ] && ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi
