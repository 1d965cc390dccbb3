#!/usr/bin/env python3
"""The change stream between two clusters over TLS, each cluster with its own CA.

Two three-node clusters on loopback, both with TLS on every port (`aegis certs
create`, one CA per cluster, as two regions would have): "east" (primary, ports
7391-7393 / 8391-8393 / 9391-9393) and "west" (standby of east, ports 7411-7413 /
8411-8413 / 9411-9413), which pulls east's stream over HTTPS trusting east's CA
(`--dr-tls-ca`). Checks: writes made over TLS on east reach every west node; west
refuses writes naming the primary; east's admin port speaks only TLS (a plaintext
request fails); a west node that does not trust east's CA (a third CA) gets nothing
and its link reports the failure; the standby's lag comes back to 0.

Prints one line per check and a JSON summary; exits non-zero on any failure.
"""
import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import redis

from aegis_procs import HOST, IDS, Cluster
from checks import attempt, check, results, wait_until


class TLSCluster(Cluster):
    """A cluster whose nodes run with their own CA's certificates."""

    def __init__(self, aegis, work, certs, **kw):
        super().__init__(aegis, work, **kw)
        self.certs = certs
        self.ca = os.path.join(certs, "ca", "ca.pem")

    def command(self, node, **kw):
        return super().command(node, **kw) + [
            "--tls-ca", self.ca, "--tls-cert", os.path.join(self.certs, node, f"{node}.pem"),
            "--tls-key", os.path.join(self.certs, node, f"{node}-key.pem")]

    def client(self, node):
        return redis.Redis(host=HOST, port=self.resp_port(node), ssl=True, ssl_ca_certs=self.ca,
                           socket_timeout=5, socket_connect_timeout=2, protocol=2)

    def admin_get(self, node, path):
        context = ssl.create_default_context(cafile=self.ca)
        req = urllib.request.Request(f"https://{HOST}:{self.admin_port(node)}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")


def make_certs(aegis, out):
    made = subprocess.run([aegis, "certs", "create", "--out", out, "--nodes", ",".join(IDS)],
                          capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        raise RuntimeError(f"aegis certs create: {made.stdout}{made.stderr}")


def missing_on(cluster, node, keys):
    values = cluster.client(node).mget(keys)
    return [k for k, v in zip(keys, values) if v is None]


def run(aegis, work):
    for name in ("east", "west", "other"):
        make_certs(aegis, os.path.join(work, f"certs-{name}"))
        os.makedirs(os.path.join(work, name))
    east = TLSCluster(aegis, os.path.join(work, "east"), os.path.join(work, "certs-east"), port_offset=80, cluster_id="east")
    west = TLSCluster(aegis, os.path.join(work, "west"), os.path.join(work, "certs-west"), port_offset=100, cluster_id="west")
    west.token, west.token_file = east.token, east.token_file  # west calls east's admin API with it
    west.extra = ["--standby-of", east.admin_addresses(), "--dr-tls-ca", east.ca]
    try:
        for n in IDS:
            east.start(n)
            west.start(n)
        check("east elects a leader (TLS on every port)", east.wait_leader() is not None)
        check("west elects a leader", west.wait_leader() is not None)
        keys = [f"k{i}" for i in range(300)]
        c = east.client(east.leader() or "n1")
        wrote = wait_until(lambda: all(c.set(k, k) for k in keys[:1]), 20)
        for k in keys:
            c.set(k, k)
        check("writes over TLS on east are acknowledged", wrote)
        check("every west node has them (the stream over HTTPS, trusting east's CA)",
              wait_until(lambda: all(not missing_on(west, n, keys) for n in IDS), 30))
        try:
            west.client("n1").set("nope", "1")
            refused = ""
        except redis.exceptions.ResponseError as e:
            refused = str(e)
        check("west refuses writes, naming the primary", "read only replica" in refused and "primary" in refused, refused[:120])
        status, doc = west.admin_get(west.leader() or "n1", "/v1/dr")
        cursor = (doc or {}).get("cursors") or (doc or {}).get("cursor")
        check("west's /v1/dr (HTTPS) shows its link's cursor", status == 200 and bool(cursor), json.dumps(doc)[:200])
        plain_refused = False
        try:
            urllib.request.urlopen(f"http://{HOST}:{east.admin_port('n1')}/v1/dr", timeout=3)
        except (urllib.error.URLError, ConnectionError, OSError):
            plain_refused = True
        check("east's admin port refuses plaintext HTTP", plain_refused)

        # A standby that trusts the wrong CA gets nothing from east.
        other = TLSCluster(aegis, os.path.join(work, "other"), os.path.join(work, "certs-other"), port_offset=120,
                           cluster_id="other")
        other.token, other.token_file = east.token, east.token_file
        other.extra = ["--standby-of", east.admin_addresses(), "--dr-tls-ca", other.ca]
        try:
            for n in IDS:
                other.start(n)
            check("a standby trusting another CA elects a leader", other.wait_leader() is not None)
            def link_error():
                _, d = other.admin_get(other.leader() or "n1", "/v1/dr")
                link = (d or {}).get("link") or {}
                return link.get("errors", 0) > 0 and link.get("lastError")
            failed = []
            check("its link counts errors and says why", wait_until(lambda: failed.append(link_error()) or failed[-1], 20),
                  str(failed[-1] if failed else "")[:160])
            check("it receives nothing from east (the TLS handshake fails)", missing_on(other, "n1", keys[:10]) == keys[:10])
            try:
                other.client(other.leader() or "n1").set("stray", "1")
                stray = "acknowledged"
            except redis.exceptions.ResponseError as e:
                stray = str(e)
            check("and takes no writes while it is not a standby yet (its primary would never see them)",
                  "has not reached it yet" in stray, stray[:160])
            status, doc = west.admin_get(west.leader() or "n1", "/v1/dr")
            link = (doc or {}).get("link") or {}
            check("the trusting standby's link has caught up (lag 0)", status == 200 and link.get("lagEntries") == 0,
                  f"lag {link.get('lagEntries')} entries, {link.get('lagSeconds')} s, {link.get('frames')} frames")
        finally:
            other.stop_all()
    finally:
        east.stop_all()
        west.stop_all()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-drtls-")
    started = time.monotonic()
    try:
        attempt("the stream over TLS", lambda: run(os.path.abspath(args.aegis), work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"test": "dr-tls", "passed": results.passed, "failed": results.failed,
                      "seconds": round(time.monotonic() - started, 1)}))
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
