#!/usr/bin/env python3
"""Active-active snapshot catch-up against real processes: two clusters of three nodes
on loopback (`aegis serve --active-active`, small snapshots), one down long enough that
the other compacted its log past its cursor.

1. c1 and c2 take writes and converge.
2. c2 is killed (all three nodes); c1 is restarted (so no node holds its log for c2)
   and takes writes of every type (strings, counters, sets, hashes, deletes) over many
   more entries than its snapshot interval, so it snapshots and compacts.
3. c2 starts again: its pull is answered 410 (compacted), it catches up from c1's whole
   state in pages (GET /v1/aa/catchup, command 76 through its log), then resumes the
   stream; writes c2 took meanwhile flow to c1. Both clusters converge: the same dump
   on both, one digest inside each, and c2 reports catch-up pages merged.

    python3 scripts/aa_catchup_test.py --aegis .build/release/aegis [--base-port 28000]
"""
import argparse
import json
import sys
import tempfile
import time

from aegis_procs import IDS, start_aa_mesh, stop_clusters
from checks import check, quiet, results, wait_until

KEYS = 1500


def dump(client, keys):
    """The test key space as one cluster's leader answers it."""
    out = {}
    for key in keys:
        kind = client.type(key).decode()
        if kind == "string":
            out[key] = client.get(key)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))
        elif kind == "hash":
            out[key] = sorted(client.hgetall(key).items())
        else:
            out[key] = kind
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--base-port", type=int, default=28000,
                        help="c1 uses base..base+8 (RESP, peer, admin), c2 base+10..base+18")
    parser.add_argument("--converge", type=float, default=40)
    args = parser.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-aa-catchup-")
    clusters = {}
    try:
        start_aa_mesh(clusters, args.aegis, work, args.base_port,
                      extra=["--snapshot-entries", "200", "--snapshot-trailing-entries", "10",
                             "--aa-catch-up-page-states", "100"])
        c1, c2 = clusters["c1"], clusters["c2"]
        for name, cluster in clusters.items():
            check(f"{name} elects a leader", cluster.wait_leader(timeout=30) is not None)

        def status(cluster):
            code, body = cluster.admin(cluster.wait_leader(), "GET", "/v1/aa")
            return json.loads(body) if code == 200 else {}

        check("both clusters record the active-active setting",
              all(wait_until(lambda c=c: quiet(lambda: status(c)["enabled"]), 30) for c in clusters.values()))

        keys = []
        client = c1.client(c1.wait_leader())
        for k in range(20):
            client.set(f"early:{k}", f"c1-{k}")
            keys.append(f"early:{k}")
        client2 = c2.client(c2.wait_leader())
        client2.incrby("counter", 5)
        keys.append("counter")
        check("c2 has c1's early writes (the stream runs)",
              wait_until(lambda: quiet(lambda: c2.client(c2.wait_leader()).get("early:19") == b"c1-19"), 20))
        cursor_before = quiet(lambda: status(c2)["links"][0]["cursor"]) or 0

        # c2 down; c1 restarted (no hold for c2), then many writes: c1 compacts.
        c2.stop_all()
        c1.stop_all()
        for n in IDS:
            c1.start(n)
        c1_leader = c1.wait_leader(timeout=30)
        client = c1.client(c1_leader)
        pipe = client.pipeline(transaction=False)
        for k in range(KEYS):
            key = f"k:{k}"
            kind = k % 5
            if kind == 0:
                pipe.set(key, f"v{k}")
            elif kind == 1:
                pipe.incrby(key, k)
            elif kind == 2:
                pipe.sadd(key, f"m{k}", "x")
            elif kind == 3:
                pipe.hset(key, mapping={"f": str(k), "g": "1"})
            else:
                pipe.set(key, "gone")
                pipe.delete(key)
            keys.append(key)
            if k % 100 == 99:
                pipe.execute()
        pipe.execute()
        client.incrby("counter", 7)
        client.delete("early:0")
        # Give c1 time to take its snapshots (off the node loop) and compact; the
        # catch-up below happens only if c1 answers c2's pull 410 (compacted).
        time.sleep(2)

        # c2 back: 410, catch-up, stream; a write on c2 meanwhile flows to c1.
        for n in IDS:
            c2.start(n)
        check("c2 elects a leader again", c2.wait_leader(timeout=30) is not None)
        c2_client = c2.client(c2.wait_leader())
        c2_client.set("from:c2", "hello")
        c2_client.incrby("counter", 11)
        keys.append("from:c2")

        why = []

        def converged():
            d1 = dump(c1.client(c1.wait_leader()), keys)
            d2 = dump(c2.client(c2.wait_leader()), keys)
            for cluster in clusters.values():
                digests = set()
                for n in IDS:
                    reply = cluster.client(n).execute_command("AEGIS.DIGEST")
                    digests.add(reply[1])
                if len(digests) != 1:
                    why[:] = [f"{cluster.cluster_id}: digests {sorted(digests)}"]
                    return False
            diff = [k for k in keys if d1.get(k) != d2.get(k)]
            why[:] = [f"{k}: c1={d1.get(k)} c2={d2.get(k)}" for k in diff[:5]] + [f"{len(diff)} keys differ"]
            return not diff

        t0 = time.time()
        ok = wait_until(lambda: quiet(converged), args.converge, interval=0.5)
        check(f"both clusters converge after the catch-up (in {time.time() - t0:.1f} s)", ok, "; ".join(why))
        final = quiet(lambda: dump(c2.client(c2.wait_leader()), keys)) or {}
        check("the model: counter = 5 + 7 + 11 on c2", final.get("counter") == b"23", final.get("counter"))
        check("the model: c1's deletes reached c2", final.get("early:0") == "none" and final.get("k:4") == "none",
              (final.get("early:0"), final.get("k:4")))
        check("the model: c1's sets and hashes reached c2",
              final.get("k:2") == [b"m2", b"x"] and final.get("k:3") == [(b"f", b"3"), (b"g", b"1")],
              (final.get("k:2"), final.get("k:3")))
        link = quiet(lambda: status(c2)["links"][0]) or {}
        check("c2's link merged catch-up pages and left catch-up",
              (link.get("catchUpPages") or 0) >= KEYS // 100 and not link.get("catchingUp"), json.dumps(link)[:400])
        check("c2's cursor moved past where it stood before the outage", link.get("cursor", 0) > cursor_before,
              (cursor_before, link.get("cursor")))
        c1_link = quiet(lambda: status(c1)["links"][0]) or {}
        check("c1 merged c2's write after the catch-up",
              quiet(lambda: c1.client(c1.wait_leader()).get("from:c2")) == b"hello", json.dumps(c1_link)[:300])
    finally:
        stop_clusters(clusters, work, results.failed == 0)
    print(f"aa_catchup_test: {results.passed} passed, {results.failed} failed in {time.time() - started:.0f} s")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
