"""Three `aegis serve` processes on loopback, for the real-process tests in scripts/."""
import json
import os
import secrets
import signal
import subprocess
import urllib.request

import redis
from checks import wait_until

IDS = ["n1", "n2", "n3"]
HOST = "127.0.0.1"
RESP = {n: 7311 + k for k, n in enumerate(IDS)}
PEER = {n: 9311 + k for k, n in enumerate(IDS)}
ADMIN = {n: 8311 + k for k, n in enumerate(IDS)}


def use_port_base(base):
    """Moves every port of the default cluster into base..base+22 (RESP base+k, admin
    base+10+k, peers base+20+k), in place, so that the tests' own imports see it: for a
    machine whose other users hold the default ports."""
    if not 1024 <= base <= 65535 - 22:
        raise ValueError(f"--port-base {base}: between 1024 and {65535 - 22}")
    for k, n in enumerate(IDS):
        RESP[n], ADMIN[n], PEER[n] = base + k, base + 10 + k, base + 20 + k


class Cluster:
    """Nodes n1-n3 with RESP on 7311-7313 (or base+k), peers on 9311-, admin on 8311-.

    The first start of each node founds the cluster (--initial-cluster-state new);
    later starts use the default (existing), as an operator's restart would.
    """

    def __init__(self, aegis, work, extra=(), election_ticks=30, port_offset=0, cluster_id="wipe", bases=None):
        self.aegis = aegis
        # Another cluster on the same host: every port shifted by `port_offset`, or
        # `bases` = {"resp": R, "peer": P, "admin": A}: node k (0-based) on R+k, P+k, A+k.
        self.offset = port_offset
        self.ports = {kind: {n: (bases[kind] + k if bases else table[n] + port_offset) for k, n in enumerate(IDS)}
                      for kind, table in (("resp", RESP), ("peer", PEER), ("admin", ADMIN))}
        self.cluster_id = cluster_id
        self.work = work
        # The admin API needs a bearer token on every endpoint but the probes and /metrics.
        self.token = secrets.token_hex(16)
        self.token_file = os.path.join(work, "admin-token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)
        self.extra = list(extra)
        self.election_ticks = election_ticks
        self.procs = {}
        self.first = set(IDS)

    def data(self, node):
        return os.path.join(self.work, node)

    def resp_port(self, node):
        return self.ports["resp"][node]

    def admin_port(self, node):
        return self.ports["admin"][node]

    def peer_port(self, node):
        return self.ports["peer"][node]

    def admin_addresses(self):
        return ",".join(f"{HOST}:{self.admin_port(n)}" for n in IDS)

    def command(self, node, join=False, node_id=None, cluster_id=None):
        peers = ",".join(f"{n}={HOST}:{self.peer_port(n)}/{HOST}:{self.resp_port(n)}" for n in IDS)
        cmd = [self.aegis, "serve", "--id", node_id or node, "--data-dir", self.data(node),
               "--cluster-id", cluster_id or self.cluster_id, "--peer-listen", f"{HOST}:{self.peer_port(node)}",
               "--client-listen", f"{HOST}:{self.resp_port(node)}", "--admin-listen", f"{HOST}:{self.admin_port(node)}",
               "--peers", peers, "--election-ticks", str(self.election_ticks),
               "--admin-token-file", self.token_file] + self.extra
        if join:
            cmd.append("--join")
        elif node in self.first:
            cmd += ["--initial-cluster-state", "new"]
        return cmd

    def start(self, node, **kw):
        cmd = self.command(node, **kw)
        self.first.discard(node)
        log = open(os.path.join(self.work, f"{node}.log"), "ab")
        self.procs[node] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self.procs[node]

    def kill(self, node):
        p = self.procs.pop(node, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()

    def stop_all(self):
        for n in list(self.procs):
            self.kill(n)

    def client(self, node):
        return redis.Redis(host=HOST, port=self.resp_port(node), socket_timeout=3, socket_connect_timeout=1)

    def info(self, node):
        return self.client(node).info("replication")

    def leader(self, among=IDS):
        for n in among:
            try:
                if self.info(n).get("aegis_role") == "leader":
                    return n
            except Exception:
                pass
        return None

    def wait_leader(self, among=IDS, timeout=20):
        found = []
        wait_until(lambda: found.append(self.leader(among)) or found[-1] is not None, timeout)
        return found[-1] if found else None

    def admin(self, node, method, path, body=None):
        req = urllib.request.Request(f"http://{HOST}:{self.admin_port(node)}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()




def start_aa_mesh(clusters, aegis, work, base_port, extra=(), names=("c1", "c2"), election_ticks=20):
    """Starts meshed active-active clusters of three nodes into `clusters` (name ->
    Cluster, filled as they are made, so a caller's cleanup sees every one): cluster k
    on RESP base+10k.., peers base+10k+3.., admin base+10k+6.., one shared admin token,
    `--active-active --aa-peer` for every other cluster, then `extra`."""
    bases = {name: {"resp": base_port + 10 * k, "peer": base_port + 10 * k + 3, "admin": base_port + 10 * k + 6}
             for k, name in enumerate(names)}
    admin = {name: ",".join(f"{HOST}:{bases[name]['admin'] + k}" for k in range(3)) for name in names}
    for name in names:
        peers = []
        for other in names:
            if other != name:
                peers += ["--aa-peer", f"{other}={admin[other]}"]
        os.makedirs(os.path.join(work, name))
        clusters[name] = Cluster(aegis, os.path.join(work, name), cluster_id=name, bases=bases[name],
                                 election_ticks=election_ticks, extra=["--active-active"] + peers + list(extra))
    token = clusters[names[0]].token
    for cluster in clusters.values():
        cluster.token = token
        with open(cluster.token_file, "w") as f:
            f.write(token + "\n")
        for n in IDS:
            cluster.start(n)
    return clusters


def stop_clusters(clusters, work, passed):
    """Resumes (SIGCONT) and kills every node of `clusters`; removes `work` when the
    test passed, else says where the logs are."""
    import shutil
    for cluster in clusters.values():
        for p in cluster.procs.values():
            try:
                p.send_signal(signal.SIGCONT)
            except Exception:  # noqa: BLE001 - already gone
                pass
        cluster.stop_all()
    if passed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"   logs kept in {work}")
