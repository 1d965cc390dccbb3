#!/usr/bin/env python3
"""Planned maintenance loses nothing: a rolling restart of all three nodes of an
`aegis dev`-style cluster (three `aegis serve` processes on loopback, election timeout
of 15 ticks as `aegis dev` uses) under load from 50 concurrent clients.

The procedure is `aegis cluster restart-rolling` (over a nodes file with each node's
command, as for `aegis dev`): one node at a time, followers first and the leader last,
each only once every other member has caught up (lag 0 in the leader's view, every
member healthy): POST /v1/node/shutdown (a leader hands leadership to the most
caught-up voter first, then the node answers the requests it already read and closes
its connections), start its command again, wait for /readyz.

The clients are 50 redis-py connections (5 processes x 10 threads, so that one Python
interpreter's lock does not add its own waits to the figures), each in a closed loop of
SET and GET on its own keys. A client whose connection is closed by a stopping node
reconnects to another node in the rotation and sends the request again: the server
closes a connection only after answering every request it read, so a request sent on a
closed connection was never executed (the same rule a load balancer's retry relies on).
Any error answer (TIMEOUT, UNAVAILABLE, NOLEADER, …) is a failed request. Each
request's latency runs from its first send to its answer, retries included.

Checks: every node restarted, no failed request, no request slower than --max-ms
(100 ms), every acknowledged SET readable after the restarts. Prints the figures as
JSON. Latencies count the requests started from the first restart to the end of the
load (2 s after the last node caught up); the 2 s warm-up before (the client processes
starting and connecting) is reported apart and not checked. Then the cluster view and health of real nodes: INFO cluster and `aegis cluster
status` asked of a follower show every member healthy with MATCH and LAG; with the two
other nodes killed, the survivor's /readyz fails on `quorum` while /livez passes.
Bounded: about 40 s on this machine.

Usage: scripts/rolling_restart_test.py [--aegis PATH] [--max-ms 100] [--keep] [--port-base N]
"""
import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aegis_procs  # noqa: E402
from aegis_procs import ADMIN, HOST, IDS, RESP, Cluster  # noqa: E402
from checks import check, results, wait_until  # noqa: E402
import rolling_restart  # noqa: E402

PROCESSES = 5
THREADS = 10


def client_process(index, rotation, stop, out):
    """THREADS closed-loop clients; sends back (latencies, failures, slow, acked keys)."""
    lock = threading.Lock()
    latencies, failures, slow, acked = [], [], [], {}

    def connect(avoid=None):
        nodes = [n for n in IDS if rotation[IDS.index(n)] and n != avoid] or [n for n in IDS if n != avoid]
        node = random.choice(nodes)
        return node, redis.Redis(host=HOST, port=RESP[node], socket_timeout=2, socket_connect_timeout=1,
                                 retry=Retry(NoBackoff(), 0))

    def run(t):
        node, r = connect()
        seq = 0
        mine = {}
        local_lat, local_fail, local_slow = [], [], []
        while not stop.is_set():
            key = f"c{index}-{t}-{seq % 50}"
            write = seq % 2 == 0
            value = f"{seq}"
            started = time.monotonic()
            tries = 0
            while True:
                tries += 1
                try:
                    if write:
                        r.set(key, value)
                        mine[key] = value
                    else:
                        got = r.get(key)
                        want = mine.get(key)
                        if want is not None and (got or b"").decode() != want:
                            local_fail.append(f"stale read of {key} at {node}: {got!r}, wanted {want!r}")
                    break
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    # A closed connection: the request was not read; try another node.
                    if isinstance(e, redis.TimeoutError) or tries > 20:
                        local_fail.append(f"{type(e).__name__} at {node} after {tries} tries: {e}")
                        break
                    old = node
                    node, r = connect(avoid=old)
                except redis.ResponseError as e:
                    local_fail.append(f"error from {node}: {e}")
                    break
            took = time.monotonic() - started
            local_lat.append((time.time() - took, took))
            if took > 0.05:
                local_slow.append((time.time() - took, took, node, tries, "SET" if write else "GET"))
            seq += 1
        with lock:
            latencies.extend(local_lat)
            failures.extend(local_fail)
            slow.extend(local_slow)
            acked.update(mine)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out.put((latencies, failures, slow, acked))


