#!/usr/bin/env python3
"""Expiring keys against real processes: no key readable after its deadline plus the
documented bound, none gone before its deadline, across a leader SIGKILL and a
wiped follower that comes back through a snapshot install.

Three `aegis serve` processes on loopback (ports 7311-7313, 9311-9313, 8311-8313),
with small snapshots (--snapshot-entries) and a slow purge (--expiry-interval-ms), so
that most expiries are decided by the read-side deadline check, which must survive the
snapshot. One writer sets keys with SET … PX (300 ms to 6 s) and a few without a TTL;
readers GET them through every node (linearizable) and with READONLY on the followers
(local reads). The nemesis kills the leader with SIGKILL and restarts it, then stops a
follower and wipes its data directory while writes go on (more than the leader keeps
behind a snapshot), and brings it back by the documented procedure (remove, --join,
add as a learner, promote): it must install a snapshot (its log says so), and its
reads must honour the deadlines the snapshot carried.

Checks, from the history (one machine, one clock; the write's deadline lies in
[send + PX, acknowledgement + PX]):
- a read that completed before send + PX found the key (linearizable reads that
  started after the acknowledgement; less 2 ms, as timestamps are whole milliseconds);
- no read of any kind that started after acknowledgement + PX + BOUND found it
  (BOUND = 500 ms, the clock-skew bound documented in AegisReplication);
- keys without a TTL are always found once acknowledged;
- the leader's purges remove every expired key in the end (DBSIZE).

Prints one line per check and a JSON summary; exits non-zero on any failure.
Usage: scripts/expiry_test.py [--aegis PATH] [--seconds N]
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

import redis
from aegis_procs import HOST, IDS, PEER, RESP, Cluster
from checks import check, results, wait_until

BOUND = 0.5
GRANULARITY = 0.002
BURST = 16_000
FILL_KEYS = 100


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.writes = {}      # key -> (send, ack, px seconds or None)
        self.uncertain = {}   # key -> (send, fail, px)
        self.reads = []       # (key, node, stale, send, done, found)

    def add_read(self, *read):
        with self.lock:
            self.reads.append(read)


def writer(cl, history, stop, rng):
    n = 0
    leader = None
    conn = None
    while not stop.is_set():
        key = f"x{n}"
        n += 1
        persistent = n % 10 == 0
        px = None if persistent else rng.randint(300, 6000) / 1000
        args = ["SET", key, "v"] + ([] if persistent else ["PX", str(int(px * 1000))])
        if conn is None:
            leader = cl.leader() or rng.choice(IDS)
            conn = cl.client(leader)
        send = time.time()
        try:
            conn.execute_command(*args)
            ack = time.time()
            with history.lock:
                history.writes[key] = (send, ack, px)
        except Exception:
            with history.lock:
                history.uncertain[key] = (send, time.time(), px)
            conn = None
            time.sleep(0.05)
        time.sleep(0.005)


def reader(cl, history, stop, rng, stale):
    clients = {}
    while not stop.is_set():
        with history.lock:
            keys = list(history.writes)[-400:]
        if not keys:
            time.sleep(0.01)
            continue
        key = rng.choice(keys)
        node = rng.choice(IDS)
        try:
            if node not in clients:
                clients[node] = cl.client(node)
                if stale:
                    clients[node].execute_command("READONLY")
            send = time.time()
            value = clients[node].get(key)
            history.add_read(key, node, stale, send, time.time(), value is not None)
        except Exception:
            clients.pop(node, None)
            time.sleep(0.02)


def nemesis(cl, work, log):
    time.sleep(3)
    leader = cl.wait_leader()
    log.append(f"SIGKILL leader {leader}")
    cl.kill(leader)
    time.sleep(2)
    cl.start(leader)
    log.append(f"restarted {leader}")
    time.sleep(1.5)
    leader = cl.wait_leader()
    follower = next(n for n in IDS if n != leader)
    log.append(f"stopped follower {follower} and wiped its data directory")
    cl.kill(follower)
    shutil.rmtree(cl.data(follower))
    # Writes go on, and a burst besides: more entries than the leader keeps behind a
    # snapshot (10,000), so its log no longer starts at 1 and the wiped member must
    # install a snapshot. The burst rewrites FILL_KEYS keys without a TTL.
    start = time.time()
    written = 0
    while written < BURST and time.time() - start < 20:
        try:
            pipe = cl.client(leader).pipeline(transaction=False)
            for i in range(written, min(written + 2000, BURST)):
                pipe.set(f"fill{i % FILL_KEYS}", str(i))
            pipe.execute()
            written = min(written + 2000, BURST)
        except Exception:
            time.sleep(0.2)
            leader = cl.wait_leader([n for n in IDS if n != follower]) or leader
    log.append(f"{written} writes through {leader} while {follower} is away")
    time.sleep(max(1.5, 4 - (time.time() - start)))
    # The documented procedure for a wiped member: remove it, start it with --join,
    # add it back as a learner (it gets a snapshot), promote it.
    others = [n for n in IDS if n != follower]
    status, _ = cl.admin(cl.wait_leader(others), "DELETE", f"/v1/cluster/members/{follower}")
    cl.start(follower, join=True)
    added = promoted = False
    deadline = time.time() + 20
    while time.time() < deadline and not (added and promoted):
        try:
            if not added:
                code, _ = cl.admin(cl.wait_leader(others), "POST", "/v1/cluster/members",
                                   {"id": follower, "peerAddress": f"{HOST}:{PEER[follower]}",
                                    "clientAddress": f"{HOST}:{RESP[follower]}", "learner": True})
                added = 200 <= code < 300
            else:
                code, _ = cl.admin(cl.wait_leader(others), "POST", f"/v1/cluster/members/{follower}/promote")
                promoted = 200 <= code < 300
        except Exception:
            time.sleep(0.5)
    log.append(f"{follower} rejoined as a learner and was promoted: {added and promoted}")
    return follower


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--seconds", type=float, default=14, help="how long the writer runs")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-expiry-")
    started = time.monotonic()
    cl = Cluster(os.path.abspath(args.aegis), work,
                 extra=["--snapshot-entries", "100", "--expiry-interval-ms", "1000", "--expiry-batch-size", "256"])
    summary = {}
    try:
        for n in IDS:
            cl.start(n)
        if not check("a leader is elected", cl.wait_leader(timeout=30) is not None):
            return 1
        history = History()
        stop = threading.Event()
        rng = random.Random(5)
        threads = [threading.Thread(target=writer, args=(cl, history, stop, random.Random(1)))]
        threads += [threading.Thread(target=reader, args=(cl, history, stop, random.Random(10 + k), k == 2))
                    for k in range(3)]
        for t in threads:
            t.start()
        log = []
        follower = nemesis(cl, work, log)
        time.sleep(max(0, args.seconds - 10.5))
        stop.set()
        threads[0].join()
        # Readers go on while the last deadlines pass.
        stop2 = threading.Event()
        late = [threading.Thread(target=reader, args=(cl, history, stop2, random.Random(20 + k), k == 2)) for k in range(3)]
        for t in threads[1:]:
            t.join()
        for t in late:
            t.start()
        time.sleep(7)
        stop2.set()
        for t in late:
            t.join()
        for line in log:
            print(f"     nemesis: {line}")

        early, after, lost, checked_early, checked_late = [], [], [], 0, 0
        for key, node, stale, send, done, found in history.reads:
            write = history.writes.get(key)
            if write is None:
                continue
            w_send, w_ack, px = write
            if px is None:
                if not stale and send > w_ack and not found:
                    lost.append((key, node))
                continue
            # Leader timestamps are whole milliseconds (truncated): a deadline may be up
            # to 1 ms before send + PX.
            if not stale and send > w_ack and done < w_send + px - GRANULARITY:
                checked_early += 1
                if not found:
                    early.append((key, node, round(w_send + px - done, 3)))
            if send > w_ack + px + BOUND:
                checked_late += 1
                if found:
                    after.append((key, node, stale, round(send - (w_ack + px), 3)))
        for item in early[:5]:
            print(f"     gone early: {item}")
        for item in after[:5]:
            print(f"     read after its deadline + {BOUND} s: {item}")
        check("no key is gone before its deadline (linearizable reads)", not early,
              f"({checked_early} reads before a deadline, {len(early)} missing)")
        check(f"no key is readable after its deadline + {BOUND} s (every node, linearizable and local reads)",
              not after, f"({checked_late} reads after a deadline, {len(after)} found)")
        check("keys without a TTL are never lost", not lost, f"({len(lost)} missing)")
        with open(os.path.join(work, f"{follower}.log"), "rb") as f:
            installed = b"installed a snapshot from the leader" in f.read()
        check(f"the restarted follower {follower} installed a snapshot", installed)
        persistent = sum(1 for w in history.writes.values() if w[2] is None)
        leader = cl.wait_leader()
        c = cl.client(leader)
        maybe = sum(1 for u in history.uncertain.values() if u[2] is None)
        persistent += FILL_KEYS
        purged = wait_until(lambda: persistent <= c.dbsize() <= persistent + maybe, 15)
        check("the leader's purges removed every expired key (DBSIZE)", purged,
              f"(DBSIZE {c.dbsize()}, {persistent} keys without a TTL)")
        digests = set()
        wait_until(lambda: len({cl.client(n).execute_command("AEGIS.DIGEST")[1] for n in IDS}) == 1, 10)
        digests = {cl.client(n).execute_command("AEGIS.DIGEST")[1] for n in IDS}
        check("the three replicas converge to one state (digest)", len(digests) == 1)
        summary = {"writes": len(history.writes), "uncertain": len(history.uncertain), "reads": len(history.reads),
                   "checked_before_deadline": checked_early, "checked_after_deadline": checked_late,
                   "early": len(early), "late": len(after), "seconds": round(time.monotonic() - started, 1)}
    finally:
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
