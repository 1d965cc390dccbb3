#!/usr/bin/env python3
"""Active-active star and tree topologies against real processes (issue 17 item 3).

One-node clusters on loopback (ports from --base-port, default 29600, below Linux's ephemeral range 32768-60999 so that no outgoing connection holds one), every one started
with `aegis serve --active-active --aa-topology FILE`:

1. A star: hub h (three nodes; --hub-nodes 1 for one) and spokes a, b, c. Concurrent writers at the spokes and the hub for
   --seconds: INCRBY on shared counters, SADD of each cluster's own members to shared
   sets, HSET of each cluster's own fields, SET of each cluster's own keys.
2. Every cluster converges to the same dump and to the model: each counter is exactly
   the sum of the acknowledged increments (an increment forwarded twice would count
   twice), every member, field and key written is there.
   With a three-node hub, its leader is then killed: the new leader forwards.
3. Only through the hub: the spokes link only h (GET /v1/aa); with h paused (SIGSTOP)
   a write at a does not reach b or c; once h resumes it does.
4. `aegis aa add d=ADMIN` at the hub only: every spoke adopts the change (its version)
   with the hub's next batch; a new cluster d catches up from the hub and its writes
   reach the spokes.
5. c is killed, then `aegis aa remove c` at the hub only: the hub's link to c stops, the
   others adopt the removal, and the hub's stable stamp (garbage collection) moves
   again with no further write.
6. A tree of depth 2 (r - m1, m2; m1 - l1; m2 - l2): writes at the leaves reach every
   cluster once (counters exact), same dumps. (--no-tree skips it.)

    python3 scripts/aa_star_test.py --aegis .build/release/aegis
"""
import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aegis_procs import IDS, Cluster
from checks import check, results, wait_until

HOST = "127.0.0.1"
COUNTERS = [f"star:counter:{k}" for k in range(3)]
SETS = [f"star:set:{k}" for k in range(2)]
HASH = "star:hash"


