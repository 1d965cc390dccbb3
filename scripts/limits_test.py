#!/usr/bin/env python3
"""Every door of a real `aegis serve` node is bounded, and large writes do not stall it.

Three `aegis serve` processes on loopback (see aegis_procs.py). Each check prints a line;
a JSON summary ends the run; the exit code is non-zero on any failure.

- A SET of a value at the maximum size commits within a second; one byte more is refused
  at once (before anything is logged); other writes keep committing meanwhile.
- A 10 MB MSET commits without a leader change.
- Doors, each with the leader's RSS (from /proc) before and after, against a stated bound,
  while another client keeps being answered:
  * more connections than the maximum;
  * pipelined GETs of a large value on connections that never read;
  * unfinished bulk strings on several connections;
  * a flood of bytes on the peer port before any handshake.
"""
import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

from checks import check, results
from aegis_procs import HOST, IDS, PEER, RESP, Cluster

figures = {}




def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Background:
    """A client that keeps writing through the cluster and records the longest gap."""

    def __init__(self, cl, node):
        self.cl, self.node = cl, node
        self.stop = threading.Event()
        self.ok = self.errors = 0
        self.longest = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        c = self.cl.client(self.node)
        last = time.time()
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                c.set(f"bg{n % 100}", str(n))
                self.ok += 1
                now = time.time()
                self.longest = max(self.longest, now - last)
                last = now
            except Exception:
                self.errors += 1
                time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def raw(port):
    s = socket.create_connection((HOST, port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return s


def resp(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


def closed_now(s):
    """True if the server has closed `s` (drains what is already there, never waits)."""
    s.setblocking(False)
    try:
        while True:
            data = s.recv(1 << 20)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def is_closed(s, timeout=10.0):
    """True once the server closed `s` (reads drain what it sent)."""
    s.settimeout(0.2)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            data = s.recv(1 << 20)
            if not data:
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--max-value", type=int, default=1 << 20, help="the server's maximum value size (--max-value-bytes)")
    ap.add_argument("--rss-bound-mb", type=float, default=512.0, help="the leader's RSS must stay under this")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-limits-")
    cl = Cluster(os.path.abspath(args.aegis), work, election_ticks=100, extra=["--max-clients", "200"])
    started = time.time()
    try:
        for n in IDS:
            cl.start(n)
        leader = cl.wait_leader()
        check("a leader is elected", leader is not None)
        pid = cl.procs[leader].pid
        follower = [n for n in IDS if n != leader][0]
        term0 = int(cl.info(leader)["term"])

        with Background(cl, follower) as bg:
            c = cl.client(leader)
            big = b"x" * args.max_value
            t0 = time.time()
            ok = c.set("at-limit", big)
            took = time.time() - t0
            check("SET of a value at the maximum size commits within a second", ok and took < 1.0,
                  f"({took * 1000:.0f} ms)")
            figures["set_at_limit_ms"] = round(took * 1000)
            t0 = time.time()
            try:
                c.set("above-limit", big + b"x")
                refused = False
            except Exception as e:
                refused = True
                figures["above_limit_error"] = str(e)[:120]
            took = time.time() - t0
            check("one byte more is refused at once", refused and took < 0.5, f"({took * 1000:.0f} ms)")
            check("the refused value was not stored", cl.client(leader).exists("above-limit") == 0)
            # A 10 MB MSET: 40,000 keys of 256 bytes.
            pairs = {f"m{i}": b"v" * 256 for i in range(40_000)}
            t0 = time.time()
            ok = cl.client(leader).mset(pairs)
            took = time.time() - t0
            figures["mset_10mb_ms"] = round(took * 1000)
            check("a 10 MB MSET commits", ok, f"({took * 1000:.0f} ms)")
            time.sleep(1.0)
            term1 = int(cl.info(leader)["term"])
            check("no leader change during the large writes", term1 == term0 and cl.leader() == leader,
                  f"(term {term0} -> {term1})")
        figures["background_writes"] = bg.ok
        figures["background_errors"] = bg.errors
        figures["background_longest_gap_ms"] = round(bg.longest * 1000)
        check("other writes kept committing (no gap over 1 s)", bg.ok > 0 and bg.longest < 1.0,
              f"(ok {bg.ok}, errors {bg.errors}, longest gap {bg.longest * 1000:.0f} ms)")

        cl.client(leader).set("large", b"y" * (1 << 20))
        base = rss_mb(pid)
        figures["rss_base_mb"] = round(base)

        # Door 1: connections beyond the maximum (--max-clients 200 here).
        with Background(cl, leader) as bg:
            conns = []
            for _ in range(300):
                conns.append(socket.create_connection((HOST, RESP[leader]), timeout=2))
            time.sleep(0.5)
            refused = 0
            for s in conns:
                s.settimeout(1)
                try:
                    s.sendall(b"PING\r\n")
                    data = s.recv(256)
                    if not data or data.startswith(b"-ERR max number of clients"):
                        refused += 1
                except OSError:
                    refused += 1
            peak = rss_mb(pid)
            for s in conns:
                s.close()
        check("connections beyond the maximum are refused", 90 <= refused <= 110, f"({refused} of 300 refused)")
        check("RSS bounded with many connections", peak < args.rss_bound_mb, f"({peak:.0f} MB)")
        check("another client was answered meanwhile", bg.ok > 0 and bg.longest < 2.0, f"(ok {bg.ok})")
        figures["rss_connections_mb"] = round(peak)

        # Door 2: pipelined GETs of a 1 MB value on connections that never read.
        with Background(cl, leader) as bg:
            socks = [raw(RESP[leader]) for _ in range(4)]
            payload = resp("GET", "large") * 3000
            for s in socks:
                s.settimeout(5)
                try:
                    s.sendall(payload)
                except OSError:
                    pass
            time.sleep(3)
            peak = rss_mb(pid)
            # Past the soft output limit (32 MiB) the server runs no more of their
            # commands; it closes them after 60 s there, or at once past the hard limit.
            for s in socks:
                s.close()
        check("RSS bounded with unread replies", peak < args.rss_bound_mb, f"({peak:.0f} MB)")
        check("another client was answered meanwhile", bg.ok > 0 and bg.longest < 2.0, f"(ok {bg.ok})")
        figures["rss_unread_replies_mb"] = round(peak)

        # Door 3: unfinished bulk strings (eight connections each announcing 63 MB and
        # sending 32 MB of it): refused at the header, skipped as they arrive.
        with Background(cl, leader) as bg:
            socks = []
            for _ in range(8):
                s = raw(RESP[leader])
                s.settimeout(5)
                try:
                    s.sendall(f"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${63 << 20}\r\n".encode())
                    chunk = b"z" * (1 << 20)
                    for _ in range(32):
                        s.sendall(chunk)
                except OSError:
                    pass
                socks.append(s)
            time.sleep(1)
            peak = rss_mb(pid)
            for s in socks:
                s.close()
        check("RSS bounded with oversized unfinished bulk strings", peak < args.rss_bound_mb, f"({peak:.0f} MB)")
        figures["rss_oversized_partial_mb"] = round(peak)

        # Door 3b: many unfinished values each within the limit: the global cap on
        # partial requests (256 MiB by default) refuses the connections beyond it.
        with Background(cl, leader) as bg2:
            held = []
            part = b"p" * (args.max_value - 4096)
            for _ in range(400):
                try:
                    s = raw(RESP[leader])
                    s.settimeout(5)
                    s.sendall(f"*3\r\n$3\r\nSET\r\n$1\r\nq\r\n${args.max_value}\r\n".encode() + part)
                    held.append(s)
                except OSError:
                    break
            time.sleep(1)
            peak2 = rss_mb(pid)
            refused = sum(1 for s in held if closed_now(s))
            for s in held:
                s.close()
        check("the global cap on unfinished requests refuses connections beyond it", refused > 0,
              f"({refused} of {len(held)} closed)")
        check("RSS bounded with many unfinished requests", peak2 < args.rss_bound_mb, f"({peak2:.0f} MB)")
        check("another client was answered meanwhile", bg2.ok > 0 and bg2.longest < 2.0, f"(ok {bg2.ok})")
        figures["rss_partial_requests_mb"] = round(peak2)

        # Door 4: the peer port before any handshake.
        with Background(cl, leader) as bg:
            socks = []
            for _ in range(8):
                s = socket.create_connection((HOST, PEER[leader]), timeout=5)
                s.settimeout(5)
                try:
                    s.sendall((64 << 20).to_bytes(4, "big") + b"\x01\x03" + b"A" * (4 << 20))
                except OSError:
                    pass
                socks.append(s)
            peak = rss_mb(pid)
            closed = sum(1 for s in socks if is_closed(s, 5))
            for s in socks:
                s.close()
        check("unidentified peer connections with huge frames are closed", closed == 8, f"({closed}/8)")
        check("RSS bounded with a peer-port flood", peak < args.rss_bound_mb, f"({peak:.0f} MB)")
        figures["rss_peer_flood_mb"] = round(peak)
        check("the node still serves", cl.client(leader).set("end", "1"))
    finally:
        cl.stop_all()
        if not results.failures:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"passed": results.passed, "failed": results.failed, "seconds": round(time.time() - started, 1),
                      "rss_bound_mb": args.rss_bound_mb, **figures}))
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
