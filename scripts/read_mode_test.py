#!/usr/bin/env python3
"""`aegis serve --read-mode`: a lease-read cluster shows its mode, serves linearizable
reads through the leader, and after the leader is killed the new leader's reads see
the writes acknowledged since; invalid read settings are refused at start.

    scripts/read_mode_test.py --aegis .build/release/aegis [--port-base 26100]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import aegis_procs
from aegis_procs import IDS, Cluster
from checks import check, results, wait_until


def refused(aegis, work, extra, needle):
    cmd = [aegis, "serve", "--id", "x", "--data-dir", os.path.join(work, "refused"), "--initial-cluster-state", "new",
           "--peer-listen", "127.0.0.1:1", "--client-listen", "127.0.0.1:1", "--admin-listen", "127.0.0.1:1"] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return p.returncode != 0 and needle in (p.stderr + p.stdout), (p.returncode, (p.stderr + p.stdout).strip()[-160:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--port-base", type=int, default=26100)
    args = ap.parse_args()
    aegis_procs.use_port_base(args.port_base)
    work = tempfile.mkdtemp(prefix="aegis-readmode-")
    cluster = Cluster(args.aegis, work, extra=["--read-mode", "lease"], cluster_id="readmode")
    try:
        for n in IDS:
            cluster.start(n)
        leader = cluster.wait_leader()
        check("a leader is elected with lease reads", leader is not None)
        modes = {n: cluster.info(n).get("read_mode") for n in IDS}
        check("INFO shows read_mode:lease on every node", set(modes.values()) == {"lease"}, str(modes))
        c = cluster.client(leader)
        for k in range(50):
            c.set(f"k{k}", f"v{k}")
        check("reads through the leader see every acknowledged write",
              all(c.get(f"k{k}") == f"v{k}".encode() for k in range(50)))
        follower = next(n for n in IDS if n != leader)
        check("a read through a follower sees it too", cluster.client(follower).get("k49") == b"v49")
        cluster.kill(leader)
        others = [n for n in IDS if n != leader]
        new_leader = cluster.wait_leader(among=others, timeout=30)
        check("a new leader after the old one is killed", new_leader is not None, str(new_leader))
        nc = cluster.client(new_leader)

        def write_then_read():
            nc.set("k0", "after")
            return nc.get("k0") == b"after"
        check("the new leader's lease read sees the write acknowledged after the change",
              wait_until(write_then_read, 20))
        ok, detail = refused(args.aegis, work, ["--read-mode", "fast"], "--read-mode")
        check("an unknown --read-mode is refused", ok, str(detail))
        ok, detail = refused(args.aegis, work, ["--read-mode", "lease", "--election-ticks", "3",
                                                "--max-clock-drift-percent", "99"], "lease")
        check("a drift bound that leaves no lease is refused", ok, str(detail))
        ok, detail = refused(args.aegis, work, ["--max-clock-drift-percent", "100"], "--max-clock-drift-percent")
        check("a drift bound over 99 is refused", ok, str(detail))
    finally:
        cluster.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
