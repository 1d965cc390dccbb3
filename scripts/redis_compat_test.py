#!/usr/bin/env python3
"""Sequential compatibility with Redis: the same command sequences against a real
redis-server and against one real `aegis serve` node, reply by reply.

Covers strings (SET/GET/MGET/MSET/SETNX/GETSET/APPEND/STRLEN/EXISTS/DEL and the INCR
family), sets (SADD, SREM,
SMEMBERS, SISMEMBER, SCARD), hashes (HSET, HGET, HDEL, HGETALL, HINCRBY, HLEN,
HEXISTS), TYPE and WRONGTYPE: hand-written edge cases (errors, overflow, wrong types,
keys that change type), then random sequences over a few keys so that every command
meets every type. Replies are compared raw (RESP2, read by aegis-jepsen's client, so
no client library reshapes them); the only normalisation is the order of SMEMBERS and
HGETALL, which Redis does not define. Last, Aegis's bound on a set's size
(--max-collection-size) is checked. Both servers listen on 127.0.0.1 only.

Usage: scripts/redis_compat_test.py [--aegis PATH] [--redis-server PATH] [--seed N] [--commands N]
Prints one line per check and "N passed, M failed"; exit status 1 on any failure.
"""
import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from aegis_jepsen_cluster import Conn, RESPError
from checks import check, results, wait_until

HOST = "127.0.0.1"
# Aegis's bound on the members of a set or fields of a hash in this test (far above
# what the sequences reach); redis-server has none.
MAX_COLLECTION = 1000


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Connection:
    """A RESP2 connection (the aegis-jepsen client, which no library reshapes): replies
    are bytes, int, None or lists; a status is ("status", text), an error ("error", text)."""

    def __init__(self, port):
        self.conn = Conn(HOST, port, 5)

    def command(self, *args):
        try:
            reply = self.conn.call(*args)
        except RESPError as e:
            return ("error", str(e))
        return ("status", reply) if isinstance(reply, str) else reply


def normalise(command, reply):
    name = command[0].upper()
    if isinstance(reply, list) and name == "SMEMBERS":
        return sorted(reply)
    if isinstance(reply, list) and name == "HGETALL":
        return sorted(zip(reply[0::2], reply[1::2]))
    return reply