def cluster_view_and_health(cluster, aegis):
    """Every node's view of the cluster, whichever node is asked; then a node that lost
    quorum is not ready but alive."""
    leader = cluster.wait_leader()
    follower = next(n for n in IDS if n != leader)
    check("every node sees every member healthy", wait_until(lambda: all(
        cluster.client(n).info("cluster").get("cluster_state") == "healthy" for n in IDS), 10))
    info = cluster.client(follower).info("cluster")
    members = [v for k, v in info.items() if k.startswith("cluster_member")]
    check("INFO cluster on a follower lists every member with its status, match and lag",
          len(members) == 3 and all(m.get("status") == "healthy" and "match" in m and "lag" in m for m in members),
          json.dumps(members))
    out = subprocess.run([aegis, "cluster", "status", "--admin", f"{HOST}:{ADMIN[follower]}", "--admin-token",
                          cluster.token, "--no-tls"], capture_output=True, text=True, timeout=20)
    rows = [line.split() for line in out.stdout.splitlines() if line.split() and line.split()[0] in IDS]
    check("aegis cluster status asked of a follower shows every member's status, MATCH and LAG",
          len(rows) == 3 and all(r[2] == "healthy" and r[5] != "-" and r[6] != "-" for r in rows), out.stdout + out.stderr)
    probe = rolling_restart.nodes_of(cluster)
    check("/readyz/quorum passes with every member up", probe.get(follower, "/readyz/quorum")[0] == 200)
    for n in IDS:
        if n != follower:
            cluster.kill(n)
    lost = wait_until(lambda: probe.get(follower, "/readyz/quorum")[0] == 503, 10)
    code, body = probe.get(follower, "/readyz")
    check("a node that lost quorum is not ready", lost and code == 503 and b"[-]quorum failed" in body, body.decode())
    check("... but alive", probe.get(follower, "/livez")[0] == 200)
    info = cluster.client(follower).info("cluster")
    check("... and reports the others down and no quorum",
          info.get("cluster_state") == "noQuorum" and info.get("cluster_has_quorum") == 0, json.dumps(info))
    # A rolling restart refuses to stop a node while the members are not caught up.
    pid = cluster.procs[follower].pid
    out = subprocess.run([aegis, "cluster", "restart-rolling", "--nodes-file", os.path.join(cluster.work, "nodes.json"),
                          "--timeout", "2", "--no-tls", "--admin-token", cluster.token],
                         capture_output=True, text=True, timeout=30)
    check("aegis cluster restart-rolling stops nothing while the members are not caught up (exit 1, says why)",
          out.returncode == 1 and "did not catch up" in out.stdout and cluster.procs[follower].pid == pid
          and probe.get(follower, "/livez")[0] == 200, (out.stdout + out.stderr)[-300:])


class PidProcess:
    """A node restarted by `aegis cluster restart-rolling` (not this process's child), as
    aegis_procs.Cluster handles its processes."""

    def __init__(self, pid):
        self.pid = pid

    def poll(self):
        try:
            os.kill(self.pid, 0)
            return None
        except OSError:
            return 0

    def send_signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except OSError:
            pass

    def wait(self, timeout=10):
        wait_until(lambda: self.poll() is not None, timeout)


