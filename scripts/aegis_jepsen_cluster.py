"""aegis-jepsen: the RESP client, the cluster of `aegis serve` processes and iptables partitions."""

import json
import os
import shutil
import signal
import socket
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request

CHAIN = "AEGIS-JEPSEN"
CLIENT_HOST = "127.0.0.1"


def now_ns():
    return time.monotonic_ns()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# MARK: RESP client (blocking, no retries: every outcome is recorded as it is)


class RESPError(Exception):
    """An error reply (-CODE message)."""


class Conn:
    def __init__(self, host, port, timeout):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((CLIENT_HOST, 0))
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RESPError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        if t == b"_":
            return None
        raise ConnectionError(f"unexpected reply {line[:40]!r}")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        reply = self._reply()
        if isinstance(reply, RESPError):
            raise reply
        return reply


# Error replies that guarantee the command was not applied (RESPErrors.swift):
# CLUSTERDOWN (no leader), TRYAGAIN (forwarding to the leader failed, a full queue, or
# a write whose log position another entry took after a leadership change), and
# refusals before proposing. TIMEOUT and UNAVAILABLE leave the outcome unknown.
DEFINITE_FAILURES = ("CLUSTERDOWN", "TRYAGAIN", "ERR", "NOAUTH", "WRONGPASS")


def is_definite_failure(err):
    return str(err).split(" ", 1)[0] in DEFINITE_FAILURES


# MARK: cluster of processes


class Node:
    def __init__(self, index, args, run_dir):
        self.index = index  # 1-based
        self.id = f"n{index}"
        self.host = f"127.0.0.{index + 1}"
        self.client_port = args.base_port + 1
        self.peer_port = args.base_port + 2
        self.admin_port = args.base_port + 3
        self.data_dir = os.path.join(run_dir, "data", self.id)
        self.log_path = os.path.join(run_dir, "logs", f"{self.id}.log")
        self.proc = None
        self.paused = False
        self.joined = False  # started with --join (re-added after a removal)
        self.started_once = False

    @property
    def peer(self):
        return f"{self.host}:{self.peer_port}"

    @property
    def client(self):
        return f"{self.host}:{self.client_port}"

    @property
    def admin(self):
        return f"{self.host}:{self.admin_port}"


class Cluster:
    def __init__(self, args, run_dir):
        self.args = args
        self.run_dir = run_dir
        self.nodes = [Node(k, args, run_dir) for k in range(1, args.nodes + 1)]
        self.lock = threading.Lock()
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
        os.makedirs(os.path.join(run_dir, "data"), exist_ok=True)
        # The admin API needs a bearer token on every endpoint but the probes and /metrics.
        self.token = secrets.token_hex(16)
        self.token_file = os.path.join(run_dir, "admin-token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)

    def peers_flag(self):
        return ",".join(f"{n.id}={n.peer}/{n.client}" for n in self.nodes)

    def start(self, node):
        cmd = [self.args.aegis, "serve", "--id", node.id, "--data-dir", node.data_dir,
               "--cluster-id", "jepsen", "--peer-listen", node.peer, "--client-listen", node.client,
               "--admin-listen", node.admin, "--peers", self.peers_flag(),
               "--election-ticks", str(self.args.election_ticks), "--tick-ms", str(self.args.tick_ms),
               "--admin-token-file", self.token_file]
        if node.joined:
            cmd.append("--join")
        elif not node.started_once:
            # Only the first start founds the cluster; later starts find the identity
            # file, and a node whose directory vanished must refuse (never re-found).
            cmd += ["--initial-cluster-state", "new"]
        node.started_once = True
        if self.args.unsafe_local_reads:
            cmd.append("--unsafe-local-reads")
        out = open(node.log_path, "ab")
        out.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
        out.flush()
        node.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        node.paused = False

    def kill(self, node):
        if node.proc is None:
            return
        if node.paused:
            os.kill(node.proc.pid, signal.SIGCONT)
            node.paused = False
        node.proc.kill()
        node.proc.wait()
        node.proc = None

    def pause(self, node):
        if node.proc is not None and not node.paused:
            os.kill(node.proc.pid, signal.SIGSTOP)
            node.paused = True

    def resume(self, node):
        if node.proc is not None and node.paused:
            os.kill(node.proc.pid, signal.SIGCONT)
            node.paused = False

    def running(self):
        return [n for n in self.nodes if n.proc is not None and not n.paused]

    def stop_all(self):
        for n in self.nodes:
            if n.proc is not None:
                if n.paused:
                    self.resume(n)
                n.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 5
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait()
                n.proc = None

    # Admin API

    def admin_call(self, node, method, path, body=None, timeout=5.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{node.admin}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
                return resp.status, (json.loads(text) if text.strip() else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"error": text}

    def status(self, node):
        try:
            code, doc = self.admin_call(node, "GET", "/v1/cluster", timeout=1.0)
            return doc if code == 200 else None
        except (OSError, ValueError):
            return None

    def leader(self):
        """The node a majority of running nodes' views agree leads, or None."""
        for n in self.running():
            doc = self.status(n)
            if doc and doc.get("leader") and doc.get("role") == "leader" and doc.get("nodeID") == n.id:
                return n
        for n in self.running():
            doc = self.status(n)
            if doc and doc.get("leader"):
                for m in self.nodes:
                    if m.id == doc["leader"] and m in self.running():
                        return m
        return None

    def wait_for_leader(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.2)
        return None


# MARK: iptables partitions


class Partitions:
    def __init__(self, enabled):
        self.mode = "unavailable"
        self.cut = []
        if not enabled:
            self.mode = "disabled"
            return
        if shutil.which("iptables") is None:
            return
        try:
            self.cleanup()
            self._ipt("-N", CHAIN)
            self._ipt("-I", "INPUT", "-j", CHAIN)
            self.mode = "iptables"
        except (subprocess.CalledProcessError, OSError):
            self.mode = "unavailable"

    @staticmethod
    def _ipt(*args, check=True):
        return subprocess.run(["iptables", "-w", *args], check=check, capture_output=True)

    def cleanup(self):
        """Removes the chain (also after a crashed run)."""
        while self._ipt("-D", "INPUT", "-j", CHAIN, check=False).returncode == 0:
            pass
        self._ipt("-F", CHAIN, check=False)
        self._ipt("-X", CHAIN, check=False)

    def cut_links(self, side_a, side_b):
        for a in side_a:
            for b in side_b:
                self._ipt("-A", CHAIN, "-s", a.host, "-d", b.host, "-j", "DROP")
                self._ipt("-A", CHAIN, "-s", b.host, "-d", a.host, "-j", "DROP")
                self.cut.append((a.id, b.id))

    def heal(self):
        if self.mode == "iptables":
            self._ipt("-F", CHAIN, check=False)
        self.cut = []
