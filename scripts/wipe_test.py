#!/usr/bin/env python3
"""A member whose data directory was wiped must not come back as a voter with an empty log.

Real `aegis serve` processes on loopback (ports 7311-7313, 9311-9313, 8311-8313):

1. The scenario of issue 12: leader L, followers A and B. B down; 200 keys acknowledged
   by L and A; A's data directory wiped; L down; A and B restarted with the command
   line they always had. A must refuse to start (exit code 2, nothing written); B alone
   cannot elect; L returns; every acknowledged key is readable on L and B.
2. A plain wipe-and-restart of one follower: it refuses; the operator procedure
   (remove, add as learner, start with --join, promote) brings it back, and every
   acknowledged key is readable on all three nodes.
3. A directory of another node or another cluster is refused.

Prints one line per check and a JSON summary; exits non-zero on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from checks import check, results
from aegis_procs import HOST, IDS, PEER, RESP, Cluster, wait_until





def all_keys_present(cl, node, keys):
    c = cl.client(node)
    values = c.mget(keys)
    return all(v == f"v-{k}".encode() for k, v in zip(keys, values))


def scenario_issue(cl):
    """B down, 200 keys on L and A, A wiped, L down, A and B restarted."""
    for n in IDS:
        cl.start(n)
    leader = cl.wait_leader()
    check("scenario 1: a leader is elected", leader is not None)
    if leader is None:
        return
    a, b = [n for n in IDS if n != leader]
    cl.kill(b)
    keys = [f"k{i}" for i in range(200)]
    c = cl.client(leader)
    acked = 0
    for k in keys:
        if c.set(k, f"v-{k}"):
            acked += 1
    check("scenario 1: 200 keys acknowledged with one follower down", acked == 200, f"acked {acked}")
    cl.kill(a)
    shutil.rmtree(cl.data(a))
    cl.kill(leader)
    pa = cl.start(a)
    cl.start(b)
    code = None
    try:
        code = pa.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    check("scenario 1: the wiped node refuses to start (exit code 2)", code == 2, f"exit code {code}")
    check("scenario 1: the refused node wrote nothing", not os.path.exists(cl.data(a)))
    log = open(os.path.join(cl.work, f"{a}.log"), errors="replace").read()
    check("scenario 1: the refusal says how to rejoin", "aegis cluster remove" in log and "--join" in log)
    time.sleep(1.5)
    check("scenario 1: B alone elects no leader", cl.leader([b]) is None)
    cl.start(leader)
    new_leader = cl.wait_leader([leader, b])
    check("scenario 1: L and B elect a leader", new_leader is not None)
    for n in [leader, b]:
        check(f"scenario 1: every acknowledged key is readable on {n}",
              wait_until(lambda: all_keys_present(cl, n, keys), 20))
    return leader, a, b, keys


def scenario_rejoin(cl, state):
    """The wiped node rejoins by the documented procedure and catches up."""
    leader_hint, a, b, keys = state
    leader = cl.wait_leader([leader_hint, b])
    status, _ = cl.admin(leader, "DELETE", f"/v1/cluster/members/{a}")
    check("scenario 2: the wiped member is removed", 200 <= status < 300)
    cl.start(a, join=True)
    ok = False
    deadline = time.time() + 20
    while time.time() < deadline and not ok:
        try:
            status, _ = cl.admin(cl.wait_leader([leader_hint, b]), "POST", "/v1/cluster/members",
                                 {"id": a, "peerAddress": f"{HOST}:{PEER[a]}", "clientAddress": f"{HOST}:{RESP[a]}",
                                  "learner": True})
            ok = 200 <= status < 300
        except Exception:
            time.sleep(0.5)
    check("scenario 2: added back as a learner", ok)
    check("scenario 2: the learner catches up", wait_until(lambda: all_keys_present(cl, a, keys), 30))
    promoted = False
    deadline = time.time() + 20
    while time.time() < deadline and not promoted:
        try:
            status, _ = cl.admin(cl.wait_leader([leader_hint, b]), "POST", f"/v1/cluster/members/{a}/promote")
            promoted = 200 <= status < 300
        except Exception:
            time.sleep(0.5)
    check("scenario 2: promoted to voter", promoted)
    ident = open(os.path.join(cl.data(a), "identity")).read()
    check("scenario 2: its identity now says member", "membership = member" in ident)
    # A plain wipe-and-restart of a follower with the same command line: refused.
    follower = [n for n in IDS if n != cl.wait_leader()][0]
    cl.kill(follower)
    shutil.rmtree(cl.data(follower))
    p = cl.start(follower)
    try:
        code = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
    check("scenario 2: a wiped follower restarted as before refuses (exit 2)", code == 2, f"exit code {code}")
    for n in IDS:
        if n != follower:
            check(f"scenario 2: every acknowledged key readable on {n}", wait_until(lambda: all_keys_present(cl, n, keys), 20))


def scenario_foreign(cl):
    """Another node's or another cluster's directory is refused."""
    cl.stop_all()
    n1, n2 = IDS[0], IDS[1]
    # n2's directory under n1's name.
    cmd = cl.command(n2, node_id=n1)
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode
    check("scenario 3: another node's directory is refused", code == 2, f"exit code {code}")
    cmd = cl.command(n1, cluster_id="other")
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode
    check("scenario 3: another cluster's directory is refused", code == 2, f"exit code {code}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-wipe-")
    cl = Cluster(os.path.abspath(args.aegis), work)
    started = time.time()
    try:
        state = scenario_issue(cl)
        if state:
            scenario_rejoin(cl, state)
        scenario_foreign(cl)
    finally:
        cl.stop_all()
        if not args.keep and not results.failures:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"passed": results.passed, "failed": results.failed, "seconds": round(time.time() - started, 1),
                      "work": work if results.failures or args.keep else None}))
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
