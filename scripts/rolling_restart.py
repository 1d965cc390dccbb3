#!/usr/bin/env python3
"""Helpers to watch a cluster's admin API from the real-process tests.

The rolling restart procedure itself is `aegis cluster restart-rolling` (followers
first, the leader last, each node only once every member is caught up; see its
--help): scripts/rolling_restart_test.py runs it under load.
"""
import urllib.error
import urllib.request


class Nodes:
    """Admin addresses and the token: what a test needs to watch a cluster."""

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