def restart_rolling(cluster, aegis, on_stop, on_ready, log):
    """Runs `aegis cluster restart-rolling` over a nodes file holding each node's own
    command (the way it restarts `aegis dev` nodes); follows its log lines to take a node
    out of the clients' rotation while it restarts. Returns its per-node results."""
    path = os.path.join(cluster.work, "nodes.json")
    with open(path, "w") as f:
        json.dump({"nodes": [{"id": n, "admin": f"{HOST}:{ADMIN[n]}", "pid": cluster.procs[n].pid,
                              "log": os.path.join(cluster.work, f"{n}.log"), "command": cluster.command(n)}
                             for n in IDS]}, f)
    proc = subprocess.Popen([aegis, "cluster", "restart-rolling", "--nodes-file", path, "--json", "--no-tls",
                             "--admin-token", cluster.token], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        line = line.strip()
        print(line, flush=True)
        match = re.match(r"\[\d+/\d+\] (\S+): (.*)", line)
        if not match:
            continue
        node, what = match.groups()
        log({"at": time.time(), "what": f"{node}: {what}"})
        if what.split(";")[-1].strip().startswith("stopping"):
            on_stop(node)
        elif what.startswith("ready in"):
            on_ready(node)
    out = proc.stdout.read()
    proc.wait(timeout=30)
    with open(path) as f:
        for node in json.load(f)["nodes"]:
            old = cluster.procs.get(node["id"])
            if old is not None and old.pid != node["pid"]:
                old.wait(timeout=10)  # reap the stopped process
                cluster.procs[node["id"]] = PidProcess(node["pid"])
    return json.loads(out) if out.strip().startswith("[") else [{"node": "?", "ok": False, "error": out}]


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--max-ms", type=float, default=100.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--port-base", type=int, help="RESP on BASE+k, admin BASE+10+k, peers BASE+20+k "
                    "(default: aegis_procs' ports)")
    args = ap.parse_args()
    if args.port_base is not None:
        aegis_procs.use_port_base(args.port_base)
    work = tempfile.mkdtemp(prefix="aegis-rolling-")
    cluster = Cluster(os.path.abspath(args.aegis), work, election_ticks=15)
    ctx = multiprocessing.get_context("fork")
    rotation = ctx.Array("b", [1] * len(IDS))
    stop = ctx.Event()
    out = ctx.Queue()
    procs = []
    try:
        for n in IDS:
            cluster.start(n)
        check("cluster elects a leader", cluster.wait_leader(timeout=30) is not None)
        check("every node ready", wait_until(lambda: all(rolling_restart.ready(cluster, n) for n in IDS), 30))
        procs = [ctx.Process(target=client_process, args=(k, rotation, stop, out)) for k in range(PROCESSES)]
        for p in procs:
            p.start()
        time.sleep(2)  # warm up under load
        load_started = time.time()
        log = []

        def on_stop(node):
            rotation[IDS.index(node)] = 0  # out of the clients' rotation, as a load balancer would

        def on_ready(node):
            rotation[IDS.index(node)] = 1

        steps = restart_rolling(cluster, os.path.abspath(args.aegis), on_stop, on_ready, log.append)
        time.sleep(2)  # load after the last restart
        stop.set()
        gathered = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=10)
        # Requests started from the first restart on: the warm-up before it (client
        # processes starting, first connections) is reported apart.
        timed = [x for g in gathered for x in g[0]]
        latencies = sorted(took for started, took in timed if started >= load_started)
        warmup = sorted(took for started, took in timed if started < load_started)
        failures = [x for g in gathered for x in g[1]]
        slow = sorted((x for g in gathered for x in g[2] if x[0] >= load_started), key=lambda s: s[0])
        acked = {}
        for g in gathered:
            acked.update(g[3])
        check("every node restarted once", [s["node"] for s in steps] and len(steps) == 3 and all(s["ok"] for s in steps),
              json.dumps(steps))
        check("no failed request", not failures, f"{len(failures)} failed: {failures[:5]}")
        worst_ms = latencies[-1] * 1000 if latencies else 0
        check(f"no request slower than {args.max_ms:g} ms", worst_ms <= args.max_ms, f"slowest {worst_ms:.1f} ms")
        reader = cluster.client(cluster.wait_leader() or IDS[0])
        missing = [k for k, v in acked.items() if (reader.get(k) or b"").decode() != v]
        check("every acknowledged write readable after the restarts", not missing, f"{len(missing)} of {len(acked)} differ")
        phases = [(e["at"], e["what"]) for e in log]

        def phase_at(t):
            current = "steady"
            for at, what in phases:
                if at <= t:
                    current = what
            return current

        # Per phase of the restarts (the requests started in it): where the slow ones are.
        by_phase = {}
        for started, took in timed:
            if started >= load_started:
                entry = by_phase.setdefault(phase_at(started), {"requests": 0, "max_ms": 0.0, "over_100ms": 0})
                entry["requests"] += 1
                entry["max_ms"] = round(max(entry["max_ms"], took * 1000), 2)
                entry["over_100ms"] += took > 0.1
        figures = {
            "clients": PROCESSES * THREADS, "requests": len(latencies), "failed": len(failures),
            "seconds": round(time.time() - load_started, 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "p999_ms": round(percentile(latencies, 0.999) * 1000, 2), "max_ms": round(worst_ms, 2),
            "over_100ms": sum(1 for x in latencies if x > 0.1), "over_50ms": len(slow),
            "warmup": {"requests": len(warmup), "failed_included_above": True,
                       "p99_ms": round(percentile(warmup, 0.99) * 1000, 2),
                       "max_ms": round((warmup[-1] if warmup else 0) * 1000, 2)},
            "restarts": steps,
            "phases": [{"at": round(at - load_started, 3), "what": what, **by_phase.get(what, {})} for at, what in phases],
            "steady": by_phase.get("steady", {}),
            "slowest": [{"ms": round(s[1] * 1000, 1), "node": s[2], "tries": s[3], "op": s[4], "started_during": phase_at(s[0]),
                         "started_at": round(s[0] - load_started, 3)}
                        for s in sorted(slow, key=lambda s: -s[1])[:10]],
        }
        print(json.dumps(figures))
        cluster_view_and_health(cluster, os.path.abspath(args.aegis))
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.terminate()
        cluster.stop_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