EDGE_CASES = [
    # Strings and counters.
    ["SET", "s", "hello"], ["GET", "s"], ["TYPE", "s"], ["INCR", "s"], ["SET", "n", "9223372036854775806"],
    ["INCR", "n"], ["INCR", "n"], ["DECRBY", "n", "-1"], ["INCRBY", "n", "abc"], ["DECRBY", "m", "5"],
    ["MSET", "a", "1", "b", "2"], ["MGET", "a", "b", "missing"], ["SET", "s", "x", "NX"], ["SET", "s", "y", "XX"],
    ["GET", "s"], ["TYPE", "missing"], ["SETNX", "s", "z"], ["SETNX", "fresh", "z"], ["GETSET", "fresh", "w"],
    ["GETSET", "absent", "w"], ["APPEND", "fresh", "xyz"], ["APPEND", "other", "ab"], ["STRLEN", "fresh"],
    ["STRLEN", "nothing"], ["SET", "fresh", "q", "GET"],
    # Sets.
    ["SADD", "set", "a", "b", "a"], ["SADD", "set", "c"], ["SMEMBERS", "set"], ["SISMEMBER", "set", "a"],
    ["SISMEMBER", "set", "z"], ["SCARD", "set"], ["SREM", "set", "a", "z"], ["TYPE", "set"], ["SCARD", "nothing"],
    ["SMEMBERS", "nothing"], ["SREM", "nothing", "a"], ["SADD", "set"], ["SREM", "set", "b", "c"], ["TYPE", "set"],
    ["EXISTS", "set"], ["SADD", "set", ""], ["SMEMBERS", "set"],
    # Hashes.
    ["HSET", "h", "f", "1", "g", "x", "f", "2"], ["HGET", "h", "f"], ["HSET", "h", "g", "y"], ["HGETALL", "h"],
    ["HLEN", "h"], ["HEXISTS", "h", "g"], ["HEXISTS", "h", "z"], ["HGET", "h", "z"], ["HGET", "nothing", "f"],
    ["HINCRBY", "h", "f", "40"], ["HINCRBY", "h", "new", "-5"], ["HINCRBY", "h", "g", "1"],
    ["HINCRBY", "h", "f", "x"], ["HINCRBY", "h", "big", "9223372036854775807"], ["HINCRBY", "h", "big", "1"],
    ["HGET", "h", "big"], ["HSET", "h", "odd"], ["HSET", "h", "a", "1", "b"], ["HDEL", "h", "g", "z"],
    ["TYPE", "h"], ["HDEL", "h", "f", "new", "big"], ["TYPE", "h"], ["HLEN", "h"], ["HGETALL", "nothing"],
    # WRONGTYPE and keys that change type.
    ["SADD", "ws", "m"], ["HSET", "wh", "f", "v"], ["SET", "wstr", "v"],
    ["GET", "ws"], ["GET", "wh"], ["INCR", "ws"], ["GETSET", "ws", "x"], ["SET", "wh", "x", "GET"],
    ["APPEND", "ws", "x"], ["STRLEN", "wh"], ["SETNX", "ws", "x"], ["INCRBY", "wh", "2"], ["DECR", "ws"],
    ["SADD", "wstr", "m"], ["SADD", "wh", "m"], ["SMEMBERS", "wh"], ["SISMEMBER", "wstr", "m"], ["SCARD", "wh"],
    ["SREM", "wstr", "m"], ["HSET", "ws", "f", "v"], ["HGET", "ws", "f"], ["HGETALL", "wstr"], ["HDEL", "ws", "f"],
    ["HLEN", "wstr"], ["HEXISTS", "ws", "f"], ["HINCRBY", "wstr", "f", "1"],
    ["MGET", "ws", "wh", "wstr"], ["EXISTS", "ws", "wh", "wstr", "missing"], ["TYPE", "ws"], ["TYPE", "wh"],
    ["SET", "ws", "now-a-string", "NX"], ["TYPE", "ws"], ["SET", "ws", "now-a-string", "XX"], ["TYPE", "ws"],
    ["GET", "ws"], ["MSET", "wh", "x"], ["TYPE", "wh"], ["SADD", "ws", "m"], ["DEL", "wstr", "ws", "missing"],
    ["EXISTS", "ws", "wstr"], ["HSET", "wstr", "f", "v"], ["DEL", "wstr"], ["TYPE", "wstr"], ["DBSIZE"],
]

KEYS = ["k0", "k1", "k2", "k3"]
MEMBERS = ["a", "b", "c", "1", "7"]


def random_command(rng):
    k = rng.choice(KEYS)
    m = rng.choice(MEMBERS)
    choices = [
        lambda: ["SET", k, rng.choice(MEMBERS)],
        lambda: ["GET", k],
        lambda: ["DEL", k] if rng.random() < 0.7 else ["DEL", k, rng.choice(KEYS)],
        lambda: ["EXISTS", k, rng.choice(KEYS)],
        lambda: ["INCR", k],
        lambda: ["INCRBY", k, str(rng.randint(-5, 5))],
        lambda: ["DECR", k],
        lambda: ["MGET", k, rng.choice(KEYS)],
        lambda: ["MSET", k, m, rng.choice(KEYS), rng.choice(MEMBERS)],
        lambda: ["SET", k, m, "NX"],
        lambda: ["SETNX", k, m],
        lambda: ["GETSET", k, m],
        lambda: ["SET", k, m, "GET"],
        lambda: ["APPEND", k, m],
        lambda: ["STRLEN", k],
        lambda: ["SADD", k, m, rng.choice(MEMBERS)],
        lambda: ["SADD", k, m],
        lambda: ["SREM", k, m],
        lambda: ["SMEMBERS", k],
        lambda: ["SISMEMBER", k, m],
        lambda: ["SCARD", k],
        lambda: ["HSET", k, m, rng.choice(MEMBERS)],
        lambda: ["HSET", k, m, str(rng.randint(0, 9)), rng.choice(MEMBERS), "v"],
        lambda: ["HGET", k, m],
        lambda: ["HDEL", k, m],
        lambda: ["HGETALL", k],
        lambda: ["HINCRBY", k, m, str(rng.randint(-3, 3))],
        lambda: ["HLEN", k],
        lambda: ["HEXISTS", k, m],
        lambda: ["TYPE", k],
    ]
    return rng.choice(choices)()