class Node:
    """A one-node active-active cluster: RESP base, admin base+1, peer base+2."""

    def __init__(self, aegis, work, name, base, token_file):
        self.aegis, self.name, self.base, self.token_file = aegis, name, base, token_file
        self.dir = os.path.join(work, name)
        self.proc = None

    @property
    def admin(self):
        """The admin address requests go to (the leader's)."""
        return f"{HOST}:{self.base + 1}"

    @property
    def addresses(self):
        """Every admin address of the cluster (for the topology file)."""
        return [self.admin]

    def start(self, topology_file, fresh=True):
        self.topology_file = topology_file
        self.started_at = time.monotonic()
        os.makedirs(self.dir, exist_ok=True)
        cmd = [self.aegis, "serve", "--id", "n1", "--data-dir", os.path.join(self.dir, "data"), "--cluster-id", self.name,
               "--peer-listen", f"{HOST}:{self.base + 2}", "--client-listen", f"{HOST}:{self.base}",
               "--admin-listen", self.admin, "--peers", f"n1={HOST}:{self.base + 2}/{HOST}:{self.base}",
               "--election-ticks", "10", "--admin-token-file", self.token_file,
               "--active-active", "--aa-topology", topology_file]
        if fresh:
            cmd += ["--initial-cluster-state", "new"]
        log = open(os.path.join(self.dir, "node.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def restart_if_stuck(self):
        """A node that did not come up (its port taken by another socket: `aegis serve` then
        exits naming the listener): start again, fresh."""
        if self.proc and time.monotonic() - self.started_at > 8:
            print(f"   {self.name} did not come up in 8 s (a port in use?): restarted")
            self.signal(signal.SIGKILL)
            shutil.rmtree(os.path.join(self.dir, "data"), ignore_errors=True)
            self.start(self.topology_file)

    def signal(self, number):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(number)
            if number == signal.SIGKILL:
                self.proc.wait()

    def client(self):
        return redis.Redis(host=HOST, port=self.base, socket_timeout=3, socket_connect_timeout=1,
                           retry=Retry(NoBackoff(), 0))


class Hub3:
    """A three-node hub cluster (aegis_procs.Cluster) behind the same interface as Node:
    requests go to its leader; SIGSTOP/SIGCONT reach every node."""

    def __init__(self, aegis, work, name, base, token_file, token):
        self.name, self.base = name, base
        self.cluster = None
        self.args = (aegis, os.path.join(work, name), token_file, token)

    @property
    def addresses(self):
        return [f"{HOST}:{self.base + 6 + k}" for k in range(3)]

    @property
    def admin(self):
        leader = self.cluster.leader() if self.cluster else None
        return f"{HOST}:{self.cluster.admin_port(leader)}" if leader else self.addresses[0]

    def start(self, topology_file, fresh=True):
        aegis, work, token_file, token = self.args
        os.makedirs(work, exist_ok=True)
        self.topology_file = topology_file
        self.cluster = Cluster(aegis, work, cluster_id=self.name, election_ticks=10,
                               bases={"resp": self.base, "peer": self.base + 3, "admin": self.base + 6},
                               extra=["--active-active", "--aa-topology", topology_file])
        self.cluster.token, self.cluster.token_file = token, token_file
        for n in IDS:
            self.cluster.start(n)

    def restart_if_stuck(self):
        pass

    def signal(self, number):
        for p in self.cluster.procs.values() if self.cluster else []:
            if p.poll() is None:
                p.send_signal(number)
                if number == signal.SIGKILL:
                    p.wait()

    def client(self):
        leader = self.cluster.leader()
        return redis.Redis(host=HOST, port=self.cluster.resp_port(leader or IDS[0]), socket_timeout=3,
                           socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


class Group:
    def __init__(self, aegis, work, base):
        self.aegis, self.work, self.base = aegis, work, base
        self.token = secrets.token_hex(16)
        self.token_file = os.path.join(work, "token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)
        self.nodes = {}

    def node(self, name, slot, three=False):
        base = self.base + 10 * slot
        self.nodes[name] = (Hub3(self.aegis, self.work, name, base, self.token_file, self.token) if three
                            else Node(self.aegis, self.work, name, base, self.token_file))
        return self.nodes[name]

    def topology_file(self, name, kind, clusters, hub=None, links=()):
        path = os.path.join(self.work, f"{name}.yaml")
        lines = [f"kind: {kind}"] + ([f"hub: {hub}"] if hub else []) + ["clusters:"]
        for c in clusters:
            lines.append(f"  {c}: [" + ", ".join(f'"{a}"' for a in self.nodes[c].addresses) + "]")
        if links:
            lines.append("links:")
            lines += [f"  - [{x}, {y}]" for x, y in links]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def admin(self, name, method, path, body=None):
        req = urllib.request.Request(f"http://{self.nodes[name].admin}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def tool(self, *args):
        """Runs `aegis aa …` with the token; returns (exit code, output)."""
        out = subprocess.run([self.aegis, "aa", *args, "--admin-token", self.token, "--no-tls"],
                             capture_output=True, text=True, timeout=30)
        return out.returncode, (out.stdout + out.stderr).strip()

    def links(self, name):
        return sorted(link["source"] for link in self.admin(name, "GET", "/v1/aa")["links"])

    def ready(self, name):
        try:
            document = self.admin(name, "GET", "/v1/aa")
            topology = self.admin(name, "GET", "/v1/aa/topology")
            return document["isLeader"] and document["enabled"] and topology["replicated"]
        except Exception:
            self.nodes[name].restart_if_stuck()
            raise

    def bring_up(self, names, label):
        ok = wait_until(lambda: all(quiet(lambda n=n: self.ready(n)) for n in names), 40)
        check(label, ok, "" if ok else str({n: quiet(lambda n=n: self.ready(n)) for n in names}))
        return ok

    def stop(self, passed):
        for node in self.nodes.values():
            node.signal(signal.SIGCONT)
            node.signal(signal.SIGKILL)
        if passed:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"   logs kept in {self.work}")


def quiet(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a node starting: try again
        return False


class Writer(threading.Thread):
    """Writes of several types at one cluster; every write here is acknowledged or counted as failed."""

    def __init__(self, node, seconds, seed):
        super().__init__(daemon=True)
        self.node, self.deadline, self.rng = node, time.time() + seconds, random.Random(seed)
        self.incr = {k: 0 for k in COUNTERS}
        self.members = {k: set() for k in SETS}
        self.fields = {}
        self.own = {}
        self.acked = self.errors = 0

    def run(self):
        c = self.node.client()
        name = self.node.name
        step = 0
        while time.time() < self.deadline:
            step += 1
            roll = self.rng.random()
            try:
                if roll < 0.4:
                    key, amount = self.rng.choice(COUNTERS), self.rng.randint(1, 9)
                    c.incrby(key, amount)
                    self.incr[key] += amount
                elif roll < 0.6:
                    key, member = self.rng.choice(SETS), f"{name}-{self.rng.randrange(20)}"
                    c.sadd(key, member)
                    self.members[key].add(member)
                elif roll < 0.8:
                    field, value = f"{name}-f{self.rng.randrange(5)}", f"v{step}"
                    c.hset(HASH, field, value)
                    self.fields[field] = value
                else:
                    key, value = f"star:own:{name}:{self.rng.randrange(5)}", f"v{step}"
                    c.set(key, value)
                    self.own[key] = value
                self.acked += 1
            except redis.RedisError:
                self.errors += 1
                time.sleep(0.05)


def dump(node, own_keys):
    c = node.client()
    out = {k: c.get(k) for k in COUNTERS + sorted(own_keys)}
    for key in SETS:
        out[key] = sorted(c.smembers(key))
    out[HASH] = sorted(c.hgetall(HASH).items())
    return out


def model(writers):
    expected = {k: str(sum(w.incr[k] for w in writers)).encode() if any(w.incr[k] for w in writers) else None
                for k in COUNTERS}
    for key in SETS:
        expected[key] = sorted({m.encode() for w in writers for m in w.members[key]})
    expected[HASH] = sorted((f.encode(), v.encode()) for w in writers for f, v in w.fields.items())
    for w in writers:
        expected.update({k: v.encode() for k, v in w.own.items()})
    return expected


def converge(group, names, expected, timeout, label):
    why = []

    def same():
        dumps = {n: dump(group.nodes[n], [k for k in expected if k.startswith("star:own:")]) for n in names}
        diff = [(n, k) for n in names for k in expected if dumps[n][k] != expected[k]]
        why[:] = [f"{n}:{k}={dumps[n][k]!r} want {expected[k]!r}" for n, k in diff[:4]]
        return not diff

    started = time.time()
    ok = wait_until(lambda: quiet(same), timeout, interval=0.2)
    check(f"{label}: {', '.join(names)} converge to the model", ok,
          f"({time.time() - started:.1f} s)" if ok else "; ".join(why))
    return ok


def star_phase(group, args):
    for k, name in enumerate(["h", "a", "b", "c", "d"]):
        group.node(name, k, three=(name == "h" and args.hub_nodes == 3))
    star = group.topology_file("star", "star", ["h", "a", "b", "c"], hub="h")
    for name in ["h", "a", "b", "c"]:
        group.nodes[name].start(star)
    hub = "a three-node hub and three one-node spokes" if args.hub_nodes == 3 else "four one-node clusters"
    if not group.bring_up(["h", "a", "b", "c"], f"{hub} up, the star recorded through each log"):
        return
    check("the spokes link only the hub, the hub every spoke",
          all(group.links(s) == ["h"] for s in "abc") and group.links("h") == ["a", "b", "c"],
          f"(h links {group.links('h')})")

    # Only through the hub: h paused, a's write stays at a.
    group.nodes["h"].signal(signal.SIGSTOP)
    group.nodes["a"].client().set("star:probe", "from-a")
    time.sleep(1.5)
    unseen = all(group.nodes[s].client().get("star:probe") is None for s in "bc")
    group.nodes["h"].signal(signal.SIGCONT)
    check("with the hub paused, a spoke's write does not reach the other spokes", unseen)
    started = time.time()
    ok = wait_until(lambda: all(quiet(lambda s=s: group.nodes[s].client().get("star:probe") == b"from-a") for s in "bc"), 15)
    check("once the hub resumes, it forwards the write to b and c", ok, f"({time.time() - started:.2f} s)")

    writers = [Writer(group.nodes[n], args.seconds, args.seed + k) for k, n in enumerate("habc")]
    started = time.time()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    acked = sum(w.acked for w in writers)
    print(f"   {acked} writes acknowledged in {time.time() - started:.1f} s at h, a, b, c "
          f"({sum(w.errors for w in writers)} errors); increments {sum(sum(w.incr.values()) for w in writers)}")
    expected = model(writers)
    if not converge(group, ["h", "a", "b", "c"], expected, args.converge, "star"):
        return
    check("every counter is exactly the sum of the acknowledged INCRBYs (nothing applied twice)",
          all(group.nodes[n].client().get(k) == expected[k] for n in "habc" for k in COUNTERS),
          str({k: expected[k] for k in COUNTERS}))

    if args.hub_nodes == 3:
        # The hub's leader killed: the new leader takes the links from the replicated topology.
        old_leader = group.nodes["h"].cluster.leader()
        group.nodes["h"].cluster.kill(old_leader)
        others = [n for n in IDS if n != old_leader]
        new_leader = group.nodes["h"].cluster.wait_leader(among=others, timeout=20)
        group.nodes["a"].client().incrby(COUNTERS[1], 500)
        want = str(int(expected[COUNTERS[1]]) + 500).encode()
        started = time.time()
        ok = wait_until(lambda: all(quiet(lambda s=s: group.nodes[s].client().get(COUNTERS[1]) == want) for s in "bc"), 20)
        check(f"hub leader {old_leader} killed: the new leader {new_leader} forwards a's INCRBY to b and c, once", ok,
              f"({time.time() - started:.1f} s)")
        expected[COUNTERS[1]] = want
        group.nodes["h"].cluster.start(old_leader)

    # Adding d: started with a star of h and d, added at the hub (a link) and at the spokes (membership).
    # d's file names the whole group (its garbage collection must wait for every cluster).
    d_file = group.topology_file("d", "star", ["h", "a", "b", "c", "d"], hub="h")
    group.nodes["d"].start(d_file)
    group.bring_up(["d"], "d up")
    added = time.time()
    code, out = group.tool("add", f"d={group.nodes['d'].admin}", "--admin", group.nodes["h"].admin)
    check("`aegis aa add d=ADMIN` at the hub only", code == 0 and group.links("h") == ["a", "b", "c", "d"],
          out.splitlines()[-1] if out else "")
    version = quiet(lambda: group.admin("h", "GET", "/v1/aa/topology")["version"])
    adopted = {}

    def spokes_adopted():
        for s in "abcd":
            adopted[s] = quiet(lambda s=s: group.admin(s, "GET", "/v1/aa/topology"))
        return all(t and t["version"] == version and "d" in t["clusters"] for t in adopted.values())
    ok = wait_until(spokes_adopted, 10)
    check(f"every spoke adopts the hub's change (version {version}) with the hub's next batch: d is a member everywhere, "
          "a spoke still links only the hub", ok and all(adopted[s]["neighbours"] == ["h"] for s in "abcd"),
          json.dumps({s: t and (t["version"], sorted(t["clusters"]), t["neighbours"]) for s, t in adopted.items()}))
    ok = converge(group, ["d"], expected, args.converge, "added cluster d")
    if ok:
        print(f"   d caught up {time.time() - added:.1f} s after `aegis aa add` at the hub")
    group.nodes["d"].client().incrby(COUNTERS[0], 1000)
    total = str(int(expected[COUNTERS[0]]) + 1000).encode()
    ok = wait_until(lambda: all(quiet(lambda s=s: group.nodes[s].client().get(COUNTERS[0]) == total) for s in "abc"), 15)
    check("d's INCRBY reaches every spoke through the hub, once", ok, total.decode())

    # Removing c (dead): its link stops and garbage collection moves again.
    group.nodes["c"].signal(signal.SIGKILL)
    stable_before = group.admin("h", "GET", "/v1/aa")["metadata"]["stableMillis"]
    for k in range(5):
        group.nodes["a"].client().sadd("star:gc", f"m{k}")
        group.nodes["a"].client().delete("star:gc")

    # One write per live cluster: every cluster's clock passes the tombstones' stamps.
    for name in "habd":
        group.nodes[name].client().set(f"star:poke:{name}", "before")
    time.sleep(0.5)
    stuck = group.admin("h", "GET", "/v1/aa")["metadata"]
    check("with c dead but still in the group, the hub collects no tombstone part", stuck["emptyParts"] >= 1,
          f"({stuck['emptyParts']} waiting)")
    code, out = group.tool("remove", "c", "--admin", group.nodes["h"].admin)
    check("`aegis aa remove c` at the hub only", code == 0, "" if code == 0 else out[-200:])
    check("the hub's link to c stopped", wait_until(lambda: quiet(lambda: group.links("h") == ["a", "b", "d"]), 5),
          str(quiet(lambda: group.links("h"))))
    check("a, b and d adopt the removal", wait_until(lambda: all(
        quiet(lambda s=s: "c" not in group.admin(s, "GET", "/v1/aa/topology")["clusters"]) for s in "abd"), 10))
    # No write after the removal: an idle cluster's progress travels on its own (a link
    # logs a batch whose progress vector moved, StreamSettings.progressIntervalMillis).
    moved = []
    ok = wait_until(lambda: quiet(lambda: moved.append(group.admin("h", "GET", "/v1/aa")["metadata"]) or
                                  (moved[-1]["stableMillis"] > stuck["stableMillis"] and moved[-1]["emptyParts"] == 0)), 15)
    after = moved[-1] if moved else {}
    check("after removing c, with no further write, the hub's stable stamp moves and the tombstone parts are collected", ok,
          f"(stable {stable_before} -> {stuck['stableMillis']} with c dead and writes everywhere, {stuck['emptyParts']} parts waiting -> "
          f"{after.get('stableMillis')} after removal, {after.get('emptyParts')} waiting)")


def tree_phase(group, args):
    names = ["r", "m1", "m2", "l1", "l2"]
    for k, name in enumerate(names):
        group.node(name, 10 + k)
    links = [("r", "m1"), ("r", "m2"), ("m1", "l1"), ("m2", "l2")]
    tree = group.topology_file("tree", "tree", names, links=links)
    for name in names:
        group.nodes[name].start(tree)
    if not group.bring_up(names, "a tree of depth 2 (five clusters) up"):
        return
    check("each cluster links its tree neighbours only", group.links("l1") == ["m1"] and group.links("r") == ["m1", "m2"]
          and group.links("m1") == ["l1", "r"], f"(m1 links {group.links('m1')})")
    writers = [Writer(group.nodes[n], max(1.0, args.seconds / 2), args.seed + 100 + k) for k, n in enumerate(["l1", "l2", "r"])]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    print(f"   tree: {sum(w.acked for w in writers)} writes acknowledged at l1, l2, r")
    expected = model(writers)
    converge(group, names, expected, args.converge, "tree")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--converge", type=float, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--base-port", type=int, default=29600)
    parser.add_argument("--no-tree", action="store_true")
    parser.add_argument("--hub-nodes", type=int, choices=(1, 3), default=3, help="nodes of the star's hub cluster")
    args = parser.parse_args()
    print(f"aa_star_test: seed {args.seed}, {args.seconds} s of writes, ports from {args.base_port}")
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-aa-star-")
    group = Group(args.aegis, work, args.base_port)
    try:
        star_phase(group, args)
        if not args.no_tree:
            tree_phase(group, args)
    finally:
        group.stop(results.failed == 0)
    print(f"aa_star_test: {results.passed} passed, {results.failed} failed in {time.time() - started:.1f} s")
    return 0 if results.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
