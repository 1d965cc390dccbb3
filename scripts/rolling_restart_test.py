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

The load is `aegis bench --failover`: 50 clients in one compiled process on an event
loop (as redis-benchmark is; 50 redis-py threads added 100-250 ms waits of their own to
the figures even with no restart), each in a closed loop of SET and GET on its own keys,
every GET checked against the client's last acknowledged SET. A client whose connection
is closed by a stopping node reconnects to another node in the rotation and sends the
request again: the server
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
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aegis_procs  # noqa: E402
from aegis_procs import ADMIN, HOST, IDS, RESP, Cluster  # noqa: E402
from checks import check, results, wait_until  # noqa: E402
import rolling_restart  # noqa: E402

CLIENTS = 50


class Load:
    """`aegis bench --failover`: CLIENTS closed-loop clients (one compiled process on an
    event loop, as redis-benchmark is, so that the load generator's own scheduling does
    not add its waits to the figures) alternating SET and GET on their own keys. A node
    is taken out of the rotation by listing it in the rotation file (new connections
    avoid it, as behind a load balancer). SIGINT ends the load; the bench then writes
    every request as CSV and each key's last acknowledged value as JSON."""

    def __init__(self, aegis, work):
        self.rotation = os.path.join(work, "out-of-rotation")
        self.records = os.path.join(work, "requests.csv")
        self.acked = os.path.join(work, "acked.json")
        self.out = set()
        self._write_rotation()
        servers = ",".join(f"{HOST}:{RESP[n]}" for n in IDS)
        self.proc = subprocess.Popen(
            [aegis, "bench", "--failover", "--server", servers, "-c", str(CLIENTS), "--duration", "600",
             "--rotation-file", self.rotation, "--records-out", self.records, "--acked-out", self.acked, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def _write_rotation(self):
        with open(self.rotation + ".tmp", "w") as f:
            f.write("".join(f"{HOST}:{RESP[n]}\n" for n in sorted(self.out)))
        os.replace(self.rotation + ".tmp", self.rotation)

    def take_out(self, node):
        self.out.add(node)
        self._write_rotation()

    def put_back(self, node):
        self.out.discard(node)
        self._write_rotation()

    def finish(self):
        """Stops the load; returns (summary, [(started, seconds, node, tries, op)], acked)."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"aegis bench --failover exited {self.proc.returncode}: {err[-2000:]}")
        summary = json.loads(out)
        node_of = {f"{HOST}:{RESP[n]}": n for n in IDS}
        timed = []
        with open(self.records) as f:
            for row in csv.DictReader(f):
                timed.append((float(row["started"]), float(row["seconds"]), node_of.get(row["server"], row["server"]),
                              int(row["tries"]), row["op"]))
        with open(self.acked) as f:
            acked = json.load(f)
        return summary, timed, acked

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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
    os.environ.setdefault("AEGIS_SLOW_LOOP_WARNING_MS", "30")  # the nodes log their slow loop passes (queue wait included)
    cluster = Cluster(os.path.abspath(args.aegis), work, election_ticks=15)
    load = None
    try:
        for n in IDS:
            cluster.start(n)
        check("cluster elects a leader", cluster.wait_leader(timeout=30) is not None)
        check("every node ready", wait_until(lambda: all(rolling_restart.ready(cluster, n) for n in IDS), 30))
        load = Load(os.path.abspath(args.aegis), work)
        time.sleep(2)  # warm up under load
        load_started = time.time()
        log = []
        steps = restart_rolling(cluster, os.path.abspath(args.aegis), load.take_out, load.put_back, log.append)
        time.sleep(2)  # load after the last restart
        summary, records, acked = load.finish()
        # Requests started from the first restart on: the warm-up before it (the
        # clients' first connections) is reported apart.
        timed = [(started, took) for started, took, *_ in records]
        latencies = sorted(took for started, took in timed if started >= load_started)
        warmup = sorted(took for started, took in timed if started < load_started)
        failures = summary["failures"]
        slow = sorted((r for r in records if r[0] >= load_started and r[1] > 0.05), key=lambda r: r[0])
        check("every node restarted once", [s["node"] for s in steps] and len(steps) == 3 and all(s["ok"] for s in steps),
              json.dumps(steps))
        check("no failed request", summary["failed"] == 0, f"{summary['failed']} failed: {failures[:5]}")
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
            "clients": CLIENTS, "requests": len(latencies), "failed": summary["failed"], "reconnections": summary["reconnects"],
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
        # Where the nodes' own loops were slow (a pass over --slow-loop-warning-ms, set to
        # 30 ms for this test, its queue wait included): what a slow request overlapped on the server side.
        for n in IDS:
            with open(os.path.join(work, f"{n}.log"), errors="replace") as f:
                passes = [line.rstrip() for line in f if "a pass of the node loop was slow" in line]
            print(f"{n}: {len(passes)} slow node-loop passes" + "".join(f"\n  {p[:400]}" for p in passes[:8]))
        cluster_view_and_health(cluster, os.path.abspath(args.aegis))
    finally:
        if load is not None:
            load.kill()
        cluster.stop_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
