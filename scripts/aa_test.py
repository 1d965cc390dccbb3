#!/usr/bin/env python3
"""Active-active against real processes: three clusters of three nodes on loopback,
meshed (`aegis serve --active-active --aa-peer …`), all taking writes of every type.

1. Concurrent writers, one per cluster (redis-py), for --seconds: counters (INCRBY on
   shared keys, HINCRBY on shared fields of one hash), sets (SADD/SREM of each cluster's own members on shared keys), hashes
   (HSET/HDEL of each cluster's own fields on shared keys, one field written by all),
   strings (SET on shared keys: a conflict; SET/DEL on each cluster's own keys).
2. Meanwhile a link is cut and healed (the leader of cluster r2 is SIGSTOPped for a
   few seconds, then SIGCONTed) and a leader is SIGKILLed (cluster r3; restarted).
3. After healing, every cluster converges within --converge seconds: the three nodes
   of each cluster have one digest (AEGIS.DIGEST) and the three clusters' dumps of the
   key space are equal; the final values equal the model (sums of the increments, the
   last write of each cluster's own members, fields and keys, a shared string that is
   one of the values written), with no acknowledged write lost. A write whose answer
   was lost (an error during the faults) may or may not have happened: the model
   accepts both.

    python3 scripts/aa_test.py --aegis .build/release/aegis
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aegis_procs import HOST, IDS, Cluster
from checks import check, results, wait_until

# Ports away from the other real-process tests' (aegis_procs defaults: 7311-, 8311-,
# 9311-; dr_test: offsets 400 and 500), which may run on the same host at the same time.
OFFSETS = {"r1": 1700, "r2": 1800, "r3": 1900}
COUNTERS = [f"aa:counter:{k}" for k in range(4)]
SETS = [f"aa:set:{k}" for k in range(3)]
HASHES = [f"aa:hash:{k}" for k in range(3)]
SHARED = [f"aa:shared:{k}" for k in range(3)]
# HINCRBY counter fields, written by every cluster: (hash key, field).
HCOUNTER = "aa:hcounter"
HFIELDS = [f"n{k}" for k in range(2)]


def own_keys(region):
    return [f"aa:own:{region}:{k}" for k in range(4)]


class Writer(threading.Thread):
    """Writes of every type to one cluster; records what was acknowledged and what is uncertain."""

    def __init__(self, region, cluster, seconds, seed):
        super().__init__(daemon=True)
        self.region, self.cluster, self.deadline = region, cluster, time.time() + seconds
        self.rng = random.Random(seed)
        self.acked_incr = {k: 0 for k in COUNTERS + HFIELDS}
        self.maybe_incr = {k: 0 for k in COUNTERS + HFIELDS}
        # Last op per (key, member/field/key): ("add"|"rem"|value|None, certain)
        self.members = {}
        self.fields = {}
        self.own = {}
        self.shared_values = set()
        self.acked = 0
        self.errors = 0

    def client(self):
        # No automatic retry: a retried INCRBY whose first answer was lost would count twice.
        node = IDS[self.rng.randrange(3)]
        return redis.Redis(host=HOST, port=self.cluster.resp_port(node), socket_timeout=3, socket_connect_timeout=1,
                           retry=Retry(NoBackoff(), 0))

    def run(self):
        c = self.client()
        n = 0
        while time.time() < self.deadline:
            n += 1
            roll = self.rng.random()
            try:
                if roll < 0.3:
                    key, amount = self.rng.choice(COUNTERS + HFIELDS), self.rng.randrange(1, 10)
                    self.maybe_incr[key] += amount
                    if key in HFIELDS:
                        c.hincrby(HCOUNTER, key, amount)
                    else:
                        c.incrby(key, amount)
                    self.maybe_incr[key] -= amount
                    self.acked_incr[key] += amount
                elif roll < 0.5:
                    key, member = self.rng.choice(SETS), f"{self.region}-m{self.rng.randrange(5)}"
                    op = "add" if self.rng.random() < 0.6 else "rem"
                    self.members[(key, member)] = (op, False)
                    (c.sadd if op == "add" else c.srem)(key, member)
                    self.members[(key, member)] = (op, True)
                elif roll < 0.7:
                    key = self.rng.choice(HASHES)
                    field = f"{self.region}-f{self.rng.randrange(4)}"
                    value = f"{self.region}-{n}"
                    if self.rng.random() < 0.7:
                        self.fields[(key, field)] = (value, False)
                        c.hset(key, field, value)
                        self.fields[(key, field)] = (value, True)
                    else:
                        self.fields[(key, field)] = (None, False)
                        c.hdel(key, field)
                        self.fields[(key, field)] = (None, True)
                elif roll < 0.8:
                    key, value = self.rng.choice(SHARED), f"{self.region}-{n}"
                    self.shared_values.add(value)
                    c.set(key, value)
                else:
                    key = self.rng.choice(own_keys(self.region))
                    if self.rng.random() < 0.8:
                        value = f"{self.region}-{n}"
                        self.own[key] = (value, False)
                        c.set(key, value)
                        self.own[key] = (value, True)
                    else:
                        self.own[key] = (None, False)
                        c.delete(key)
                        self.own[key] = (None, True)
                self.acked += 1
            except Exception:  # noqa: BLE001 - the answer was lost: the write may or may not have happened
                self.errors += 1
                time.sleep(0.05)
                c = self.client()


def dump(client):
    """The whole test key space as one cluster's leader answers it."""
    out = {}
    for key in COUNTERS + SHARED + [k for r in OFFSETS for k in own_keys(r)]:
        out[key] = client.get(key)
    for key in SETS:
        out[key] = sorted(client.smembers(key))
    for key in HASHES + [HCOUNTER]:
        out[key] = sorted(client.hgetall(key).items())
    return out


