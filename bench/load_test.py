#!/usr/bin/env python3
"""Loading data as a user would, against three `aegis serve` with default settings.

Runs `redis-benchmark -t set -n N -r 100000000 -d 256 -c 50 -P 16` against the leader
of three plaintext `aegis serve` processes on 127.0.0.1 (production timing: 10 ms
ticks, 1 s election timeout, a snapshot every 100,000 entries, serialized off the node
loop) and watches the cluster every 100 ms while it runs. Then restarts one follower
(SIGTERM, start again) and measures how long it takes to be ready (`/readyz` 200 and
applied up to the leader's commit index at the time of the restart).

Prints the setup, then: successful SETs and their rate, client errors (redis-benchmark's
exit status and error lines) and server error replies (aegis_resp_errors_total), the
leader changes seen (term or leader id moved), the longest stall (time in which the
leader's commit index did not move while the load ran), each node's RSS against the raw
bytes of keys and values (DBSIZE x (16-byte key + value size): redis-benchmark's keys are
`key:` + 12 digits) right after the load, at its peak while the load ran and at rest (once
it stops moving), and the restarted follower's time to ready. `--json` adds one JSON
line. Exits 1 if a target is missed (`--check`).

Usage: bench/load_test.py [--aegis PATH] [-n 5000000] [--check] [--json]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from aegis_procs import ADMIN, HOST, IDS, RESP, Cluster  # noqa: E402

KEY_BYTES = len("key:") + 12


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


_clients = {}


def replication(cluster, node):
    """INFO replication over one kept connection per node (a new redis-py connection sends
    handshake commands Aegis answers with an error, which would count as server errors)."""
    try:
        if node not in _clients:
            _clients[node] = cluster.client(node)
        return _clients[node].info("replication")
    except Exception:
        _clients.pop(node, None)
        return None


def server_errors():
    """Error replies so far, by code, summed over the nodes (aegis_resp_errors_total{code})."""
    by_code = {}
    for node in IDS:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{ADMIN[node]}/metrics", timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("aegis_resp_errors_total"):
                        code = line.split('code="', 1)[1].split('"', 1)[0] if 'code="' in line else "?"
                        by_code[code] = by_code.get(code, 0) + int(float(line.split()[-1]))
        except Exception:
            pass
    return by_code


class Watcher(threading.Thread):
    """Samples every node every 100 ms: leader and term, the leader's commit index, RSS."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.changes = []          # (seconds since start, term, leader id)
        self.last_view = None
        self.longest_stall = 0.0
        self.stall_at = 0.0
        self.max_rss = {n: 0 for n in IDS}
        self.samples = []          # (t, commit) of the leader
        self.start_time = time.monotonic()

    def run(self):
        last_commit, last_move = None, time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            views = {n: replication(self.cluster, n) for n in IDS}
            leaders = [(int(v.get("term", 0)), n) for n, v in views.items() if v and v.get("aegis_role") == "leader"]
            if leaders:
                term, leader = max(leaders)
                view = (term, leader)
                if view != self.last_view:
                    if self.last_view is not None:
                        self.changes.append((round(now - self.start_time, 1), term, leader))
                    self.last_view = view
                commit = int(views[leader].get("commit_index", 0))
                self.samples.append((now - self.start_time, commit))
                if commit != last_commit:
                    last_commit, last_move = commit, now
            stall = now - last_move
            if stall > self.longest_stall:
                self.longest_stall, self.stall_at = stall, now - self.start_time
            for n in IDS:
                proc = self.cluster.procs.get(n)
                if proc:
                    self.max_rss[n] = max(self.max_rss[n], rss_bytes(proc.pid))
            self.stop.wait(0.1)


