#!/usr/bin/env bash
# Runs every test of cardguard on a fresh machine: installs the test oracles (the psec Python
# package, an independent implementation of the card cryptography, and pyiso8583, one of
# ISO 8583) and a real SMTP server for the notification tests (aiosmtpd) into a virtual
# environment inside the build folder, Debian's Chromium and playwright-core for the browser
# tests, then the whole workspace's tests. Tests that need the
# shared data (../shared/data: the mail corpus, the fraud handbook's transactions) are
# #[ignore]d: they run when the data is there, and the closing line counts them as skipped,
# by name, when it is not. PostgreSQL's tests get a throwaway server (scripts/postgres.sh).
# Needs only cargo and python3 (with venv; installed with apt-get
# when missing and the script runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/test-python
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv (apt-get)"
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    else
      echo "python3 -m venv failed: install python3-venv" >&2
      exit 1
    fi
  fi
fi
if ! "$venv/bin/python" -c 'import psec, iso8583, aiosmtpd' 2>/dev/null; then
  echo "installing the test oracles psec and pyiso8583, and the SMTP server aiosmtpd, into $venv (pip)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check psec==1.3.0 pyiso8583==4.0.1 aiosmtpd==1.4.6
fi
export CARDGUARD_PYTHON="$PWD/$venv/bin/python"

# The web pages are tested in a real browser: Debian's Chromium (with a Japanese font, so
# that the screenshots show the text), driven by playwright-core from the npm registry,
# which downloads no browser.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi ipagothic; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing chromium and fonts-ipafont-gothic (apt-get)"
    apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null; }
  else
    echo "chromium is missing and this is not root: the browser tests are skipped" >&2
  fi
fi
node_dir=target/test-node
if [ ! -f "$node_dir/node_modules/playwright-core/index.mjs" ] && command -v npm >/dev/null; then
  echo "installing playwright-core into $node_dir (npm)"
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm install --silent --no-audit --no-fund playwright-core@1.65.1)
fi
export CARDGUARD_PLAYWRIGHT="$PWD/$node_dir/node_modules/playwright-core"
if [ -x /usr/bin/chromium ] && [ -f "$CARDGUARD_PLAYWRIGHT/index.mjs" ]; then
  # The browser tests fail instead of passing quietly when the browser is missing.
  export CARDGUARD_REQUIRE_BROWSER=1
fi
# The oracle tests fail instead of passing quietly when the oracle is missing.
export CARDGUARD_REQUIRE_ORACLES=1

# The repositories' tests run on SQLite and on PostgreSQL: a throwaway cluster of Debian's
# postgresql (installed when missing) on a free port, stopped at the end.
if pg_url=$(scripts/postgres.sh start | tail -1); then
  export CARDGUARD_TEST_DATABASE_URL="$pg_url"
  export CARDGUARD_REQUIRE_POSTGRES=1
else
  echo "PostgreSQL could not be started: its tests are skipped" >&2
fi

shared=../shared/data
harness=()
if [ -d "$shared" ]; then
  harness=(--include-ignored)
else
  echo "$shared is absent: the tests that need it are skipped (listed at the end)"
fi

log=$(mktemp)
trap 'rm -f "$log"; scripts/postgres.sh stop || true' EXIT
cargo test --workspace --locked "$@" -- "${harness[@]}" 2>&1 | tee "$log"
# One closing line for the whole run (cargo ends with the doc tests' own count), with the
# skipped tests by name.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
grep -E '^test .* \.\.\. ignored' "$log" | sed -E 's/^test (.*) \.\.\. ignored(, )?(.*)$/  skipped: \1 (\3)/' || true