def leader_client(cluster):
    leader = cluster.wait_leader(timeout=20)
    return cluster.client(leader), leader


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--converge", type=float, default=30)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--no-faults", action="store_true", help="no link cut, no leader kill")
    parser.add_argument("--base-port", type=int, default=0,
                        help="region k's nodes on base+10k .. base+10k+8 (RESP, peer, admin) instead of the fixed offsets")
    args = parser.parse_args()
    print(f"aa_test: seed {args.seed}, {args.seconds} s of writes, convergence bound {args.converge} s")
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-aa-")
    clusters = {}
    try:
        bases = {r: {"resp": args.base_port + 10 * k, "peer": args.base_port + 10 * k + 3,
                     "admin": args.base_port + 10 * k + 6} for k, r in enumerate(OFFSETS)} if args.base_port else {}
        admin = {r: ",".join(f"{HOST}:{(bases[r]['admin'] if bases else 8311 + o) + k}" for k in range(3))
                 for r, o in OFFSETS.items()}
        for region, offset in OFFSETS.items():
            peers = []
            for other in OFFSETS:
                if other != region:
                    peers += ["--aa-peer", f"{other}={admin[other]}"]
            os.makedirs(os.path.join(work, region))
            clusters[region] = Cluster(args.aegis, os.path.join(work, region), port_offset=offset, cluster_id=region,
                                       bases=bases.get(region),
                                       extra=["--active-active"] + peers, election_ticks=20)
        # Bad links are refused at start with a clear message (r1's first node, before it runs).
        full, extra = clusters["r1"].command("n1"), clusters["r1"].extra
        start = full.index(extra[0])
        base = full[:start] + full[start + len(extra):]
        for bad, why in [(["--aa-peer", f"r2={admin['r2']}"], "needs --active-active"),
                         (["--active-active", "--aa-peer", f"r1={admin['r2']}"], "another cluster"),
                         (["--active-active", "--aa-peer", "r2=10.1.2.3:80"], "loopback"),
                         (["--active-active", "--aa-peer", "r2"], "ID=host:port")]:
            shutil.rmtree(clusters["r1"].data("n1"), ignore_errors=True)
            run = subprocess.run(base + bad, capture_output=True, text=True, timeout=30)
            error = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error: ")]
            check(f"serve refuses {' '.join(bad)[:60]}", run.returncode != 0 and error and why in error[0], error[:1])
        shutil.rmtree(clusters["r1"].data("n1"), ignore_errors=True)

        # One admin token for the group: each cluster's leader pulls from its peers with it.
        token = clusters["r1"].token
        for cluster in clusters.values():
            cluster.token = token
            with open(cluster.token_file, "w") as f:
                f.write(token + "\n")
        for cluster in clusters.values():
            for n in IDS:
                cluster.start(n)
        for region, cluster in clusters.items():
            check(f"{region} elects a leader", cluster.wait_leader(timeout=30) is not None)

        def enabled(cluster):
            status, body = cluster.admin(cluster.wait_leader(), "GET", "/v1/aa")
            return status == 200 and json.loads(body)["enabled"]

        # Writes made before a cluster records the setting carry no CRDT metadata.
        check("every cluster records the active-active setting",
              all(wait_until(lambda c=c: enabled(c), 20) for c in clusters.values()))

        writers = {r: Writer(r, clusters[r], args.seconds, args.seed + k) for k, r in enumerate(OFFSETS)}
        for w in writers.values():
            w.start()
        # Faults: cut r2's leader off (SIGSTOP) for 3 s, SIGKILL r3's leader and restart it.
        time.sleep(args.seconds * 0.25)
        stopped = None if args.no_faults else clusters["r2"].leader()
        if stopped:
            clusters["r2"].procs[stopped].send_signal(signal.SIGSTOP)
            print(f"   r2's leader {stopped} stopped (SIGSTOP): its links are cut")
        time.sleep(3)
        if stopped:
            clusters["r2"].procs[stopped].send_signal(signal.SIGCONT)
            print(f"   {stopped} resumed (SIGCONT)")
        time.sleep(args.seconds * 0.15)
        killed = None if args.no_faults else clusters["r3"].leader()
        if killed:
            clusters["r3"].kill(killed)
            print(f"   r3's leader {killed} killed (SIGKILL)")
            time.sleep(2)
            clusters["r3"].start(killed)
        for w in writers.values():
            w.join(args.seconds + 30)
        for r, w in writers.items():
            print(f"   {r}: {w.acked} writes acknowledged, {w.errors} answers lost")
        check("every writer got writes acknowledged", all(w.acked > 50 for w in writers.values()))

        # Convergence: the three dumps are equal, and inside each cluster one digest.
        healed = time.time()
        final = {}
        why = []

        def converged():
            dumps = {}
            for region, cluster in clusters.items():
                client, _ = leader_client(cluster)
                dumps[region] = dump(client)
                digests = set()
                for n in IDS:
                    reply = cluster.client(n).execute_command("AEGIS.DIGEST")
                    digests.add((reply[0], reply[1]))
                if len({d[1] for d in digests}) != 1:
                    why[:] = [f"{region}: digests {sorted(digests)}"]
                    return False
            final.update(dumps)
            diff = [k for k in dumps["r1"] if not dumps["r1"][k] == dumps["r2"][k] == dumps["r3"][k]]
            why[:] = [f"{k}: " + " | ".join(f"{r}={dumps[r][k]}" for r in dumps) for k in diff]
            return not diff

        ok = wait_until(lambda: _quiet(converged), args.converge, interval=0.5)
        check(f"the nine nodes converge within {args.converge} s", ok, f"({time.time() - healed:.1f} s)")
        if not ok:
            for line in why[:12]:
                print(f"   {line}")
            for region, cluster in clusters.items():
                try:
                    print(f"   {region} /v1/aa: {cluster.admin(cluster.wait_leader(), 'GET', '/v1/aa')[1].decode()}")
                except Exception as e:  # noqa: BLE001
                    print(f"   {region} /v1/aa: {e}")
            return finish(started)

        values = final["r1"]
        lost = []
        counted = dict(values[HCOUNTER])
        for key in COUNTERS + HFIELDS:
            low = sum(w.acked_incr[key] for w in writers.values())
            high = low + sum(w.maybe_incr[key] for w in writers.values())
            got = int((counted.get(key.encode()) if key in HFIELDS else values[key]) or 0)
            if not low <= got <= high:
                lost.append(f"{key}={got} not in [{low}, {high}]")
        for w in writers.values():
            for (key, member), (op, certain) in w.members.items():
                present = member.encode() in values[key]
                if certain and present != (op == "add"):
                    lost.append(f"{key} {member}: last {op}, present={present}")
            hashes = {k: dict(values[k]) for k in HASHES}
            for (key, field), (value, certain) in w.fields.items():
                got = hashes[key].get(field.encode())
                if certain and got != (value.encode() if value else None):
                    lost.append(f"{key}.{field}={got} expected {value}")
            for key, (value, certain) in w.own.items():
                if certain and values[key] != (value.encode() if value else None):
                    lost.append(f"{key}={values[key]} expected {value}")
        written = set().union(*(w.shared_values for w in writers.values()))
        for key in SHARED:
            if values[key] is not None and values[key].decode() not in written:
                lost.append(f"{key}={values[key]} was never written")
        check("the converged values equal the model (no acknowledged write lost)", not lost, "; ".join(lost[:10]))
        status = clusters["r1"].admin(clusters["r1"].wait_leader(), "GET", "/v1/aa")
        check("GET /v1/aa answers on the leader", status[0] == 200)
        metadata = json.loads(status[1]).get("metadata") if status[0] == 200 else None
        check("GET /v1/aa reports the CRDT metadata's size", bool(metadata) and metadata["keys"] > 0, f"{metadata}")
        healthy = []
        check("the leaders' active-active health check passes once the links caught up",
              wait_until(lambda: healthy.append([c.admin(c.wait_leader(), "GET", "/healthz/active-active")[0]
                                                for c in clusters.values()]) or healthy[-1] == [200] * 3, 10),
              f"{healthy[-1] if healthy else ''}")

        # A dead link fails the check (a dependency: not liveness): pause all of r3.
        for p in clusters["r3"].procs.values():
            p.send_signal(signal.SIGSTOP)
        r1 = clusters["r1"]
        check("a dead link (r3 paused) fails r1's active-active health check",
              wait_until(lambda: health_code(r1, r1.wait_leader()) == 503, 15))
        check("...and not its liveness", health_code(r1, r1.wait_leader(), "/livez") == 200)
        for p in clusters["r3"].procs.values():
            p.send_signal(signal.SIGCONT)
    finally:
        for cluster in clusters.values():
            for p in cluster.procs.values():
                try:
                    p.send_signal(signal.SIGCONT)
                except Exception:  # noqa: BLE001
                    pass
            cluster.stop_all()
        if results.failed == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"   logs kept in {work}")
    return finish(started)


def health_code(cluster, node, path="/healthz/active-active"):
    import urllib.error
    try:
        return cluster.admin(node, "GET", path)[0]
    except urllib.error.HTTPError as e:
        return e.code


def _quiet(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a node still starting: try again
        return False


def finish(started):
    print(f"aa_test: {results.passed} passed, {results.failed} failed in {time.time() - started:.0f} s")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
