#!/usr/bin/env bash
# Wavry's main job: build in release mode and run `wavry demo`, passing any arguments through
# (try `scripts/demo.sh --help`). Installs missing build dependencies first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
exec cargo run --release -p wavry -- demo "$@"
