#!/usr/bin/env bash
# The test command of README.md (and of .ci/run): installs what the integration tests use where
# it is missing, then runs `cargo test --locked` with any arguments given: unit tests, the
# integration binary, the rediss:// test, then the soak tier (tests/soak.rs).
#   redis-server  every integration test starts its own, on a Unix socket in a temporary directory
#   openssl       certificates for the rediss:// test
#   promtool      (Debian's prometheus package) lints the metrics scrape and the alert rules
#   chromium, npm the console's browser test, with playwright-core from tests/browser
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: ${missing[*]} (install them and run this again)" >&2
        exit 1
    fi
    echo "== installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
redis-server --version
promtool --version | head -1

if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
    echo "== npm ci (playwright-core for tests/soak/console_browser.rs)"
    npm ci --prefix tests/browser --no-audit --no-fund
fi

echo "== cargo test --locked $*"
cargo test --locked "$@"
