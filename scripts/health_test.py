#!/usr/bin/env python3
"""The disk health check against real processes: a node whose data directory fills up.

Three `aegis serve` on loopback, every node with --min-free-disk-bytes 40000000; node
n1's data directory is a 64 MiB tmpfs mounted by this test (as root). The real check
(statvfs of the data directory) then:
  1. passes on every node at the start;
  2. warns on n1 once its free space falls under the threshold (large values written
     through the cluster), while /healthz, /readyz and /livez still pass (a warning
     never fails an endpoint) and the other nodes' disk checks pass;
  3. fails on n1 once the disk is full (the node refuses writes it cannot log), while
     /livez still passes.
Without the right to mount (not root), step 2 uses a threshold above the free space of
the temporary folder's file system instead, and step 3 is skipped (printed).
The other health states are tested elsewhere against real processes: a node that lost
quorum (scripts/rolling_restart_test.py), a dead DR link and the drill check
(scripts/dr_ops_test.py). About 15 s.

    python3 scripts/health_test.py --aegis .build/release/aegis
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_procs import HOST, IDS, Cluster  # noqa: E402
from checks import check, results, wait_until  # noqa: E402

OFFSET = 1020          # ports of their own: RESP 8331-, admin 9331-, peer 10331-
THRESHOLD = 40_000_000
TMPFS_BYTES = 64 << 20


def health(cluster, node, path):
    """(HTTP status, {check: status}) of a health endpoint, as application/health+json
    (which needs the admin token)."""
    req = urllib.request.Request(f"http://{HOST}:{cluster.admin_port(node)}{path}",
                                 headers={"Accept": "application/health+json", "Authorization": f"Bearer {cluster.token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            code, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read()
    doc = json.loads(body)
    return code, {name.split(":")[0]: entries[0]["status"] for name, entries in doc.get("checks", {}).items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-health-")
    mounted = False
    n1 = os.path.join(work, "n1")
    os.makedirs(n1)
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", n1],
                                 capture_output=True).returncode == 0
    threshold = THRESHOLD
    if not mounted:
        st = os.statvfs(work)
        threshold = st.f_bavail * st.f_frsize + (1 << 30)
        print(f"SKIPPED the tmpfs part (cannot mount): threshold {threshold} bytes, above the free space instead")
    cluster = Cluster(os.path.abspath(args.aegis), work, port_offset=OFFSET, cluster_id="health",
                      extra=["--min-free-disk-bytes", str(threshold)])
    try:
        for n in IDS:
            cluster.start(n)
        check("the cluster elects a leader", cluster.wait_leader() is not None)
        if mounted:
            check("at first every node's disk check passes",
                  wait_until(lambda: all(health(cluster, n, "/healthz")[1].get("disk") == "pass" for n in IDS), 10))
            value = "x" * (256 << 10)
            k = [0]

            def write_until(predicate, limit):
                client = cluster.client(cluster.leader() or "n2")
                while k[0] < limit and not predicate():
                    try:
                        client.set(f"big{k[0] % 400}", value)
                    except Exception:  # noqa: BLE001 - refused once n1's disk is full, or a leader change
                        client = cluster.client(cluster.leader() or "n2")
                    k[0] += 1
                return predicate()
            warned = write_until(lambda: health(cluster, "n1", "/healthz")[1].get("disk") == "warn", 400)
            st = os.statvfs(n1)
            check("n1's disk check warns below the threshold (the real statvfs of its tmpfs)", warned,
                  f"({st.f_bavail * st.f_frsize} bytes free after {k[0]} writes of 256 KiB)")
        else:
            check("n1's disk check warns below the threshold",
                  wait_until(lambda: health(cluster, "n1", "/healthz")[1].get("disk") == "warn", 10))
        code, checks = health(cluster, "n1", "/healthz")
        check("... a warning fails no endpoint: /healthz, /readyz and /livez pass",
              code == 200 and health(cluster, "n1", "/readyz")[0] == 200 and health(cluster, "n1", "/livez")[0] == 200,
              json.dumps(checks))
        if mounted:
            check("... the other nodes' disk checks pass",
                  all(health(cluster, n, "/healthz")[1].get("disk") == "pass" for n in ("n2", "n3")))
            full = write_until(lambda: health(cluster, "n1", "/healthz/disk")[0] != 200, 2000)
            code, checks = health(cluster, "n1", "/healthz")
            check("a full disk fails n1's disk check (/healthz fails)", full and code != 200 and checks.get("disk") == "fail",
                  f"({k[0]} writes) {json.dumps(checks)}")
            check("... and /livez still passes", health(cluster, "n1", "/livez")[0] == 200)
    finally:
        cluster.stop_all()
        if mounted:
            subprocess.run(["umount", n1], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
