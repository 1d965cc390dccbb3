#!/usr/bin/env python3
"""Real clients against real processes: starts `aegis dev`, drives it with redis-py and
redis-cli through every node, covers every command and its errors, then kills the
leader with SIGKILL (repeatedly), measures the time until a write is acknowledged
again, restarts the killed node and checks that it catches up and that no
acknowledged write was lost.

`aegis dev` runs TLS on every port by default: the clients trust its throw-away CA
(<data-dir>/tls/ca.pem); --no-tls runs the same checks in plaintext.

Usage: scripts/real_client_test.py [--aegis PATH] [--kills N] [--keep] [--no-tls]
Prints one line per check, the failover figures as JSON, and finally
"N passed, M failed". Exit status 1 if any check failed.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import redis
from checks import attempt, check, results, wait_until
from redis.backoff import NoBackoff
from redis.retry import Retry

PORTS = [7001, 7002, 7003]
ADMIN = [8001, 8002, 8003]
restarted = []  # nodes this script restarted (not children of `aegis dev`)
CA = None  # the dev CA certificate when the cluster runs TLS






def client(port, **kw):
    # No client-side retries: the test measures the server, and tries the next node
    # itself when one refuses.
    if CA:
        kw.update(ssl=True, ssl_ca_certs=CA)
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2,
                       retry=Retry(NoBackoff(), 0), **kw)


def cli_args():
    return ["--tls", "--cacert", CA] if CA else []




def info(port):
    return client(port).info("replication")


def leader_port():
    for port in PORTS:
        try:
            if info(port).get("aegis_role") == "leader":
                return port
        except Exception:
            continue
    return None


def nodes_file(data_dir):
    with open(os.path.join(data_dir, "nodes.json")) as f:
        return json.load(f)


def start_node(entry, log_dir):
    log = open(os.path.join(log_dir, f"{entry['id']}.restart.log"), "ab")
    return subprocess.Popen(entry["command"], stdout=log, stderr=subprocess.STDOUT, cwd=entry.get("cwd"))


def commands_through_every_node():
    for i, port in enumerate(PORTS):
        r = client(port)
        check(f"PING node{i+1}", r.ping() is True)
        check(f"SET/GET through node{i+1}", r.set(f"k{i}", f"v{i}") and r.get(f"k{i}") == f"v{i}".encode())
    # A write through one node is read through the others (linearizable reads).
    client(7001).set("shared", "one")
    check("read-your-write across nodes", all(client(p).get("shared") == b"one" for p in PORTS))
    r = client(7002)
    check("ECHO", r.echo("hello") == b"hello")
    check("SET NX on existing key fails", r.set("shared", "x", nx=True) is None)
    check("SET NX on new key", r.set("nx-key", "1", nx=True) is True)
    check("SET XX on missing key fails", r.set("missing-xx", "1", xx=True) is None)
    check("SET XX on existing key", r.set("nx-key", "2", xx=True) is True)
    check("SET GET returns old value", r.set("nx-key", "3", get=True) == b"2")
    check("SET IFEQ matching", r.execute_command("SET", "nx-key", "4", "IFEQ", "3") in (True, b"OK"))
    check("SET IFEQ not matching", r.execute_command("SET", "nx-key", "5", "IFEQ", "3") is None)
    check("GET after IFEQ", r.get("nx-key") == b"4")
    check("DEL", r.delete("nx-key", "missing-del") == 1)
    check("EXISTS", r.exists("shared", "k0", "nope") == 2)
    check("INCR", r.incr("counter") == 1)
    check("INCRBY", r.incrby("counter", 10) == 11)
    check("DECR", r.decr("counter") == 10)
    check("DECRBY", r.decrby("counter", 4) == 6)
    check("MSET", r.mset({"m1": "a", "m2": "b"}) is True)
    check("MGET", r.mget("m1", "m2", "m3") == [b"a", b"b", None])
    check("DBSIZE", r.dbsize() >= 7, str(r.dbsize()))
    repl = r.info("replication")
    check("INFO replication", repl.get("aegis_role") in ("leader", "follower") and "term" in repl and "commit_index" in repl)
    check("CLIENT SETNAME", r.client_setname("tester") is True and r.client_getname() in (b"tester", "tester"))
    attempt("SELECT 0", lambda: check("SELECT 0", r.execute_command("SELECT", 0) in (True, b"OK")))
    attempt("COMMAND COUNT", lambda: check("COMMAND COUNT", r.command_count() > 0))
    check("CONFIG GET", isinstance(r.config_get("appendonly"), dict))
    # Errors.
    r.set("text", "abc")
    for name, args, fragment in [
        ("INCR on a non-integer", ("INCR", "text"), "not an integer"),
        ("SELECT 1", ("SELECT", 1), ""),
        ("unknown command", ("NOSUCHCOMMAND",), "unknown command"),
        ("wrong arity", ("GET",), "wrong number of arguments"),
    ]:
        try:
            r.execute_command(*args)
            check(f"error: {name}", False, "no error")
        except redis.ResponseError as e:
            check(f"error: {name}", fragment.lower() in str(e).lower(), str(e))
    # Keys expire (deadlines chosen by the leader, carried in the log).
    check("SET with EX", r.set("t", "1", ex=10) is True and 0 < r.ttl("t") <= 10, str(r.ttl("t")))
    # READONLY allows stale local reads on a follower.
    follower = next(p for p in PORTS if p != leader_port())
    ro = client(follower)
    ro.execute_command("READONLY")
    check("READONLY stale read", ro.get("shared") == b"one")
    # Pipelining.
    with client(7003).pipeline(transaction=False) as p:
        for n in range(100):
            p.set(f"pipe{n}", n)
        p.get("pipe99")
        results = p.execute()
    check("pipeline of 101 commands", results[-1] == b"99" and all(x is True for x in results[:-1]))


def redis_cli():
    cli = shutil.which("redis-cli")
    if not cli:
        check("redis-cli installed", False, "redis-cli not found (apt-get install redis-tools)")
        return
    out = subprocess.run([cli, *cli_args(), "-p", "7001", "set", "cli-key", "cli-value"], capture_output=True, text=True, timeout=10)
    check("redis-cli SET via node1", out.stdout.strip() == "OK", out.stdout + out.stderr)
    for port in PORTS:
        out = subprocess.run([cli, *cli_args(), "-p", str(port), "get", "cli-key"], capture_output=True, text=True, timeout=10)
        check(f"redis-cli GET via {port}", out.stdout.strip() == "cli-value", out.stdout + out.stderr)


def failover(data_dir, log_dir, kills, acked):
    times = []
    entries = {e["id"]: e for e in nodes_file(data_dir)["nodes"]}
    counter = [0]

    def write_any(timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for port in PORTS:
                counter[0] += 1
                key = f"acked{counter[0]}"
                started = time.monotonic()
                try:
                    if client(port).set(key, counter[0]):
                        acked[key] = str(counter[0]).encode()
                        return True
                except Exception as e:  # noqa: BLE001 - try the next node
                    if os.environ.get("AEGIS_TEST_VERBOSE"):
                        print(f"  write via {port} failed after {time.monotonic() - started:.3f}s: {e}")
                    continue
        return False

    for n in range(kills):
        check(f"kill {n+1}: writes before", write_any())
        port = leader_port()
        if port is None:
            wait_until(lambda: leader_port() is not None)
            port = leader_port()
        node = f"node{PORTS.index(port) + 1}"
        pid = int(client(port).info("server")["process_id"])
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ok = write_any(timeout=15)
        elapsed = time.monotonic() - t0
        check(f"kill {n+1}: write acknowledged after killing leader {node}", ok)
        times.append(elapsed)
        proc = start_node(entries[node], log_dir)
        restarted.append(proc)
        caught_up = wait_until(lambda: client(port).info("replication").get("applied_index", -1)
                               >= max(client(p).info("replication").get("commit_index", 0) for p in PORTS if p != port) - 2,
                               timeout=30)
        check(f"kill {n+1}: {node} restarted and caught up", caught_up)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-tls", action="store_true", help="run aegis dev --no-tls and connect in plaintext")
    args = parser.parse_args()
    global CA
    work = tempfile.mkdtemp(prefix="aegis-real-client-")
    data_dir = os.path.join(work, "dev")
    log_path = os.path.join(work, "dev.log")
    CA = None if args.no_tls else os.path.join(data_dir, "tls", "ca.pem")
    dev = subprocess.Popen([os.path.abspath(args.aegis), "dev", "--data-dir", data_dir] + (["--no-tls"] if args.no_tls else []),
                           stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    acked = {}
    try:
        up = wait_until(lambda: leader_port() is not None and all(client(p).ping() for p in PORTS), timeout=60)
        check("aegis dev: three nodes up with a leader", up)
        if not up:
            print(open(log_path).read()[-3000:])
            return
        attempt("commands through every node", commands_through_every_node)
        attempt("redis-cli", redis_cli)
        times = failover(data_dir, work, args.kills, acked)
        lost = [k for k, v in acked.items() if client(PORTS[0]).get(k) != v]
        check(f"no acknowledged write lost ({len(acked)} checked)", not lost, f"lost: {lost[:10]}")
        if times:
            figures = {"kills": len(times), "median_ms": round(statistics.median(times) * 1000),
                       "max_ms": round(max(times) * 1000), "all_ms": [round(t * 1000) for t in times]}
            print("failover " + json.dumps(figures))
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=20)
        except subprocess.TimeoutExpired:
            dev.kill()
        for proc in restarted:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if results.failed and not args.keep:
            print(f"logs kept in {work}")
        elif not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