def start_redis(path, work):
    port = free_port()
    proc = subprocess.Popen([path, "--port", str(port), "--bind", HOST, "--dir", work, "--save", "",
                             "--appendonly", "no", "--daemonize", "no"],
                            stdout=open(os.path.join(work, "redis.log"), "wb"), stderr=subprocess.STDOUT)
    return proc, port


def start_aegis(path, work):
    resp, peer, admin = free_port(), free_port(), free_port()
    token = os.path.join(work, "admin-token")
    with open(token, "w") as f:
        f.write("compat-test-token\n")
    os.chmod(token, 0o600)
    cmd = [path, "serve", "--id", "n1", "--data-dir", os.path.join(work, "n1"), "--cluster-id", "compat",
           "--initial-cluster-state", "new", "--peer-listen", f"{HOST}:{peer}", "--client-listen", f"{HOST}:{resp}",
           "--admin-listen", f"{HOST}:{admin}", "--peers", f"n1={HOST}:{peer}/{HOST}:{resp}",
           "--admin-token-file", token, "--max-collection-size", str(MAX_COLLECTION)]
    proc = subprocess.Popen(cmd, stdout=open(os.path.join(work, "aegis.log"), "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    return proc, resp


def ready(port, write=False):
    c = Connection(port)
    if write:
        return c.command("SET", "__ready", "1") == ("status", "OK") and c.command("DEL", "__ready") == 1
    return c.command("PING") == ("status", "PONG")


def compare(redis_conn, aegis_conn, commands, label, show=12):
    mismatches = []
    wrong_type = 0
    for command in commands:
        expected = normalise(command, redis_conn.command(*command))
        actual = normalise(command, aegis_conn.command(*command))
        if expected != actual:
            mismatches.append((command, expected, actual))
        if isinstance(expected, tuple) and expected[1].startswith("WRONGTYPE"):
            wrong_type += 1
    for command, expected, actual in mismatches[:show]:
        print(f"     {' '.join(command)}: redis {expected!r}, aegis {actual!r}")
    check(label, not mismatches, f"({len(commands)} commands, {wrong_type} WRONGTYPE, {len(mismatches)} different)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="aegis-compat-")
    procs = []
    started = time.monotonic()
    try:
        redis_proc, redis_port = start_redis(args.redis_server, work)
        procs.append(redis_proc)
        aegis_proc, aegis_port = start_aegis(os.path.abspath(args.aegis), work)
        procs.append(aegis_proc)
        if not check("redis-server answers", wait_until(lambda: ready(redis_port), 10)):
            return 1
        if not check("aegis serve accepts writes", wait_until(lambda: ready(aegis_port, write=True), 30)):
            return 1
        r, a = Connection(redis_port), Connection(aegis_port)
        r.command("FLUSHALL")
        compare(r, a, EDGE_CASES, "edge cases reply as redis-server does")
        rng = random.Random(args.seed)
        for key in ["s", "n", "a", "b", "m", "set", "h", "ws", "wh", "wstr", "fresh", "absent", "other"]:
            r.command("DEL", key)
            a.command("DEL", key)
        commands = [random_command(rng) for _ in range(args.commands)]
        compare(r, a, commands, f"random sequences over {len(KEYS)} keys (seed {args.seed}) reply as redis-server does")
        final = [["TYPE", k] for k in KEYS] + [["DBSIZE"]]
        compare(r, a, final, "final types and key count agree")
        # The documented bound (--max-collection-size): growing past it is refused and
        # changes nothing; up to it is fine.
        members = [f"m{i}" for i in range(MAX_COLLECTION)]
        check("a set can hold --max-collection-size members", a.command("SADD", "big", *members) == MAX_COLLECTION)
        refused = a.command("SADD", "big", "one-more", "m1")
        check("one more member is refused", isinstance(refused, tuple) and refused[1].startswith("ERR")
              and "limit of 1000" in refused[1], str(refused))
        check("the refused write changed nothing", a.command("SCARD", "big") == MAX_COLLECTION
              and a.command("SISMEMBER", "big", "one-more") == 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed in {time.monotonic() - started:.1f} s")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
