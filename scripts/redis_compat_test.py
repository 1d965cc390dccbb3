#!/usr/bin/env python3
"""Sequential compatibility with Redis: the same command sequences against a real
redis-server and against one real `aegis serve` node, reply by reply.

Covers strings (SET/GET/MGET/MSET/SETNX/GETSET/APPEND/STRLEN/EXISTS/DEL and the INCR
family), sets (SADD, SREM,
SMEMBERS, SISMEMBER, SCARD), hashes (HSET, HGET, HDEL, HGETALL, HINCRBY, HLEN,
HEXISTS), TYPE and WRONGTYPE: hand-written edge cases (errors, overflow, wrong types,
keys that change type), then random sequences over a few keys so that every command
meets every type. Then expiry (EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with NX/XX/GT/LT,
TTL/PTTL/EXPIRETIME/PEXPIRETIME, PERSIST, SET EX/PX/EXAT/PXAT/KEEPTTL, SETEX, PSETEX,
GETEX, keys that expire while the test waits), the keyspace commands (SCAN with
MATCH/COUNT/TYPE compared as the set of keys a whole scan returns, KEYS, RANDOMKEY,
RENAME, RENAMENX, COPY, FLUSHDB/FLUSHALL, OBJECT, MEMORY USAGE, DBSIZE) and
transactions (MULTI/EXEC/DISCARD, EXECABORT, errors inside EXEC, WATCH from a second
connection, WATCH of a key that expires), with their error cases. Times differ by
when each server ran the command: TTL-family replies are compared within a tolerance. Replies are compared raw (RESP2, read by aegis-jepsen's client, so
no client library reshapes them); the only normalisation is the order of SMEMBERS and
HGETALL, which Redis does not define. Last, Aegis's bound on a set's size
(--max-collection-size) is checked. Both servers listen on 127.0.0.1 only.

With --active-active the aegis node runs as a one-cluster active-active group (CRDT
metadata kept for every write: counters, HINCRBY counter fields, OR-sets), which must
answer exactly as redis-server too.

Usage: scripts/redis_compat_test.py [--aegis PATH] [--redis-server PATH] [--seed N] [--commands N] [--active-active]
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
        return plain(reply)


def plain(reply):
    """Statuses and errors as tuples, also inside arrays (EXEC's replies)."""
    if isinstance(reply, str):
        return ("status", reply)
    if isinstance(reply, RESPError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [plain(item) for item in reply]
    return reply


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

# Expiry: options, errors, overwrites that clear the TTL, writes that keep it, keys that
# expire while the test sleeps (SLEEP is not sent).
EXPIRY_CASES = [
    ["SET", "e", "v"], ["TTL", "e"], ["PTTL", "e"], ["EXPIRETIME", "e"], ["TTL", "nokey"], ["PEXPIRETIME", "nokey"],
    ["EXPIRE", "e", "100"], ["TTL", "e"], ["PTTL", "e"], ["EXPIRETIME", "e"], ["PEXPIRETIME", "e"],
    ["EXPIRE", "e", "100", "NX"], ["EXPIRE", "e", "200", "XX"], ["EXPIRE", "e", "50", "GT"], ["EXPIRE", "e", "300", "GT"],
    ["EXPIRE", "e", "400", "LT"], ["EXPIRE", "e", "10", "LT"], ["TTL", "e"], ["EXPIRE", "e", "5", "XX", "LT"],
    ["EXPIRE", "e", "50", "XX", "GT"], ["TTL", "e"], ["PERSIST", "e"], ["PERSIST", "e"], ["TTL", "e"],
    ["EXPIRE", "e", "10", "GT"], ["EXPIRE", "e", "10", "XX"], ["EXPIRE", "e", "10", "LT"], ["EXPIRE", "e", "10", "XX", "LT"],
    ["EXPIRE", "nokey", "10"], ["PEXPIRE", "nokey", "10"], ["EXPIREAT", "nokey", "10"], ["PEXPIREAT", "nokey", "10"],
    ["EXPIRE", "e", "10", "NX", "XX"], ["EXPIRE", "e", "10", "GT", "LT"], ["EXPIRE", "e", "10", "NX", "GT"],
    ["EXPIRE", "e", "10", "FOO"], ["EXPIRE", "e", "abc"], ["EXPIRE", "e"], ["EXPIRE", "e", "1.5"],
    ["EXPIRE", "e", "9223372036854775807"], ["PEXPIRE", "e", "9223372036854775807"], ["EXPIRE", "nokey", "9223372036854775"],
    ["PEXPIREAT", "e", "9223372036854775807"], ["PTTL", "e"], ["PEXPIRETIME", "e"], ["PERSIST", "e"],
    ["TTL"], ["PERSIST"], ["PERSIST", "a", "b"],
    # Zero and negative expiries remove the key.
    ["SET", "z", "v"], ["EXPIRE", "z", "0"], ["EXISTS", "z"], ["SET", "z", "v"], ["PEXPIRE", "z", "-5"], ["GET", "z"],
    ["SET", "z", "v"], ["EXPIREAT", "z", "1"], ["TYPE", "z"], ["SET", "z", "v"], ["PEXPIREAT", "z", "0"], ["DBSIZE"],
    # SET options.
    ["SET", "s", "v", "EX", "100"], ["TTL", "s"], ["SET", "s", "w"], ["TTL", "s"], ["SET", "s", "v", "PX", "100000"],
    ["PTTL", "s"], ["SET", "s", "x", "KEEPTTL"], ["PTTL", "s"], ["GET", "s"], ["SET", "s", "y", "XX", "GET", "EX", "100"],
    ["TTL", "s"], ["SET", "s", "y", "NX", "EX", "100"], ["SET", "s2", "y", "NX", "PX", "100000", "GET"], ["TTL", "s2"],
    ["SET", "s3", "y", "XX", "EX", "10"], ["EXISTS", "s3"], ["SET", "s", "v", "EXAT", "4102444800"], ["EXPIRETIME", "s"],
    ["SET", "s", "v", "PXAT", "4102444800000"], ["PEXPIRETIME", "s"],
    ["SET", "s", "v", "EX", "0"], ["SET", "s", "v", "EX", "-1"], ["SET", "s", "v", "PX", "0"], ["SET", "s", "v", "EX", "abc"],
    ["SET", "s", "v", "EX"], ["SET", "s", "v", "EX", "10", "PX", "10"], ["SET", "s", "v", "KEEPTTL", "EX", "10"],
    ["SET", "s", "v", "EX", "10", "KEEPTTL"], ["SET", "s", "v", "NX", "XX"], ["SET", "s", "v", "PXAT", "0"],
    ["SET", "s", "v", "EXAT", "9223372036854775807"], ["SET", "s", "v", "EX", "9223372036854775"],
    # INCR, APPEND and collections keep the TTL; GETSET and MSET clear it.
    ["SET", "n", "1", "EX", "100"], ["INCR", "n"], ["APPEND", "n", "0"], ["TTL", "n"], ["GETSET", "n", "5"], ["TTL", "n"],
    ["SET", "n", "1", "EX", "100"], ["MSET", "n", "2"], ["TTL", "n"],
    ["SADD", "set", "a"], ["EXPIRE", "set", "100"], ["SADD", "set", "b"], ["TTL", "set"], ["HSET", "h", "f", "v"],
    ["PEXPIRE", "h", "100000"], ["HSET", "h", "g", "w"], ["PTTL", "h"], ["TTL", "set"],
    # SETEX, PSETEX, GETEX.
    ["SETEX", "x", "100", "v"], ["TTL", "x"], ["PSETEX", "x", "100000", "w"], ["PTTL", "x"], ["GET", "x"],
    ["SETEX", "x", "0", "v"], ["SETEX", "x", "-1", "v"], ["PSETEX", "x", "0", "v"], ["SETEX", "x", "abc", "v"],
    ["SETEX", "x", "10"], ["PSETEX", "x"], ["SETEX", "set", "10", "v"], ["TYPE", "set"], ["TTL", "set"],
    ["GETEX", "x"], ["GETEX", "x", "PERSIST"], ["TTL", "x"], ["GETEX", "x", "EX", "100"], ["TTL", "x"],
    ["GETEX", "x", "PX", "100000"], ["PTTL", "x"], ["GETEX", "x", "EXAT", "4102444800"], ["EXPIRETIME", "x"],
    ["GETEX", "x", "PXAT", "4102444800000"], ["PEXPIRETIME", "x"], ["GETEX", "nokey", "EX", "10"], ["GETEX", "h"],
    ["GETEX", "x", "EX", "0"], ["GETEX", "x", "EX", "abc"], ["GETEX", "x", "EX"], ["GETEX", "x", "PERSIST", "EX", "10"],
    ["GETEX", "x", "FOO"], ["GETEX"], ["GET", "x"],
    # Keys that expire while we wait: absent to every command afterwards.
    ["SET", "soon", "v", "PX", "300"], ["SADD", "soonset", "m"], ["PEXPIRE", "soonset", "300"],
    ["SET", "later", "v", "PX", "60000"], ["SLEEP", "0.8"], ["GET", "soon"], ["EXISTS", "soon", "soonset", "later"],
    ["TTL", "soon"], ["TYPE", "soonset"], ["SMEMBERS", "soonset"], ["SETNX", "soon", "again"], ["TTL", "soon"],
    ["GET", "soon"], ["INCR", "soonset"],
]

# Keyspace commands and their errors (KEYS is compared as a set; SCAN below).
KEYSPACE_CASES = [
    ["FLUSHALL"], ["RANDOMKEY"], ["DBSIZE"], ["KEYS", "*"],
    ["SET", "a1", "1"], ["SET", "a2", "2"], ["SET", "b1", "3"], ["SADD", "sa", "m"], ["HSET", "ha", "f", "v"],
    ["KEYS", "a*"], ["KEYS", "*1"], ["KEYS", "?a"], ["KEYS", "[ab]1"], ["KEYS", "nomatch*"], ["KEYS"], ["KEYS", "a", "b"],
    ["DBSIZE"], ["RENAME", "a1", "r1"], ["GET", "r1"], ["EXISTS", "a1"], ["RENAME", "nokey", "x"], ["RENAME", "r1", "r1"],
    ["RENAMENX", "r1", "r1"], ["RENAMENX", "r1", "a2"], ["RENAMENX", "r1", "fresh"], ["GET", "fresh"],
    ["RENAMENX", "nokey", "x"], ["RENAME", "sa", "sb"], ["TYPE", "sb"], ["SMEMBERS", "sb"], ["RENAME", "a2", "sb"],
    ["TYPE", "sb"], ["RENAME", "x"], ["SET", "t", "v", "EX", "100"], ["RENAME", "t", "t2"], ["TTL", "t2"], ["TTL", "t"],
    ["COPY", "t2", "t3"], ["TTL", "t3"], ["COPY", "t2", "t3"], ["COPY", "b1", "t3", "REPLACE"], ["GET", "t3"], ["TTL", "t3"],
    ["COPY", "ha", "hb"], ["HGETALL", "hb"], ["COPY", "nokey", "x"], ["COPY", "b1", "b1"], ["COPY", "b1", "y", "FOO"],
    ["COPY", "b1", "y", "DB", "0"], ["COPY", "b1", "y", "DB", "abc"], ["COPY", "b1"],
    ["SET", "int", "12345"], ["SET", "short", "hello"], ["SET", "long", "x" * 60],
    ["OBJECT", "ENCODING", "int"], ["OBJECT", "ENCODING", "short"], ["OBJECT", "ENCODING", "long"],
    ["OBJECT", "ENCODING", "nokey"], ["OBJECT", "REFCOUNT", "nokey"], ["OBJECT", "REFCOUNT", "short"],
    ["OBJECT", "FOO", "k"], ["OBJECT"], ["OBJECT", "ENCODING"], ["MEMORY", "USAGE", "nokey"], ["MEMORY", "FOO"],
    ["MEMORY", "USAGE", "short", "SAMPLES"], ["SCAN", "abc"], ["SCAN", "0", "COUNT", "0"], ["SCAN", "0", "COUNT", "x"],
    ["SCAN", "0", "MATCH"], ["SCAN", "0", "FOO", "1"], ["SCAN"],
    ["FLUSHDB", "FOO"], ["FLUSHDB", "ASYNC"], ["DBSIZE"], ["SET", "only", "1"], ["RANDOMKEY"], ["FLUSHALL", "SYNC"],
    ["RANDOMKEY"], ["DBSIZE"],
]

# Transactions on one connection: queueing, EXECABORT, errors inside EXEC, reads at
# the transaction's place in the log, nesting and misuse errors.
TRANSACTION_CASES = [
    ["FLUSHALL"], ["EXEC"], ["DISCARD"], ["MULTI"], ["MULTI"], ["WATCH", "k"], ["SET", "k", "1"], ["INCR", "k"], ["GET", "k"],
    ["INCR", "notnum"], ["EXEC"], ["GET", "k"],
    ["SET", "notnum", "abc"], ["MULTI"], ["INCR", "notnum"], ["SET", "k", "v", "XX", "NX"], ["SET", "k", "2"],
    ["EXISTS", "k", "nokey"], ["MGET", "k", "notnum", "nokey"], ["TYPE", "k"], ["DBSIZE"], ["PING"], ["ECHO", "x"],
    ["EXPIRE", "k", "100"], ["TTL", "k"], ["SADD", "k", "m"], ["STRLEN", "k"], ["EXEC"],
    ["MULTI"], ["SET", "k"], ["INCR", "k"], ["EXEC"], ["GET", "k"],
    ["MULTI"], ["NOSUCHCOMMAND"], ["EXEC"], ["MULTI"], ["INCR", "k"], ["DISCARD"], ["GET", "k"], ["EXEC"],
    ["MULTI"], ["EXEC"], ["WATCH"], ["UNWATCH"], ["WATCH", "k", "j"], ["SET", "k", "3"], ["MULTI"], ["INCR", "k"],
    ["EXEC"], ["GET", "k"], ["WATCH", "k"], ["MULTI"], ["INCR", "k"], ["EXEC"], ["WATCH", "k"], ["UNWATCH"],
    ["SET", "k", "9"], ["MULTI"], ["INCR", "k"], ["EXEC"], ["MULTI"], ["EXPIRE", "k", "0"], ["GET", "k"], ["EXEC"],
    # Expiry of a watched key is a change (Redis 7).
    ["SET", "w", "v", "PX", "300"], ["WATCH", "w"], ["SLEEP", "0.6"], ["MULTI"], ["SET", "after", "1"], ["EXEC"],
    ["EXISTS", "after"],
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
    if rng.random() < 0.25:
        # Expiry and keyspace commands with long deadlines (nothing expires during the run).
        choices = [
            lambda: ["EXPIRE", k, str(rng.randint(100, 1000))] + rng.choice([[], ["NX"], ["XX"], ["GT"], ["LT"]]),
            lambda: ["PEXPIRE", k, str(rng.randint(100000, 900000))],
            lambda: ["TTL", k], lambda: ["PTTL", k], lambda: ["PERSIST", k],
            lambda: ["SET", k, m, "EX", str(rng.randint(100, 1000))],
            lambda: ["SET", k, m, "KEEPTTL"], lambda: ["GETEX", k, "PERSIST"],
            lambda: ["GETEX", k, "EX", str(rng.randint(100, 1000))],
            lambda: ["SETEX", k, str(rng.randint(100, 1000)), m],
            lambda: ["RENAME", k, rng.choice(KEYS)], lambda: ["RENAMENX", k, rng.choice(KEYS)],
            lambda: ["COPY", k, rng.choice(KEYS)] + rng.choice([[], ["REPLACE"]]),
            lambda: ["EXISTS", k], lambda: ["TYPE", k],
        ]
    return rng.choice(choices)()


def full_scan(conn, *options):
    """Every key a whole SCAN returns (cursor from 0 back to 0), or the error."""
    cursor, keys, calls = b"0", [], 0
    while True:
        reply = conn.command("SCAN", cursor, *options)
        if isinstance(reply, tuple):
            return reply
        cursor, batch = reply
        keys += batch
        calls += 1
        if cursor == b"0" or calls > 10000:
            return sorted(keys)


def compare_scans(r, a):
    """SCAN cursors differ between servers; the keys a whole scan returns must not."""
    for c in (r, a):
        c.command("FLUSHALL")
        for i in range(300):
            c.command("SET", f"scan:{i}", "v")
        for i in range(20):
            c.command("SADD", f"scanset:{i}", "m")
            c.command("HSET", f"scanhash:{i}", "f", "v")
    options = [[], ["COUNT", "7"], ["MATCH", "scan:1*"], ["MATCH", "scan*:1?", "COUNT", "3"], ["TYPE", "set"],
               ["TYPE", "hash", "COUNT", "1000"], ["TYPE", "string", "MATCH", "*9"], ["TYPE", "nosuchtype"],
               ["COUNT", "100000"]]
    bad = []
    for option in options:
        expected, actual = full_scan(r, *option), full_scan(a, *option)
        if expected != actual:
            bad.append((option, len(expected), len(actual)))
    for option, e, n in bad:
        print(f"     SCAN {option}: redis {e} keys, aegis {n}")
    check("a whole SCAN returns the same keys as redis-server's", not bad, f"({len(options)} option sets)")
    # Keys present for the whole scan are returned while others come and go (Redis's guarantee).
    stable = {f"scan:{i}".encode() for i in range(0, 300, 2)}
    cursor, seen, step = b"0", [], 0
    while True:
        cursor, batch = a.command("SCAN", cursor, "COUNT", "11")
        seen += batch
        a.command("DEL", f"scan:{2 * step + 1}")
        a.command("SET", f"scan:new{step}", "v")
        step += 1
        if cursor == b"0":
            break
    missing = stable - set(seen)
    twice = len(seen) - len(set(seen))
    check("keys present for the whole SCAN are all returned, none twice, while others change",
          not missing and twice == 0, f"({len(stable)} stable keys, {len(missing)} missing, {twice} repeated)")
    check("the SCAN cursor is a decimal integer", all(int(cursor) >= 0 for cursor in [a.command("SCAN", "0", "COUNT", "5")[0]]))


def compare_watch_from_another_connection(redis_port, aegis_port):
    """WATCH on one connection, a write from another: EXEC answers null on both servers."""
    outcomes = []
    for port in (redis_port, aegis_port):
        one, two = Connection(port), Connection(port)
        one.command("SET", "wk", "1")
        steps = [one.command("WATCH", "wk"), two.command("SET", "wk", "2"), one.command("MULTI"),
                 one.command("INCR", "wk"), one.command("EXEC"), one.command("GET", "wk"),
                 one.command("WATCH", "wk"), two.command("GET", "wk"), one.command("MULTI"), one.command("INCR", "wk"),
                 one.command("EXEC")]
        outcomes.append(steps)
    check("WATCH sees another connection's write (EXEC null), and a read is no change", outcomes[0] == outcomes[1]
          and outcomes[1][4] is None and outcomes[1][-1] == [3], f"redis {outcomes[0]!r}, aegis {outcomes[1]!r}")


def start_redis(path, work):
    port = free_port()
    proc = subprocess.Popen([path, "--port", str(port), "--bind", HOST, "--dir", work, "--save", "",
                             "--appendonly", "no", "--daemonize", "no"],
                            stdout=open(os.path.join(work, "redis.log"), "wb"), stderr=subprocess.STDOUT)
    return proc, port


def start_aegis(path, work, active_active=False):
    resp, peer, admin = free_port(), free_port(), free_port()
    token = os.path.join(work, "admin-token")
    with open(token, "w") as f:
        f.write("compat-test-token\n")
    os.chmod(token, 0o600)
    cmd = [path, "serve", "--id", "n1", "--data-dir", os.path.join(work, "n1"), "--cluster-id", "compat",
           "--initial-cluster-state", "new", "--peer-listen", f"{HOST}:{peer}", "--client-listen", f"{HOST}:{resp}",
           "--admin-listen", f"{HOST}:{admin}", "--peers", f"n1={HOST}:{peer}/{HOST}:{resp}",
           "--admin-token-file", token, "--max-collection-size", str(MAX_COLLECTION)]
    if active_active:
        cmd += ["--active-active"]
    proc = subprocess.Popen(cmd, stdout=open(os.path.join(work, "aegis.log"), "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    return proc, resp, admin


def active_active_enabled(admin):
    """Whether the node has applied the replicated active-active setting."""
    import json
    import urllib.request
    request = urllib.request.Request(f"http://{HOST}:{admin}/v1/aa",
                                     headers={"Authorization": "Bearer compat-test-token"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response).get("enabled") is True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def ready(port, write=False):
    c = Connection(port)
    if write:
        return c.command("SET", "__ready", "1") == ("status", "OK") and c.command("DEL", "__ready") == 1
    return c.command("PING") == ("status", "PONG")


# Tolerances for replies that depend on when each server ran the command.
TIME_TOLERANCE = {"TTL": 1, "PTTL": 1500, "EXPIRETIME": 2, "PEXPIRETIME": 2000}


def same(command, expected, actual):
    name = command[0].upper()
    if name in TIME_TOLERANCE and isinstance(expected, int) and isinstance(actual, int) and expected >= 0 <= actual:
        return abs(expected - actual) <= TIME_TOLERANCE[name]
    if name in ("KEYS",) and isinstance(expected, list) and isinstance(actual, list):
        return sorted(expected) == sorted(actual)
    return expected == actual


def compare(redis_conn, aegis_conn, commands, label, show=12):
    mismatches = []
    wrong_type = 0
    for command in commands:
        if command[0] == "SLEEP":
            time.sleep(float(command[1]))
            continue
        expected = normalise(command, redis_conn.command(*command))
        actual = normalise(command, aegis_conn.command(*command))
        if not same(command, expected, actual):
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
    parser.add_argument("--active-active", action="store_true", help="run the aegis node with --active-active")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="aegis-compat-")
    procs = []
    started = time.monotonic()
    try:
        redis_proc, redis_port = start_redis(args.redis_server, work)
        procs.append(redis_proc)
        aegis_proc, aegis_port, aegis_admin = start_aegis(os.path.abspath(args.aegis), work, args.active_active)
        procs.append(aegis_proc)
        if not check("redis-server answers", wait_until(lambda: ready(redis_port), 10)):
            return 1
        if not check("aegis serve accepts writes", wait_until(lambda: ready(aegis_port, write=True), 30)):
            return 1
        if args.active_active and not check("active-active is enabled", wait_until(lambda: active_active_enabled(aegis_admin), 30)):
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
        final = [["TYPE", k] for k in KEYS] + [["TTL", k] for k in KEYS] + [["DBSIZE"]]
        compare(r, a, final, "final types, TTLs and key count agree")
        compare(r, a, EXPIRY_CASES, "expiry commands and their errors reply as redis-server does")
        compare(r, a, KEYSPACE_CASES, "keyspace commands and their errors reply as redis-server does")
        check("MEMORY USAGE of a key is an integer on both", all(isinstance(c.command("MEMORY", "USAGE", "only2"), int)
              for c in (r, a) for _ in [c.command("SET", "only2", "v")]))
        check("OBJECT IDLETIME is refused with a clear error by aegis", str(a.command("OBJECT", "IDLETIME", "only2"))
              .find("not supported") >= 0, str(a.command("OBJECT", "IDLETIME", "only2")))
        compare_scans(r, a)
        compare(r, a, TRANSACTION_CASES, "MULTI/EXEC/DISCARD/WATCH reply as redis-server does")
        compare_watch_from_another_connection(redis_port, aegis_port)
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
