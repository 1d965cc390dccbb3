#!/usr/bin/env python3
"""Pub/sub across a real three-node cluster, and its replies beside redis-server's.

Three `aegis serve` processes on loopback (ports 7311-7313, 9311-9313, 8311-8313):

1. A subscriber on every node (channel and pattern); messages published on every
   node reach every subscriber, each subscriber seeing them in the same order (the
   log's order); PUBLISH answers how many of its node's clients received it.
2. A subscriber on a follower keeps receiving across a leader SIGKILL.
3. Keyspace notifications (CONFIG SET notify-keyspace-events) of writes made on
   another node.
4. The subscription replies, the RESP2 subscribed-mode refusal, PING in subscribed
   mode and PUBSUB NUMSUB/NUMPAT compared with a real redis-server.

Prints one line per check and a JSON summary; exits non-zero on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import redis

from aegis_procs import HOST, IDS, RESP, Cluster
from checks import attempt, check, results, wait_until


def drain(pubsub, want, timeout=10.0):
    """Collects `want` message payloads from `pubsub` (bounded in time)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.2)
        if m and m["type"] in ("message", "pmessage"):
            got.append((m["type"], m["channel"], m["data"]))
    return got


def across_nodes(cl):
    subs = {}
    for n in IDS:
        p = cl.client(n).pubsub()
        p.subscribe("news")
        p.psubscribe("n*")
        # Wait for both confirmations so that the subscriptions are in place.
        confirmed = 0
        deadline = time.monotonic() + 5
        while confirmed < 2 and time.monotonic() < deadline:
            m = p.get_message(timeout=0.2)
            if m and m["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
        subs[n] = p
    counts = []
    for i in range(30):
        node = IDS[i % 3]
        counts.append(cl.client(node).publish("news", f"m{i}"))
    check("PUBLISH answers its node's receivers (channel + pattern)", all(c == 2 for c in counts), f"{counts[:6]}")
    seen = {n: drain(subs[n], 60) for n in IDS}
    for n in IDS:
        plain = [d for t, _, d in seen[n] if t == "message"]
        check(f"subscriber on {n} got all 30 messages", len(plain) == 30, f"{len(plain)}")
        check(f"subscriber on {n} got the pattern copies", sum(1 for t, _, _ in seen[n] if t == "pmessage") == 30)
    orders = {n: [d for t, _, d in seen[n] if t == "message"] for n in IDS}
    check("every subscriber saw the same order", orders[IDS[0]] == orders[IDS[1]] == orders[IDS[2]])
    for p in subs.values():
        p.close()


def across_leader_kill(cl):
    leader = cl.wait_leader()
    follower = next(n for n in IDS if n != leader)
    publisher = next(n for n in IDS if n not in (leader, follower))
    p = cl.client(follower).pubsub()
    p.subscribe("survive")
    wait_until(lambda: (p.get_message(timeout=0.2) or {}).get("type") == "subscribe", 5)
    cl.client(publisher).publish("survive", "before")
    cl.kill(leader)
    wait_until(lambda: cl.leader([follower, publisher]) is not None, 20)
    published = wait_until(lambda: cl.client(publisher).publish("survive", "after") >= 0, 20)
    got = [d for _, _, d in drain(p, 2)]
    check("a follower's subscriber keeps receiving across a leader kill", published and got == [b"before", b"after"], f"{got}")
    p.close()
    cl.start(leader)
    wait_until(lambda: cl.client(leader).ping(), 20)


def keyspace_notifications(cl):
    """Writes on one node notify subscribers on another (notify-keyspace-events is per node)."""
    watcher, writer = IDS[1], IDS[0]
    cl.client(watcher).config_set("notify-keyspace-events", "KEA")
    check("CONFIG GET shows the setting", cl.client(watcher).config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"})
    p = cl.client(watcher).pubsub()
    p.subscribe("__keyspace@0__:user", "__keyevent@0__:del")
    wait_until(lambda: (p.get_message(timeout=0.2) or {}).get("type") == "subscribe", 5)
    w = cl.client(writer)
    w.set("user", "ada")
    w.append("user", "!")
    w.incr("visits")
    w.delete("user")
    got = [(m[1], m[2]) for m in drain(p, 4)]
    check("keyspace and keyevent notifications from another node's writes",
          got == [(b"__keyspace@0__:user", b"set"), (b"__keyspace@0__:user", b"append"),
                  (b"__keyspace@0__:user", b"del"), (b"__keyevent@0__:del", b"user")], f"{got}")
    p.close()


def replies(port):
    """The raw replies of a subscription session, for comparison with redis-server."""
    c = redis.Redis(host=HOST, port=port, protocol=2)
    c.execute_command("PING")  # connect
    conn = c.connection_pool.get_connection()
    out = []
    for command in (["SUBSCRIBE", "a", "b"], ["PSUBSCRIBE", "x*"], ["GET", "k"], ["PING"], ["PING", "hi"],
                    ["UNSUBSCRIBE", "a"], ["PUNSUBSCRIBE"], ["UNSUBSCRIBE"]):
        conn.send_command(*command)
        expected = {"SUBSCRIBE": 2, "UNSUBSCRIBE": 1}.get(command[0], 1)
        for _ in range(expected):
            try:
                out.append(conn.read_response())
            except redis.ResponseError as e:
                out.append(f"error: {str(e).split(':')[0]}")
    conn.disconnect()
    plain = redis.Redis(host=HOST, port=port)
    out.append(plain.execute_command("PUBSUB", "NUMPAT"))
    out.append(plain.execute_command("PUBSUB", "NUMSUB", "a"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-pubsub-")
    cl = Cluster(os.path.abspath(args.aegis), work, election_ticks=10)
    server = None
    started = time.monotonic()
    try:
        for n in IDS:
            cl.start(n)
        check("a leader is elected", cl.wait_leader() is not None)
        attempt("messages across nodes", lambda: across_nodes(cl))
        attempt("messages across a leader kill", lambda: across_leader_kill(cl))
        attempt("keyspace notifications", lambda: keyspace_notifications(cl))
        port = 7399
        server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis.Redis(host=HOST, port=port).ping(), 10)
        cl.wait_leader()
        ours, theirs = replies(RESP[IDS[0]]), replies(port)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            check(f"reply {i} as redis-server's", a == b, f"aegis {a!r} redis {b!r}")
    finally:
        if server:
            server.kill()
        cl.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"test": "pubsub", "passed": results.passed, "failed": results.failed,
                      "seconds": round(time.monotonic() - started, 1)}))
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
