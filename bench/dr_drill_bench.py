#!/usr/bin/env python3
"""RTO and RPO with many keys: a DR drill, then an unplanned failover.

Setup: a primary cluster and a standby cluster, three `aegis serve` processes each on
127.0.0.1 (write lease 2 s), loaded with --keys keys (default 1,000,000; MSET of 1000
keys of 16-byte values per command, 4 connections) through the primary; waits until
the standby's link reports lag 0.

1. `aegis dr drill --json` while a writer keeps writing to the primary (about 500 SETs/s):
   RTO (drill start -> the copy's first acknowledged write), RPO (entries and seconds the
   copy was behind), and the phases (copy, restore, start, ready, promote, first write).
2. Unplanned failover: the whole primary is SIGKILLed while the writer runs; `aegis dr
   failover` (waits out the lease); RTO = kill -> first acknowledged write on the standby,
   RPO = acknowledged writes missing on the standby.

Prints the setup and the figures as JSON. About 1-2 minutes with 1M keys on 2 cores.

    python3 bench/dr_drill_bench.py --aegis .build/release/aegis [--keys 1000000]
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from aegis_procs import IDS, Cluster  # noqa: E402
from checks import wait_until  # noqa: E402
from dr_test import doc, leader_doc  # noqa: E402

PRIMARY_OFFSET = 820
STANDBY_OFFSET = 920
DRILL_PORT = 10391


class Writer(threading.Thread):
    """SETs w<n> through the primary's nodes, about `rate` a second, recording acknowledgements."""

    def __init__(self, cluster, rate=500):
        super().__init__(daemon=True)
        self.cluster, self.pause = cluster, 1.0 / rate
        self.acked, self.stop = [], threading.Event()

    def run(self):
        clients = [self.cluster.client(n) for n in IDS]
        k = 0
        while not self.stop.is_set():
            try:
                if clients[k % 3].set(f"w{k}", "x"):
                    self.acked.append(f"w{k}")
            except Exception:  # noqa: BLE001 - refused or dead
                pass
            k += 1
            time.sleep(self.pause)


def load(cluster, keys, connections=4, batch=1000):
    def worker(start, stop):
        c = cluster.client("n1")
        value = "v" * 16
        for i in range(start, stop, batch):
            args = []
            for k in range(i, min(i + batch, stop)):
                args += [f"key:{k}", value]
            for _ in range(50):
                try:
                    c.mset(dict(zip(args[::2], args[1::2])))
                    break
                except Exception:  # noqa: BLE001 - the lease lapsing for a moment under load
                    time.sleep(0.1)
    step = (keys + connections - 1) // connections
    threads = [threading.Thread(target=worker, args=(s, min(s + step, keys))) for s in range(0, keys, step)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--keys", type=int, default=1_000_000)
    args = ap.parse_args()
    aegis = os.path.abspath(args.aegis)
    work = tempfile.mkdtemp(prefix="aegis-drbench-")
    for name in ("east", "west"):
        os.makedirs(os.path.join(work, name))
    primary = Cluster(aegis, os.path.join(work, "east"), port_offset=PRIMARY_OFFSET, cluster_id="east")
    standby = Cluster(aegis, os.path.join(work, "west"), port_offset=STANDBY_OFFSET, cluster_id="west")
    standby.token, standby.token_file = primary.token, primary.token_file
    primary.extra = ["--dr-peer", standby.admin_addresses()]
    standby.extra = ["--standby-of", primary.admin_addresses(), "--dr-lease", "2s", "--dr-peer", primary.admin_addresses()]
    figures = {"keys": args.keys, "setup": "3+3 aegis serve on 127.0.0.1, lease 2s, election 30 ticks of 10 ms"}
    try:
        for n in IDS:
            primary.start(n)
            standby.start(n)
        primary.wait_leader()
        standby.wait_leader()
        wait_until(lambda: all(doc(standby, n)["role"] == "standby" for n in IDS), 30)
        wait_until(lambda: primary.client("n1").set("hello", "1"), 30)
        t0 = time.monotonic()
        load(primary, args.keys)
        figures["load_seconds"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        caught = wait_until(lambda: (leader_doc(standby) or {}).get("link", {}).get("lagEntries", 1) == 0
                            and standby.client("n2").dbsize() >= args.keys, 600, interval=0.5)
        figures["standby_catch_up_seconds"] = round(time.monotonic() - t0, 1)
        figures["standby_caught_up"] = caught
        print(json.dumps(figures), flush=True)

        writer = Writer(primary)
        writer.start()
        time.sleep(1)
        out = subprocess.run([aegis, "dr", "drill", "--standby", standby.admin_addresses(), "--primary",
                              primary.admin_addresses(), "--standby-data-dir", standby.data("n2"), "--port",
                              str(DRILL_PORT), "--json", "--no-tls", "--admin-token", primary.token],
                             capture_output=True, text=True, timeout=600)
        drill = json.loads(out.stdout) if out.stdout.strip().startswith("{") else {"error": out.stdout + out.stderr}
        figures["drill"] = {k: drill.get(k) for k in ("ok", "error", "rtoSeconds", "rpoEntries", "rpoSeconds", "keys",
                                                       "phasesMillis")}
        print(json.dumps(figures["drill"]), flush=True)

        # Unplanned failover with the same data.
        time.sleep(1)
        killed = time.monotonic()
        for n in IDS:
            primary.kill(n)
        writer.stop.set()
        first = []

        def probe():
            clients = [standby.client(n) for n in IDS]
            while not first and time.monotonic() - killed < 60:
                for c in clients:
                    try:
                        if c.set("after-failover", "1"):
                            first.append(time.monotonic())
                            return
                    except Exception:  # noqa: BLE001
                        pass
                time.sleep(0.005)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        out = subprocess.run([aegis, "dr", "failover", "--standby", standby.admin_addresses(), "--no-tls",
                              "--admin-token", primary.token], capture_output=True, text=True, timeout=120)
        prober.join(60)
        writer.join(5)
        acked = list(writer.acked)
        c = standby.client(standby.leader() or "n1")
        missing = sum(1 for i in range(0, len(acked), 500) for v in c.mget(acked[i:i + 500]) if v is None)
        figures["failover"] = {"output": out.stdout.strip()[-200:], "rto_seconds": round(first[0] - killed, 3) if first else None,
                               "rpo_acknowledged_writes_missing": missing, "acknowledged_writes": len(acked)}
        print(json.dumps(figures["failover"]), flush=True)
    finally:
        primary.stop_all()
        standby.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
