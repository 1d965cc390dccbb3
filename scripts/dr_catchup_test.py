#!/usr/bin/env python3
"""A DR standby started after its primary compacted its log catches up from the
primary's snapshot, then follows the change stream (real processes, loopback).

1. A primary cluster (3 nodes, a snapshot every 300 entries) takes writes alone until
   its log is compacted (snapshot files on disk, the log's first entries gone).
2. A standby cluster (3 nodes, write lease 1 s) is started with --standby-of: its pull
   from index 0 answers 410 Gone, so its leader fetches the primary's snapshot a chunk
   at a time (GET /v1/dr/seed), logs each chunk in its own cluster, and the last one
   installs the state and the link's cursor together; the pull resumes from there.
   Writes go on through the primary all along (its write lease holds: the seed
   requests renew it).
3. Every write the primary acknowledged, before and during the seed and after, is on
   every standby node; the standby's cursor passes the snapshot's index; the standby
   still refuses client writes.

    python3 scripts/dr_catchup_test.py --aegis .build/release/aegis
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

from aegis_procs import IDS, Cluster
from checks import check, results, wait_until
from dr_test import Writer, leader_doc, missing_on

# Ports away from the other real-process tests' (aegis_procs: +0; dr_test: +400/+500; the partition test: +1340/+1440).
PRIMARY_OFFSET = 1140
STANDBY_OFFSET = 1240


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--keys", type=int, default=4000, help="writes before the standby starts")
    args = ap.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-dr-catchup-")
    os.makedirs(os.path.join(work, "east"))
    os.makedirs(os.path.join(work, "west"))
    primary = Cluster(args.aegis, os.path.join(work, "east"), port_offset=PRIMARY_OFFSET, cluster_id="east",
                      extra=["--snapshot-entries", "300", "--snapshot-trailing-entries", "100"])
    standby = Cluster(args.aegis, os.path.join(work, "west"), port_offset=STANDBY_OFFSET, cluster_id="west")
    standby.token, standby.token_file = primary.token, primary.token_file
    standby.extra = ["--standby-of", primary.admin_addresses(), "--dr-lease", "1s"]
    figures = {}
    try:
        for n in IDS:
            primary.start(n)
        check("the primary elects a leader", primary.wait_leader() is not None)
        # 1. The primary alone, until it has snapshots and a compacted log.
        before = Writer(primary, "a")
        before.thread.start()
        wait_until(lambda: len(before.acked) >= args.keys, 60)
        before.stop.set()
        before.thread.join(5)
        snaps = glob.glob(os.path.join(work, "east", "*", "snap-*.snap"))
        check("the primary took snapshots", len(snaps) > 0, f"({len(snaps)} files, {len(before.acked)} writes)")

        # 2. The standby starts far behind (index 0): it must be re-seeded. Writes go on.
        during = Writer(primary, "b")
        during.thread.start()
        seed_started = time.monotonic()
        for n in IDS:
            standby.start(n)
        check("the standby elects a leader", standby.wait_leader() is not None)
        link = {}

        def seeded():
            d = leader_doc(standby)
            link.update((d or {}).get("link") or {})
            return (link.get("seeds") or 0) >= 1
        check("the standby's leader re-seeds from the primary's snapshot after 410 Gone", wait_until(seeded, 60),
              f"(snapshot index {link.get('lastSeedIndex')})")
        figures["seed_seconds"] = round(time.monotonic() - seed_started, 3)
        refusals_before = len([e for e in during.errors if "read only" in e])
        time.sleep(1.5)
        during.stop.set()
        during.thread.join(5)
        refusals_after = len([e for e in during.errors if "read only" in e]) - refusals_before
        # The primary adopts the standby's lease at its first request; it is renewed by
        # every seed request and pull from then on, so writes go on once it holds.
        check("the primary takes writes during and after the seed (the lease holds)",
              len(during.acked) > 50 and refusals_after == 0,
              f"({len(during.acked)} acknowledged; READONLY refusals: {refusals_before} while the lease was "
              f"adopted, {refusals_after} after the seed)")

        # 3. Everything acknowledged is on every standby node; then it follows.
        after = Writer(primary, "c")
        after.thread.start()
        time.sleep(1.0)
        after.stop.set()
        after.thread.join(5)
        acked = before.acked + during.acked + after.acked
        for n in IDS:
            ok = wait_until(lambda: not missing_on(standby, n, acked), 30)
            lost = missing_on(standby, n, acked)
            check(f"standby {n} holds every acknowledged write", ok, f"({len(lost)} of {len(acked)} missing)")
        d = leader_doc(standby)
        cursor = d["cursors"][0]["lastIndex"] if d and d["cursors"] else 0
        check("the standby's cursor follows the primary", d is not None and cursor > 0 and d["role"] == "standby",
              f"(cursor {cursor})")
        try:
            standby.client("n1").set("nope", "1")
            refused = ""
        except Exception as e:  # noqa: BLE001
            refused = str(e)
        check("the standby still refuses client writes", refused.startswith("You can't write against a read only"))
        figures.update(writes=len(acked), snapshot_files=len(snaps))
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
