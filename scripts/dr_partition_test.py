#!/usr/bin/env python3
"""Split-brain test: the primary cluster is cut off from its standby, the standby is
promoted, and clients write to both sides before, during and after (real processes,
loopback, at most about 60 s).

The partition: every connection between the two clusters goes through a TCP relay in
this script (the standby's --standby-of and --dr-peer, and the primary's --dr-peer,
name the relay's ports). Cutting the relay closes every open connection and refuses
new ones, both ways, while clients still reach both clusters: the worst case, a primary
that its clients can reach but its standby cannot. No root or iptables needed.

1. A primary and a standby (3 nodes each; the standby asks for a write lease of 1 s)
   take writes: one client writes k0..k49 on the primary, another on the standby (the
   standby refuses them with READONLY). Each write's value is unique; the client records
   when it sent it and when it was acknowledged (monotonic clock).
2. The relay is cut at T_cut; `aegis dr failover` promotes the standby (it waits out the
   lease; it cannot reach the old primary); both clients go on writing.
3. The relay is healed; the old primary learns it was replaced and fences itself; the
   clients go on writing.

Split brain, defined on the client histories (each is a test failure):
- the old primary acknowledges a write sent more than the lease after T_cut (it must
  stop on its own: the lease bound);
- the old primary acknowledges any write after the standby's promotion time (the
  failover's request plus the lease wait the standby reports: the new epoch cannot
  exist earlier);
- a write acknowledged by the old primary and one acknowledged by the new primary
  overlap in time (the old side's last acknowledgement is after the new side's first
  write was sent), for any key: no key is acknowledged by both sides over
  overlapping periods;
- after the test every key's value on the new primary is its newest write there (no
  write of the old side after the failover survives).

    python3 scripts/dr_partition_test.py --aegis .build/release/aegis
    python3 scripts/dr_partition_test.py --aegis .build/release/aegis --force --expect-split-brain

With --force the failover does not wait out the lease: the checks must then find the
split brain (the second command passes only if they do), which shows they can fail.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from aegis_procs import HOST, IDS, Cluster
from checks import check, results, wait_until
from dr_test import leader_doc

PRIMARY_OFFSET = 1340
STANDBY_OFFSET = 1440
LEASE_SECONDS = 1.0
KEYS = 50


class Relay:
    """TCP relays on loopback (ephemeral ports) to fixed targets; `cut()` closes every
    connection and refuses new ones until `heal()`."""

    def __init__(self, targets):
        self.blocked = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.open = set()
        self.ports = {}
        for target in targets:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, 0))
            listener.listen(64)
            listener.settimeout(0.2)
            self.ports[target] = listener.getsockname()[1]
            threading.Thread(target=self.accept, args=(listener, target), daemon=True).start()

    def address(self, target):
        return f"{HOST}:{self.ports[target]}"

    def accept(self, listener, target):
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.blocked.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(target, timeout=2)
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.open.update((conn, upstream))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()
        listener.close()

    def pump(self, source, sink):
        try:
            source.settimeout(None)
            while True:
                data = source.recv(65536)
                if not data or self.blocked.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            self.open.discard(source)
            self.open.discard(sink)

    def cut(self):
        self.blocked.set()
        with self.lock:
            sockets = list(self.open)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def heal(self):
        self.blocked.clear()

    def close(self):
        self.stopping.set()
        self.cut()


class HistoryWriter:
    """Writes k0..k49 in turn with unique values through one cluster; records every
    acknowledged write as (key, value, sent, acknowledged) on the monotonic clock."""

    def __init__(self, cluster, side):
        self.cluster, self.side = cluster, side
        self.acks, self.errors = [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        clients = [self.cluster.client(n) for n in IDS]
        node, k = 0, 0
        while not self.stop.is_set():
            key, value = f"k{k % KEYS}", f"{self.side}-{k}"
            sent = time.monotonic()
            try:
                if clients[node].set(key, value):
                    self.acks.append((key, value, sent, time.monotonic()))
            except Exception as e:  # noqa: BLE001 - READONLY, a dead link, a timeout
                self.errors.append((sent, str(e)[:100]))
                node = (node + 1) % len(clients)
                time.sleep(0.01)
            k += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--force", action="store_true", help="fail over without waiting out the lease (unsafe)")
    ap.add_argument("--expect-split-brain", action="store_true",
                    help="pass only if the split-brain checks fail (with --force)")
    args = ap.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-dr-partition-")
    os.makedirs(os.path.join(work, "east"))
    os.makedirs(os.path.join(work, "west"))
    primary = Cluster(args.aegis, os.path.join(work, "east"), port_offset=PRIMARY_OFFSET, cluster_id="east")
    standby = Cluster(args.aegis, os.path.join(work, "west"), port_offset=STANDBY_OFFSET, cluster_id="west")
    standby.token, standby.token_file = primary.token, primary.token_file
    relay = Relay([(HOST, primary.admin_port(n)) for n in IDS] + [(HOST, standby.admin_port(n)) for n in IDS])
    to_primary = ",".join(relay.address((HOST, primary.admin_port(n))) for n in IDS)
    to_standby = ",".join(relay.address((HOST, standby.admin_port(n))) for n in IDS)
    primary.extra = ["--dr-peer", to_standby]
    standby.extra = ["--standby-of", to_primary, "--dr-lease", f"{int(LEASE_SECONDS * 1000)}ms", "--dr-peer", to_primary]
    old, new = HistoryWriter(primary, "p"), HistoryWriter(standby, "s")
    figures, split = {}, [True]
    try:
        for n in IDS:
            primary.start(n)
            standby.start(n)
        check("both clusters elect a leader", primary.wait_leader() is not None and standby.wait_leader() is not None)
        check("the standby follows the primary through the relay", wait_until(
            lambda: all(json.loads(standby.admin(n, "GET", "/v1/dr")[1])["role"] == "standby" for n in IDS), 20))
        check("the primary takes writes (its lease held through the relay)", wait_until(
            lambda: primary.client("n1").set("hello", "1"), 20))
        old.thread.start()
        new.thread.start()
        time.sleep(2.0)

        # The partition, then the failover on the standby's side only.
        cut_at = time.monotonic()
        relay.cut()
        promote_at = time.monotonic()
        out = subprocess.run([args.aegis, "dr", "failover", "--standby", standby.admin_addresses(),
                              "--no-tls", "--admin-token", primary.token] + (["--force"] if args.force else []),
                             capture_output=True, text=True, timeout=60)
        promoted_at = time.monotonic()
        waited = re.search(r"waited (\d+) ms", out.stdout)
        # The new epoch cannot exist before the standby's lease wait ended.
        promotion_time = promote_at + (int(waited.group(1)) / 1000 if waited else 0)
        check("aegis dr failover promotes the cut-off standby (waiting out the lease)",
              out.returncode == 0 and "promoted west" in out.stdout, (out.stdout + out.stderr).strip()[:300])
        time.sleep(2.0)
        heal_at = time.monotonic()
        relay.heal()
        check("after the heal the old primary learns it was replaced and fences itself", wait_until(
            lambda: (leader_doc(primary) or {}).get("role") == "fenced", 20))
        time.sleep(1.0)
        old.stop.set()
        new.stop.set()
        old.thread.join(5)
        new.thread.join(5)
        old_acks, new_acks = old.acks, new.acks
        last_old_sent = max((a[2] for a in old_acks), default=0)
        last_old_ack = max((a[3] for a in old_acks), default=0)
        first_new_sent = min((a[2] for a in new_acks), default=float("inf"))
        after_cut = [a for a in old_acks if a[2] > cut_at]
        figures.update(old_acks=len(old_acks), old_acks_after_cut=len(after_cut), new_acks=len(new_acks),
                       old_stopped_after_cut_s=round(last_old_sent - cut_at, 3),
                       promotion_s=round(promoted_at - promote_at, 3))
        print(f"old primary: {len(old_acks)} writes acknowledged, {len(after_cut)} of them sent after the cut, "
              f"the last sent {last_old_sent - cut_at:+.3f} s after it; new primary: {len(new_acks)} acknowledged, "
              f"the first sent {first_new_sent - cut_at:+.3f} s after the cut; promotion took "
              f"{promoted_at - promote_at:.3f} s")
        check("the old primary acknowledged writes before the cut (the test writes to both sides)",
              len(old_acks) > 20 and len(new.errors) > 0)
        check("the old primary stops acknowledging on its own within the lease after the cut",
              last_old_sent <= cut_at + LEASE_SECONDS + 0.05, f"(last write sent {last_old_sent - cut_at:+.3f} s)")
        split = []
        split.append(check("the old primary acknowledges no write after the standby's promotion time",
                           last_old_ack < promotion_time,
                           f"(last acknowledgement {last_old_ack - promotion_time:+.3f} s from it)"))
        check("the new primary acknowledges writes after its promotion", len(new_acks) > 20, f"({len(new_acks)})")
        overlapping = sorted({a[0] for a in old_acks if a[3] >= first_new_sent})
        split.append(check("no key is acknowledged by both sides over overlapping periods (no split brain)",
                           not overlapping, f"({len(overlapping)} keys, e.g. {overlapping[:5]})"))
        late = [e for e in old.errors if e[0] > heal_at + 3 and "read only replica" not in e[1]]
        check("after the heal the old primary refuses every write with READONLY", not late, repr(late[:2]))
        newest = {}
        for key, value, _, _ in new_acks:
            newest[key] = value
        node = standby.leader() or "n1"
        stored = dict(zip(newest, standby.client(node).mget(list(newest)))) if newest else {}
        wrong = [k for k, v in newest.items()
                 if stored.get(k) is None or not stored[k].decode().startswith("s-")
                 or int(stored[k].decode()[2:]) < int(v[2:])]
        check("every key on the new primary holds its newest write there", not wrong and len(newest) == KEYS,
              f"({len(wrong)} keys wrong of {len(newest)})")
    finally:
        old.stop.set()
        new.stop.set()
        relay.close()
        primary.stop_all()
        standby.stop_all()
        if not results.failures or args.expect_split_brain:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    print(json.dumps({"passed": results.passed, "failed": results.failed, "seconds": round(time.time() - started, 1),
                      **figures}))
    if args.expect_split_brain:
        found = not all(split)
        print("split brain " + ("found, as expected with --force" if found else "NOT found: the checks cannot fail"))
        sys.exit(0 if found else 1)
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
