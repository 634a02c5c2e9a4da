#!/usr/bin/env bash
# Runs every test of cardguard on a fresh machine: installs the test oracle (the psec Python
# package, an independent implementation of the card cryptography), then the whole
# workspace's tests. Needs only cargo and python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import psec' 2>/dev/null; then
  echo "installing the psec test oracle (pip)"
  python3 -m pip install --quiet --disable-pip-version-check psec==1.3.0
fi
# The oracle tests fail instead of skipping when the oracle is missing.
export CARDGUARD_REQUIRE_ORACLES=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
# One closing line for the whole run (cargo ends with the doc tests' own count).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
