#!/usr/bin/env python3
"""The rolling restart procedure: restart every node of a cluster one at a time, each
only when the others are caught up, so that planned maintenance loses nothing.

For each node, followers first and the current leader last:
  1. wait until every member is healthy and at most --max-lag entries behind, in the
     leader's view (GET /v1/cluster);
  2. stop it gracefully (the restart command sends SIGTERM; `aegis serve` then hands
     leadership to the most caught-up voter if it leads, answers the requests it
     already read, and exits);
  3. start it again and wait until its /readyz passes and it caught up.

Used as a library by scripts/rolling_restart_test.py (nodes are local processes), and
on its own against any cluster, with a restart command per node:

  scripts/rolling_restart.py --admin n1=10.0.0.1:8001,n2=10.0.0.2:8001,n3=10.0.0.3:8001 \
      --token-file /etc/aegis/admin-token --restart-command 'ssh {host} systemctl restart aegis'

{id} and {host} in the command are replaced by the node's ID and admin host.
"""
import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from checks import wait_until


class Nodes:
    """Admin addresses and the token: what the procedure needs to watch a cluster."""

    def __init__(self, admin, token):
        self.admin_addresses = admin  # id -> host:port
        self.token = token

    def get(self, node, path, timeout=2):
        req = urllib.request.Request(f"http://{self.admin_addresses[node]}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def nodes_of(cluster):
    """A `Nodes` for an aegis_procs.Cluster."""
    from aegis_procs import ADMIN, HOST
    return Nodes({n: f"{HOST}:{ADMIN[n]}" for n in ADMIN}, cluster.token)


def ready(cluster_or_nodes, node):
    nodes = cluster_or_nodes if isinstance(cluster_or_nodes, Nodes) else nodes_of(cluster_or_nodes)
    try:
        return nodes.get(node, "/readyz")[0] == 200
    except OSError:
        return False


def status(nodes, node):
    code, body = nodes.get(node, "/v1/cluster")
    return json.loads(body) if code == 200 else None


def leader_view(nodes, among):
    """The leader's /v1/cluster answer, asked of the leader itself."""
    for n in among:
        try:
            s = status(nodes, n)
        except OSError:
            continue
        if s and s.get("leader") in nodes.admin_addresses:
            try:
                view = status(nodes, s["leader"])
            except OSError:
                continue
            if view and view.get("role") == "leader":
                return view
    return None


def caught_up(nodes, among, max_lag):
    view = leader_view(nodes, among)
    if not view:
        return False
    members = [m for m in view["members"] if m.get("status") != "left"]
    return all(m.get("status") == "healthy" and m.get("lag") is not None and m["lag"] <= max_lag for m in members)


def order(nodes, ids):
    """Followers first, the leader last."""
    view = leader_view(nodes, ids)
    leader = view["nodeID"] if view else None
    return [n for n in ids if n != leader] + ([leader] if leader in ids else [])


def restart_all(cluster=None, nodes=None, ids=None, stop=None, start=None, on_stop=lambda n: None,
                on_ready=lambda n: None, log=lambda e: None, max_lag=100, timeout=30):
    """Restarts every node once; returns one dict per node with its timings.

    With an aegis_procs.Cluster, stop is SIGTERM to its process and start is
    cluster.start; otherwise pass nodes, ids, stop(node) and start(node).
    """
    if cluster is not None:
        nodes = nodes or nodes_of(cluster)
        ids = ids or list(cluster.procs)

        def stop(node):  # noqa: F811 - the local processes' stop
            p = cluster.procs.pop(node)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=timeout)

        start = start or (lambda node: cluster.start(node))
    steps = []
    for node in order(nodes, ids):
        step = {"node": node, "ok": False}
        steps.append(step)
        t0 = time.monotonic()
        if not wait_until(lambda: caught_up(nodes, ids, max_lag), timeout):
            step["error"] = "the members did not catch up before the restart"
            break
        step["waited_for_catch_up_s"] = round(time.monotonic() - t0, 3)
        view = leader_view(nodes, ids)
        step["was_leader"] = bool(view and view["nodeID"] == node)
        log({"at": time.time(), "what": f"stopping {node}"})
        on_stop(node)
        t1 = time.monotonic()
        stop(node)
        step["stop_s"] = round(time.monotonic() - t1, 3)
        log({"at": time.time(), "what": f"{node} stopped, restarting"})
        t2 = time.monotonic()
        start(node)
        if not wait_until(lambda: ready(nodes, node), timeout):
            step["error"] = "not ready after the restart"
            break
        step["ready_after_s"] = round(time.monotonic() - t2, 3)
        log({"at": time.time(), "what": f"{node} ready"})
        on_ready(node)
        if not wait_until(lambda: caught_up(nodes, ids, max_lag), timeout):
            step["error"] = "did not catch up after the restart"
            break
        log({"at": time.time(), "what": "steady"})
        step["ok"] = True
    return steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--admin", required=True, help="id=host:port of every node's admin API, comma-separated")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--restart-command", required=True, help="shell command restarting one node; {id}, {host}")
    ap.add_argument("--max-lag", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    admin = dict(item.split("=", 1) for item in args.admin.split(","))
    with open(args.token_file) as f:
        token = f.readline().strip()
    nodes = Nodes(admin, token)

    def restart(node):
        command = args.restart_command.replace("{id}", node).replace("{host}", admin[node].rsplit(":", 1)[0])
        subprocess.run(command, shell=True, check=True)

    steps = restart_all(nodes=nodes, ids=list(admin), stop=lambda n: None, start=restart,
                        log=lambda e: print(e["what"], flush=True), max_lag=args.max_lag, timeout=args.timeout)
    print(json.dumps(steps))
    sys.exit(0 if len(steps) == len(admin) and all(s["ok"] for s in steps) else 1)


if __name__ == "__main__":
    main()