def wait_ready(node, commit, deadline):
    """Seconds until `node` answers /readyz 200 and has applied `commit`, or None."""
    start = time.monotonic()
    cluster_client = None
    while time.monotonic() - start < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{ADMIN[node]}/readyz", timeout=1) as r:
                ready = r.status == 200
        except Exception:
            ready = False
        if ready:
            try:
                import redis
                cluster_client = cluster_client or redis.Redis(host=HOST, port=RESP[node], socket_timeout=2)
                if int(cluster_client.info("replication").get("applied_index", 0)) >= commit:
                    return time.monotonic() - start
            except Exception:
                pass
        time.sleep(0.02)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aegis", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "aegis"))
    parser.add_argument("-n", type=int, default=5_000_000, help="requests (SETs)")
    parser.add_argument("-r", type=int, default=100_000_000, help="redis-benchmark keyspace (-r)")
    parser.add_argument("-d", type=int, default=256, help="value size")
    parser.add_argument("-c", type=int, default=50, help="clients")
    parser.add_argument("-P", type=int, default=16, help="pipeline depth")
    parser.add_argument("--ready-target", type=float, default=5.0)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools",
                       shell=True, check=True, stdout=subprocess.DEVNULL)

    work = tempfile.mkdtemp(prefix="aegis-load-")
    cluster = Cluster(os.path.abspath(args.aegis), work, election_ticks=100)
    result = {}
    try:
        for n in IDS:
            cluster.start(n)
        leader = cluster.wait_leader(timeout=30)
        if leader is None:
            print("no leader elected", file=sys.stderr)
            return 1
        print(f"setup: {os.cpu_count()} cores; 3 x aegis serve (plaintext, default timing and snapshot settings); "
              f"redis-benchmark -t set -n {args.n} -r {args.r} -d {args.d} -c {args.c} -P {args.P} against the leader ({leader})")
        for n in IDS:
            replication(cluster, n)
        cpu_before = {n: cpu_seconds(cluster.procs[n].pid) for n in IDS}
        errors_before = server_errors()
        watcher = Watcher(cluster)
        watcher.start()
        started = time.monotonic()
        bench = subprocess.run(["redis-benchmark", "-h", HOST, "-p", str(RESP[leader]), "-t", "set",
                                "-n", str(args.n), "-r", str(args.r), "-d", str(args.d), "-c", str(args.c),
                                "-P", str(args.P), "-q"], capture_output=True, text=True)
        elapsed = time.monotonic() - started
        watcher.stop.set()
        watcher.join()
        errors_after = server_errors()
        error_codes = {c: n - errors_before.get(c, 0) for c, n in errors_after.items() if n - errors_before.get(c, 0)}
        server_error_count = sum(error_codes.values())
        output = (bench.stdout + bench.stderr).replace("\r", "\n")
        client_errors = [l.strip() for l in output.splitlines() if "error" in l.lower() or "unavailable" in l.lower()]
        cpu = sum(cpu_seconds(cluster.procs[n].pid) - cpu_before[n] for n in IDS)
        ok = max(0, args.n - server_error_count) if bench.returncode == 0 else 0
        keys = cluster.client(leader).dbsize()  # after the error count: a new connection
        raw = keys * (KEY_BYTES + args.d)
        rss = {n: rss_bytes(cluster.procs[n].pid) for n in IDS}

        print(f"load: {ok} successful SETs in {elapsed:.1f} s = {ok / elapsed:,.0f}/s; redis-benchmark exit {bench.returncode}; "
              f"client error lines {len(client_errors)}; server error replies {server_error_count} {error_codes or ''}")
        for line in client_errors[:5]:
            print(f"  client: {line}")
        print(f"server CPU: {cpu:.1f} s for 3 nodes = {cpu * 1e6 / max(ok, 1):.1f} µs per successful SET")
        print(f"leader changes: {len(watcher.changes)} {watcher.changes}")
        print(f"longest stall (leader commit index did not move): {watcher.longest_stall * 1000:.0f} ms "
              f"(at {watcher.stall_at:.1f} s)")
        print(f"keys {keys}, raw keys+values {raw / 1e6:.1f} MB")
        for n in IDS:
            print(f"  {n}: RSS {rss[n] / 1e6:.1f} MB now, {watcher.max_rss[n] / 1e6:.1f} MB peak; "
                  f"{rss[n] / max(raw, 1):.2f}x raw now, {watcher.max_rss[n] / max(raw, 1):.2f}x peak")

        # At rest: the load's in-flight buffers drained and the snapshot thread's trim
        # after the last compaction done. Sampled each second until no node's RSS moved
        # by more than 1% for 3 samples in a row (at most 20 s).
        settled, steady, waited = dict(rss), 0, 0
        while steady < 3 and waited < 20:
            time.sleep(1)
            waited += 1
            now = {n: rss_bytes(cluster.procs[n].pid) for n in IDS}
            steady = steady + 1 if all(abs(now[n] - settled[n]) <= settled[n] / 100 for n in IDS) else 0
            settled = now
        print(f"at rest ({waited} s after the load): "
              + ", ".join(f"{n} {settled[n] / 1e6:.1f} MB = {settled[n] / max(raw, 1):.2f}x raw" for n in IDS))

        # Restart one follower and time it back to ready.
        follower = next(n for n in IDS if n != (watcher.last_view or (0, leader))[1])
        commit = int(replication(cluster, leader).get("commit_index", 0))
        proc = cluster.procs.pop(follower)
        proc.terminate()
        proc.wait(timeout=60)
        restart = time.monotonic()
        cluster.start(follower)
        ready = wait_ready(follower, commit, deadline=60)
        total = time.monotonic() - restart
        print(f"restarted follower {follower}: ready (readyz 200, applied >= {commit}) in "
              + (f"{ready:.2f} s" if ready is not None else f"NOT within {total:.0f} s"))

        result = {"requests": args.n, "ok": ok, "seconds": round(elapsed, 1), "rate": round(ok / elapsed),
                  "bench_exit": bench.returncode, "client_errors": len(client_errors),
                  "server_errors": server_error_count, "server_error_codes": error_codes, "cpu_us_per_set": round(cpu * 1e6 / max(ok, 1), 1),
                  "leader_changes": len(watcher.changes), "longest_stall_ms": round(watcher.longest_stall * 1000),
                  "keys": keys, "raw_bytes": raw, "rss": rss, "rss_peak": watcher.max_rss, "rss_at_rest": settled,
                  "rss_ratio_max": round(max(max(rss.values()), 0) / max(raw, 1), 2),
                  "restart_ready_s": None if ready is None else round(ready, 2)}
        if args.json:
            print(json.dumps(result))
        if args.check:
            failed = []
            if bench.returncode != 0 or client_errors or server_error_count:
                failed.append("client errors")
            if watcher.changes:
                failed.append("leader changed")
            if watcher.longest_stall >= 1.0:
                failed.append("a stall of a second or more")
            if result["rss_ratio_max"] > 2.0:
                failed.append("RSS above 2x raw")
            if ready is None or ready > args.ready_target:
                failed.append("restarted follower not ready in time")
            if failed:
                print("MISSED: " + ", ".join(failed))
                return 1
        return 0
    finally:
        cluster.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"data kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
