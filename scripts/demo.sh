#!/usr/bin/env bash
# The end-to-end demo: a local redis-server, the built-in ISMG simulator and the gateway with the
# repository's config.json, then one message sent through HTTP and its state. Ctrl-C stops
# everything this script started (and only that).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "== installing redis-server with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server is missing: install it (Debian: apt-get install redis-server) and run this again" >&2
        exit 1
    fi
fi

echo "== building (release)"
cargo build --release --locked --quiet
BIN=target/release/cmpp-gateway
LOGS=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # command description
    for _ in $(seq 100); do
        if eval "$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not start; logs in $LOGS" >&2
    exit 1
}

if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "== using the redis-server already on 127.0.0.1:6379"
else
    echo "== starting redis-server on 127.0.0.1:6379"
    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no >"$LOGS/redis.log" 2>&1 &
    pids+=($!)
    wait_for "redis-cli -h 127.0.0.1 -p 6379 ping" redis-server
fi

echo "== starting the ISMG simulator on 127.0.0.1:7890 (control: 127.0.0.1:7891)"
"$BIN" simulator --listen 127.0.0.1:7890 --control 127.0.0.1:7891 --report-delay 500ms \
    >"$LOGS/simulator.out" 2>"$LOGS/simulator.log" &
pids+=($!)
wait_for "curl -sf http://127.0.0.1:7891/stats" simulator

echo "== starting the gateway with config.json (HTTP on 127.0.0.1:8000)"
"$BIN" run --config config.json 2>"$LOGS/gateway.log" &
pids+=($!)
wait_for "curl -sf http://127.0.0.1:8000/readyz" gateway

SEND="curl -s -X POST http://127.0.0.1:8000/v1/messages -H 'Content-Type: application/json' -d '{\"to\":\"13800138000\",\"text\":\"你好, CMPP\"}'"
echo
echo "send a message:"
echo "  $SEND"
ANSWER=$(eval "$SEND")
echo "  -> $ANSWER"
ID=$(printf '%s' "$ANSWER" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
sleep 1
echo "see its state:"
echo "  curl -s http://127.0.0.1:8000/v1/messages/$ID"
echo "  -> $(curl -s "http://127.0.0.1:8000/v1/messages/$ID")"
echo
echo "the link: curl -s http://127.0.0.1:8000/v1/link    the simulator: curl -s http://127.0.0.1:7891/stats"
echo "the console: http://127.0.0.1:8000/ in a browser    metrics: curl -s http://127.0.0.1:8000/metrics"
echo "logs: $LOGS    Ctrl-C stops the demo."
wait
