#!/usr/bin/env python3
"""Stalled uploads against a running gateway: what they cost it, and whether it still answers.

Opens up to --connections connections that each announce a 64 KiB JSON body on
POST /v1/messages, send 60 000 bytes of it and stop. Prints the gateway's RSS and open
descriptors (from /proc/PID) and whether /healthz answers on a new connection: before, with the
uploads stalled, after --wait seconds (longer than http_body_timeout), and once they are closed.
Connections the kernel no longer queues (the gateway at its cap, the listen queue full) time out
on connect; after 50 of those it stops opening more.

Run against a gateway with a low open-file limit (from the repository root):

    (ulimit -n 1024; exec target/debug/cmpp-gateway run --config c.json) &
    python3 scripts/stalled_uploads.py --pid $! --port 8000 --connections 5000 --wait 12
"""

import argparse
import os
import socket
import time

HEAD = (
    b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    b"Content-Length: 65536\r\n\r\n"
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True, help="the gateway's process id")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--wait", type=float, default=12, help="seconds to hold them stalled")
    args = parser.parse_args()

    def rss():
        with open(f"/proc/{args.pid}/status") as status:
            return next(l.split()[1] for l in status if l.startswith("VmRSS")) + " kB"

    def fds():
        return len(os.listdir(f"/proc/{args.pid}/fd"))

    def healthz():
        try:
            s = socket.create_connection(("127.0.0.1", args.port), timeout=5)
        except OSError as e:
            return f"cannot connect ({e})"
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
            return s.recv(100).split(b"\r\n")[0].decode()
        except OSError as e:
            return f"no answer ({e})"
        finally:
            s.close()

    def report(stage):
        print(f"{stage}: rss {rss()}, fds {fds()}, /healthz: {healthz()}", flush=True)

    report("before")
    stalled, timed_out = [], 0
    while len(stalled) < args.connections and timed_out < 50:
        s = socket.socket()
        s.settimeout(0.05)
        try:
            s.connect(("127.0.0.1", args.port))
        except OSError:
            timed_out += 1
            s.close()
            continue
        s.setblocking(False)
        try:
            s.send(HEAD + b"x" * 60000)
        except BlockingIOError:
            pass
        stalled.append(s)
    time.sleep(2)
    report(f"{len(stalled)} uploads stalled ({timed_out} connects timed out)")
    time.sleep(args.wait)
    report(f"after {args.wait} s")
    for s in stalled:
        s.close()
    time.sleep(2)
    report("all closed")


if __name__ == "__main__":
    main()
