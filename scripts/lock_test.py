#!/usr/bin/env python3
"""The `SET NX PX` lock recipe with a fencing token, against real processes, with
clients paused (SIGSTOP) while they hold the lock past its expiry.

Three `aegis serve` processes on loopback (ports 7311-7313, 9311-9313, 8311-8313).
Client processes (this script with --client) loop: take the lock with
`MULTI; SET lock <id> NX PX 500; INCR fence; EXEC` (the token is the INCR value when
the SET succeeded), write to a protected resource three times with the token, then
release the lock only if they still hold it (`WATCH lock; GET lock; MULTI; DEL lock;
EXEC`). The resource (a server in this process) rejects a write whose token is lower
than the highest it has accepted. The main process pauses random clients with SIGSTOP
for 0.7-1.2 s (longer than the lock's 500 ms) and resumes them with SIGCONT.

Checked from the histories (one machine, one clock):
- tokens of successful acquisitions are unique, and their order is the order in
  which the acquisitions happened (an acquisition acknowledged before another was sent
  has the lower token);
- a lock is never taken while the previous holder's lease is valid: an acquisition
  acknowledged before the previous holder's send + 500 ms must follow that holder's
  release;
- no two holders at once by fencing token: the resource's accepted writes, in the
  order it accepted them, never go back to a lower token, and the writes of two
  tokens never interleave;
- the pauses mattered: some paused holder's write was rejected as stale.

Prints one line per check and a JSON summary; exits non-zero on any failure.
Usage: scripts/lock_test.py [--aegis PATH] [--seconds N] [--clients N]
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

LEASE_MS = 500


def client_main(args):
    import redis
    rng = random.Random(args.client)
    out = open(args.history, "a", buffering=1)
    nodes = [int(p) for p in args.ports.split(",")]
    resource = socket.create_connection(("127.0.0.1", args.resource_port))
    rfile = resource.makefile("rb")
    name = f"c{args.client}"
    deadline = time.time() + args.seconds
    conns = {}

    def conn():
        port = rng.choice(nodes)
        if port not in conns:
            conns[port] = redis.Redis(host="127.0.0.1", port=port, socket_timeout=3, socket_connect_timeout=1)
        return conns[port]

    while time.time() < deadline:
        c = conn()
        send = time.time()
        try:
            pipe = c.pipeline(transaction=True)
            pipe.set("lock", name, nx=True, px=LEASE_MS)
            pipe.incr("fence")
            got, token = pipe.execute()
        except Exception as e:
            out.write(json.dumps({"op": "acquire-error", "client": name, "send": send, "error": str(e)[:80]}) + "\n")
            time.sleep(0.05)
            continue
        ack = time.time()
        if not got:
            time.sleep(0.01 * rng.randint(1, 5))
            continue
        out.write(json.dumps({"op": "acquire", "client": name, "token": token, "send": send, "ack": ack}) + "\n")
        for k in range(3):
            resource.sendall(f"{name} {token} {k}\n".encode())
            rfile.readline()
            time.sleep(0.1)
        release_send = time.time()
        try:
            with c.pipeline(transaction=True) as pipe:
                pipe.watch("lock")
                if pipe.get("lock") == name.encode():
                    pipe.multi()
                    pipe.delete("lock")
                    released = pipe.execute()[0] == 1
                else:
                    pipe.unwatch()
                    released = False
        except Exception:
            released = False
        out.write(json.dumps({"op": "release", "client": name, "token": token, "send": release_send,
                              "released": released}) + "\n")
    return 0


class Resource:
    """Accepts a write only if its token is at least the highest accepted so far."""

    def __init__(self):
        self.lock = threading.Lock()
        self.highest = 0
        self.log = []  # (time, client, token, accepted)

    def write(self, client, token):
        with self.lock:
            accepted = token >= self.highest
            if accepted:
                self.highest = token
            self.log.append((time.time(), client, token, accepted))
            return accepted


def serve_resource(resource):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                client, token, _ = line.decode().split()
                ok = resource.write(client, int(token))
                self.wfile.write(b"OK\n" if ok else b"STALE\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--resource-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--history", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        return client_main(args)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from aegis_procs import IDS, RESP, Cluster
    from checks import check, results

    work = tempfile.mkdtemp(prefix="aegis-lock-")
    started = time.monotonic()
    cl = Cluster(os.path.abspath(args.aegis), work)
    resource = Resource()
    server = serve_resource(resource)
    procs = []
    summary = {}
    try:
        for n in IDS:
            cl.start(n)
        if not check("a leader is elected", cl.wait_leader(timeout=30) is not None):
            return 1
        history = os.path.join(work, "history.jsonl")
        ports = ",".join(str(RESP[n]) for n in IDS)
        for k in range(args.clients):
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--client", str(k), "--ports", ports,
                                           "--resource-port", str(server.server_address[1]), "--history", history,
                                           "--seconds", str(args.seconds)]))
        rng = random.Random(3)
        pauses = 0
        end = time.time() + args.seconds
        watcher = cl.client(cl.wait_leader())
        while time.time() < end - 1.5:
            time.sleep(rng.uniform(0.2, 0.8))
            # Pause the holder most of the time (so it comes back past its lease), any
            # client otherwise.
            try:
                holder = watcher.get("lock")
            except Exception:
                holder = None
            p = rng.choice(procs)
            if holder and rng.random() < 0.8 and holder.decode().startswith("c"):
                p = procs[int(holder.decode()[1:]) % len(procs)]
            if p.poll() is not None:
                continue
            p.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.7, 1.2))
            p.send_signal(signal.SIGCONT)
            pauses += 1
        for p in procs:
            p.wait(timeout=args.seconds + 30)

        events = [json.loads(line) for line in open(history)]
        acquires = sorted((e for e in events if e["op"] == "acquire"), key=lambda e: e["token"])
        releases = {e["token"]: e for e in events if e["op"] == "release"}
        tokens = [e["token"] for e in acquires]
        check("fencing tokens of acquisitions are unique", len(tokens) == len(set(tokens)), f"({len(tokens)} acquisitions)")
        order = [(a, b) for a in acquires for b in acquires if a["ack"] < b["send"] and a["token"] > b["token"]]
        check("token order is acquisition order", not order, f"({len(order)} inversions)")
        early = []
        for previous, current in zip(acquires, acquires[1:]):
            release = releases.get(previous["token"])
            freed = previous["send"] + LEASE_MS / 1000
            if release and release["released"]:
                freed = min(freed, release["send"])
            if current["ack"] < freed:
                early.append((previous["client"], previous["token"], current["client"], current["token"],
                              round(freed - current["ack"], 3)))
        for item in early[:5]:
            print(f"     taken while the previous lease was valid: {item}")
        check("the lock is never taken while the previous holder's lease is valid", not early)
        accepted = [(t, c, token) for t, c, token, ok in resource.log if ok]
        backwards = sum(1 for x, y in zip(accepted, accepted[1:]) if y[2] < x[2])
        seen_done, interleaved, current = set(), 0, None
        for _, _, token in accepted:
            if token != current:
                if token in seen_done:
                    interleaved += 1
                if current is not None:
                    seen_done.add(current)
                current = token
        check("no two holders at once by fencing token (accepted writes never go back, never interleave)",
              backwards == 0 and interleaved == 0, f"({len(accepted)} accepted writes)")
        stale = sum(1 for _, _, _, ok in resource.log if not ok)
        check("paused holders came back with stale tokens, and the resource refused them", stale > 0,
              f"({pauses} pauses, {stale} stale writes refused)")
        summary = {"clients": args.clients, "acquisitions": len(acquires), "pauses": pauses,
                   "accepted_writes": len(accepted), "stale_refused": stale,
                   "seconds": round(time.monotonic() - started, 1)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
        server.shutdown()
        cl.stop_all()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    print(json.dumps(summary))
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
