#!/usr/bin/env python3
"""Disaster recovery against real processes: a primary cluster and a standby cluster
(3 nodes each) on loopback, fed by the change stream.

1. Writes flow from the primary to the standby; the standby refuses writes with
   -READONLY naming the primary; /primary and /replica answer as load balancers expect.
2. The whole primary is SIGKILLed; `aegis dr failover` promotes the standby (it waits
   out the primary's write lease). Printed: RTO (kill -> first acknowledged write on
   the new primary) and RPO (writes acknowledged by the old primary missing on the new).
3. The old primary is restarted: every write is refused (never acknowledged), and once
   it reached the new primary (--dr-peer) the refusal names it (-READONLY ... primary:).
   Before the kill the standby is paused (SIGSTOP) for a moment, so the primary
   acknowledges writes the standby never receives: a divergent tail (RPO > 0).
4. Failback: `aegis dr rejoin` makes the old primary a standby of the new one: its
   divergent tail (every acknowledged write the new primary lacks, and nothing else) is
   in the side file (`aegis dr divergent FILE --json`), discarded from its state (it is
   re-seeded from the new primary's snapshot), and it then holds every write of the new
   primary. `aegis dr switchover` moves the primary back: every acknowledged write is
   there (RPO 0).

    python3 scripts/dr_test.py --aegis .build/release/aegis
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from aegis_procs import HOST, IDS, Cluster
from checks import check, results, wait_until

# Ports away from the other real-process tests' (aegis_procs defaults: 7311-, 8311-,
# 9311-), which may run on the same host at the same time.
PRIMARY_OFFSET = 400
STANDBY_OFFSET = 500
LEASE = "1s"


def doc(cluster, node):
    status, body = cluster.admin(node, "GET", "/v1/dr")
    return json.loads(body)


def leader_doc(cluster):
    for n in IDS:
        try:
            d = doc(cluster, n)
            if d["isLeader"]:
                return d
        except Exception:
            pass
    return None


def probe(cluster, node, path):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{HOST}:{cluster.admin_port(node)}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Writer:
    """Writes w<n> = <n> through every node of a cluster in turn; records what was acknowledged."""

    def __init__(self, cluster, prefix):
        self.cluster, self.prefix = cluster, prefix
        self.acked, self.errors = [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        clients = {n: self.cluster.client(n) for n in IDS}
        k = 0
        while not self.stop.is_set():
            key = f"{self.prefix}{k}"
            try:
                if clients[IDS[k % 3]].set(key, str(k)):
                    self.acked.append(key)
            except Exception as e:  # noqa: BLE001 - a refusal or a dead node
                self.errors.append(str(e))
                time.sleep(0.01)
            k += 1


def aegis_dr(args, *argv):
    out = subprocess.run([args.aegis, "dr", *argv, "--no-tls", "--admin-token", args.token],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def write_refusals(cluster, seconds):
    """Tries writes on every node for `seconds`; returns (acknowledged, error texts)."""
    acked, errors = 0, []
    deadline = time.monotonic() + seconds
    k = 0
    while time.monotonic() < deadline:
        n = IDS[k % 3]
        try:
            if cluster.client(n).set(f"fenced{k}", "x"):
                acked += 1
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
        k += 1
        time.sleep(0.02)
    return acked, errors


def missing_on(cluster, node, keys):
    c = cluster.client(node)
    missing = []
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        for key, value in zip(chunk, c.mget(chunk)):
            if value is None:
                missing.append(key)
    return missing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--write-seconds", type=float, default=3.0)
    args = ap.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-dr-")
    os.makedirs(os.path.join(work, "east"))
    os.makedirs(os.path.join(work, "west"))
    primary = Cluster(args.aegis, os.path.join(work, "east"), port_offset=PRIMARY_OFFSET, cluster_id="east")
    standby = Cluster(args.aegis, os.path.join(work, "west"), port_offset=STANDBY_OFFSET, cluster_id="west")
    # One admin token for both clusters (each calls the other's admin API with its own).
    standby.token, standby.token_file = primary.token, primary.token_file
    args.token = primary.token
    primary.extra = ["--dr-peer", standby.admin_addresses()]
    standby.extra = ["--standby-of", primary.admin_addresses(), "--dr-lease", LEASE,
                     "--dr-peer", primary.admin_addresses()]
    figures = {}
    try:
        for n in IDS:
            primary.start(n)
            standby.start(n)
        check("the primary elects a leader", primary.wait_leader() is not None)
        check("the standby elects a leader", standby.wait_leader() is not None)
        check("the standby records its role", wait_until(
            lambda: all(doc(standby, n)["role"] == "standby" for n in IDS), 20))
        # The primary adopts the standby's lease; writes need it from then on.
        check("the primary takes writes once its standby asks for changes", wait_until(
            lambda: primary.client("n1").set("hello", "1"), 20))
        p_clients = ",".join(f"{HOST}:{primary.resp_port(n)}" for n in IDS)

        # 1. Writes flow.
        writer = Writer(primary, "a")
        writer.thread.start()
        time.sleep(args.write_seconds)
        acked = len(writer.acked)
        check("writes are acknowledged by the primary", acked > 100, f"({acked} in {args.write_seconds} s)")
        check("the standby applies them", wait_until(
            lambda: not missing_on(standby, "n2", writer.acked[:acked]), 20))
        try:
            standby.client("n1").set("nope", "1")
            refused = ""
        except Exception as e:  # noqa: BLE001
            refused = str(e)
        check("the standby refuses writes with READONLY naming the primary",
              refused.startswith("You can't write against a read only replica. primary: " + p_clients), repr(refused[:160]))
        pl = primary.leader()
        check("/primary: 200 on the primary's leader only",
              probe(primary, pl, "/primary") == 200
              and all(probe(primary, n, "/primary") == 503 for n in IDS if n != pl)
              and all(probe(standby, n, "/primary") == 503 for n in IDS))
        check("/replica?lag=100000: 200 on every standby node, 503 on the primary",
              all(probe(standby, n, "/replica?lag=100000") == 200 for n in IDS)
              and all(probe(primary, n, "/replica") == 503 for n in IDS))
        sl = standby.leader() or "n1"
        metrics = urllib.request.urlopen(f"http://{HOST}:{standby.admin_port(sl)}/metrics", timeout=5).read().decode()
        check("the standby's leader exports the link's lag as metrics",
              "aegis_dr_lag_entries" in metrics and "aegis_dr_lag_seconds" in metrics)
        d = leader_doc(standby)
        check("GET /v1/dr reports the link's lag", d is not None and d.get("link") is not None,
              f"(lag {d['link']['lagEntries']} entries, {d['link']['lagSeconds']} s)" if d and d.get("link") else "")

        # 2. The standby stops pulling for a moment (the primary goes on acknowledging
        # writes within its lease), then the primary dies whole; failover.
        for n in IDS:
            standby.procs[n].send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        killed_at = time.monotonic()
        for n in IDS:
            primary.kill(n)
        for n in IDS:
            standby.procs[n].send_signal(signal.SIGCONT)
        writer.stop.set()
        # The pause may have cost the standby its leader: the failover asks the new one.
        standby.wait_leader()
        # A client retrying writes on the standby from the kill on: RTO is its first success.
        first_ok = []

        def first_write():
            deadline = time.monotonic() + 30
            clients = [standby.client(n) for n in IDS]
            while not first_ok and time.monotonic() < deadline:
                for c in clients:
                    try:
                        if c.set("after-failover", "1"):
                            first_ok.append(time.monotonic())
                            return
                    except Exception:  # noqa: BLE001 - READONLY until the promotion
                        pass
                time.sleep(0.005)
        prober = threading.Thread(target=first_write, daemon=True)
        prober.start()
        code, out = aegis_dr(args, "failover", "--standby", standby.admin_addresses(),
                             "--old-primary", primary.admin_addresses())
        check("aegis dr failover promotes the standby", code == 0 and "promoted west" in out, out.strip()[:300])
        prober.join(30)
        first_ok = first_ok[0] if first_ok else None
        writer.thread.join(5)
        acked_keys = list(writer.acked)
        check("the new primary acknowledges writes", first_ok is not None)
        rto = (first_ok - killed_at) if first_ok else None
        lost = missing_on(standby, standby.leader() or "n1", acked_keys)
        figures.update(rto_seconds=round(rto, 3) if rto else None, rpo_writes=len(lost), acked_writes=len(acked_keys))
        print(f"RTO {rto:.3f} s (kill -> first acknowledged write on the new primary; lease {LEASE} waited out)"
              if rto else "RTO: no write acknowledged")
        print(f"RPO {len(lost)} acknowledged writes missing on the new primary (of {len(acked_keys)})")

        # 3. The old primary comes back: fenced.
        for n in IDS:
            primary.start(n)
        readonly = []

        def refused_readonly():
            acked, errors = write_refusals(primary, 0.1)
            readonly.append(acked)
            return errors and errors[-1].startswith("You can't write against a read only replica")
        check("the restarted old primary answers writes with READONLY", wait_until(refused_readonly, 30))
        acked_old, errors = write_refusals(primary, 3.0)
        acked_old += sum(readonly)
        check("the restarted old primary acknowledges no write", acked_old == 0, f"({acked_old} acknowledged)")
        check("once it serves, every refusal is READONLY",
              errors and all(e.startswith("You can't write against a read only replica") for e in errors),
              repr(sorted(set(e[:90] for e in errors))[:3]))
        s_clients = ",".join(f"{HOST}:{standby.resp_port(n)}" for n in IDS)
        check("the old primary learns it was replaced and names the new primary", wait_until(
            lambda: doc(primary, "n1")["role"] == "fenced", 15))
        _, errors = write_refusals(primary, 0.5)
        check("its refusal names the new primary", errors and all(("primary: " + s_clients) in e for e in errors),
              repr(errors[:1]))

        # 4. Failback: rejoin as standby (divergent tail set aside), then switch back with no loss.
        new_keys = ["after-failover"] + [f"nw{k}" for k in range(200)]
        check("the new primary takes 200 more writes", wait_until(
            lambda: all(standby.client(standby.leader() or "n1").set(key, "1") for key in new_keys[1:]), 20))
        code, out = aegis_dr(args, "rejoin", "--old-primary", primary.admin_addresses(),
                             "--primary", standby.admin_addresses())
        check("aegis dr rejoin: the old primary becomes a re-seeded standby of the new one",
              code == 0 and "re-seeded:" in out, out.strip()[-600:])
        found = re.search(r"saved in (\S+) \(sha256 (\w+)\)", out)
        divergent = {}
        if found:
            shown = subprocess.run([args.aegis, "dr", "divergent", found.group(1), "--json"],
                                   capture_output=True, text=True, timeout=30)
            divergent = json.loads(shown.stdout) if shown.returncode == 0 else {}
            check("aegis dr divergent reads the side file (same digest as the rejoin reported)",
                  divergent.get("sha256") == found.group(2), shown.stderr.strip()[-200:])
        side_keys = {w["command"].split()[1] for w in divergent.get("writes", []) if w["command"].startswith("set ")}
        figures["divergent_writes"] = len(divergent.get("writes", []))
        check("every acknowledged write the new primary lacks is in the side file", set(lost) <= side_keys,
              f"({len(set(lost) - side_keys)} of {len(lost)} missing from it; {len(side_keys)} in it)")
        on_new = set(acked_keys) - set(lost)
        check("the side file holds no write the new primary has", not (side_keys & on_new),
              f"({len(side_keys & on_new)} of {len(side_keys)})")
        pn = primary.leader() or "n1"
        check("the divergent tail is discarded from the old primary's state",
              wait_until(lambda: len(missing_on(primary, pn, sorted(side_keys))) == len(side_keys), 10),
              f"({len(side_keys)} writes)")
        check("the old primary, now a standby, holds every write of the new primary",
              wait_until(lambda: not missing_on(primary, pn, new_keys + sorted(on_new)), 20))
        writer2 = Writer(standby, "b")
        writer2.thread.start()
        time.sleep(1.5)
        switch_started = time.monotonic()
        code, out = aegis_dr(args, "switchover", "--primary", standby.admin_addresses(),
                             "--standby", primary.admin_addresses())
        writer2.stop.set()
        writer2.thread.join(5)
        figures["switchover_seconds"] = round(time.monotonic() - switch_started, 3)
        check("aegis dr switchover moves the primary back", code == 0 and "RPO 0" in out, out.strip()[-300:])
        lost2 = missing_on(primary, primary.leader() or "n1", writer2.acked)
        figures.update(switchover_acked=len(writer2.acked), switchover_rpo_writes=len(lost2))
        check("switchover: every acknowledged write is on the new primary (RPO 0)",
              not lost2 and len(writer2.acked) > 0, f"({len(lost2)} of {len(writer2.acked)} missing)")
        check("the old primary takes writes again", wait_until(lambda: primary.client("n1").set("back", "1"), 10))
        try:
            standby.client("n1").set("nope", "1")
            refused = ""
        except Exception as e:  # noqa: BLE001
            refused = str(e)
        check("and the other cluster is a standby again", refused.startswith("You can't write against a read only replica"),
              repr(refused[:100]))
    finally:
        primary.stop_all()
        standby.stop_all()
        if not results.failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    print(json.dumps({"passed": results.passed, "failed": results.failed, "seconds": round(time.time() - started, 1),
                      **figures}))
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
