#!/usr/bin/env python3
"""AEGIS.WATCH against a real three-node cluster: every change exactly once, in order.

Three `aegis serve` processes on loopback (ports 7351-7353, 9351-9353, 8351-8353):

1. Two writers set unique values under `w:` (and increment a counter) through random
   nodes for `--seconds`; a third writer writes keys outside the prefix.
2. A watcher watches `w:` on a random node, drops its connection every 0.3-1.5 s and
   resumes `FROM` the index after the last event it saw on another random node; the
   leader is SIGKILLed in the middle and restarted.
3. Checks, from the histories: the resuming watcher's events equal, one for one and
   in order, those of a watcher that watched `FROM 1` without interruption (exactly
   once, in order); log indices never go down; every acknowledged write appears
   exactly once with its value; nothing outside the prefix appears.
4. After more than the log keeps behind a snapshot, `FROM 1` is refused with
   `COMPACTED` and a watch from the current position still works.

Prints one line per check and a JSON summary; exits non-zero on any failure.
"""
import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aegis_procs import HOST, IDS, Cluster
from checks import attempt, check, results, wait_until

OFFSET = 40  # ports 7351…: away from the other real-process tests


class RawRESP:
    """A RESP2 connection that reads whole replies from a buffer, so that a read that
    times out loses nothing (redis-py drops the connection on a timeout)."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=1)
        self.sock.settimeout(0.5)
        self.buf = b""

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode() if not isinstance(a, bytes) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def _parse(self, pos):
        """(value, next position), or None when the buffer holds no whole reply yet."""
        end = self.buf.find(b"\r\n", pos)
        if end < 0:
            return None
        kind, line, nxt = self.buf[pos:pos + 1], self.buf[pos + 1:end], end + 2
        if kind == b"+":
            return line, nxt
        if kind == b"-":
            return redis.exceptions.ResponseError(line.decode()), nxt
        if kind == b":":
            return int(line), nxt
        if kind == b"$":
            n = int(line)
            if n < 0:
                return None, nxt
            if len(self.buf) < nxt + n + 2:
                return None
            return self.buf[nxt:nxt + n], nxt + n + 2
        if kind == b"*":
            items = []
            for _ in range(int(line)):
                got = self._parse(nxt)
                if got is None:
                    return None
                items.append(got[0])
                nxt = got[1]
            return items, nxt
        raise ValueError(f"unexpected reply type {kind!r}")

    def read(self):
        """The next reply; None when none arrived within the socket timeout."""
        while True:
            got = self._parse(0) if self.buf else None
            if got is not None:
                self.buf = self.buf[got[1]:]
                return got[0]
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise ConnectionError("closed by the server")
            self.buf += data

    def close(self):
        self.sock.close()


def watch_events(port, prefix, start, stop_at, events, rng=None, hold=None):
    """Watches `prefix` FROM `start` (None: from the node's commit index) on `port`
    until `stop_at` (monotonic), or for a random 0.3-1.5 s when `hold`; appends
    (index, event, key, arg) to `events`. Returns the index to resume FROM and an
    error text when it failed."""
    until = stop_at if not hold else min(stop_at, time.monotonic() + rng.uniform(0.3, 1.5))
    next_index = start
    conn = None
    try:
        conn = RawRESP(port)
        conn.send("AEGIS.WATCH", prefix, *(() if start is None else ("FROM", start)))
        first = None
        while first is None and time.monotonic() < until + 5:
            first = conn.read()
        if not (isinstance(first, list) and first[0] == b"watch" and (start is None or first[2] == start)):
            return next_index, f"confirmation {first!r}"
        while time.monotonic() < until:
            msg = conn.read()
            if msg is None:
                continue
            kind = msg[0]
            if kind == b"change":
                events.append((msg[1], msg[2].decode(), msg[3].decode(), msg[4]))
                next_index = msg[1] + 1
            elif kind == b"progress":
                next_index = msg[1] + 1
            else:
                return next_index, f"unexpected {msg!r}"
        return next_index, None
    except (ConnectionError, OSError) as e:
        return next_index, f"{type(e).__name__}: {e}"
    finally:
        if conn:
            conn.close()


def run(cl, seconds, seed):
    rng = random.Random(seed)
    leader = cl.wait_leader()
    check("a leader is elected", leader is not None)
    stop = threading.Event()
    acked, unknown, counts = {}, set(), {"incr": 0}
    lock = threading.Lock()

    def writer(t):
        r = random.Random(seed + t)
        clients = {n: client(cl, n) for n in IDS}
        n = 0
        # At most 2,000 writes each: the log must still hold index 1 for the
        # uninterrupted watcher (it keeps 10,000 entries behind a snapshot every 1,000).
        while not stop.is_set() and n < 2000:
            time.sleep(0.004)  # at most ~250 writes/s each: writes span the leader kill
            node = r.choice(IDS)
            key, value = f"w:{t}:{n % 50}", f"v{t}-{n}"
            n += 1
            try:
                if t == 2:
                    clients[node].set(f"other:{n % 50}", value)
                    continue
                clients[node].set(key, value)
                with lock:
                    acked[value] = key
                if n % 5 == 0:
                    clients[node].incr("w:count")
                    with lock:
                        counts["incr"] += 1
            except redis.exceptions.RedisError:
                with lock:
                    unknown.add(value)
                time.sleep(0.05)

    resumed, resume_errors, sessions = [], [], [0]
    end = time.monotonic() + seconds + 30

    def watcher():
        r = random.Random(seed + 99)
        next_index = 1
        while time.monotonic() < end and not (stop.is_set() and caught_up()):
            node = r.choice(IDS)
            next_index, error = watch_events(cl.resp_port(node), "w:", next_index, end, resumed, r, hold=True)
            sessions[0] += 1
            if error:
                resume_errors.append(error)
                time.sleep(0.1)

    def caught_up():
        with lock:
            want = set(acked)
        return want <= {e[3].decode() for e in resumed if e[1] == "set" and e[3] is not None}

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)] + [threading.Thread(target=watcher)]
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    killed = cl.leader() or leader
    cl.kill(killed)
    new_leader = cl.wait_leader(among=[n for n in IDS if n != killed])
    check("a new leader after the SIGKILL", new_leader is not None and new_leader != killed, f"{killed} -> {new_leader}")
    time.sleep(1.5)
    cl.start(killed)
    time.sleep(seconds / 2)
    stop.set()
    for t in threads:
        t.join(timeout=seconds + 40)
    check("the watcher caught up with every acknowledged write", caught_up(), f"{len(acked)} acknowledged")
    print(f"   {len(acked)} acknowledged sets, {counts['incr']} increments, {len(unknown)} unknown outcomes; "
          f"{sessions[0]} watch sessions, {len(resume_errors)} failed to connect or broke "
          f"({resume_errors[:2]})")

    # The uninterrupted reference: FROM 1 on one node, until it has as many events.
    reference = []
    wait_until(lambda: cl.client(new_leader).ping(), 10)
    horizon = time.monotonic() + 30
    while len(reference) < len(resumed) and time.monotonic() < horizon:
        reference.clear()
        watch_events(cl.resp_port(new_leader), "w:", 1, time.monotonic() + 3, reference)
    reference = reference[:len(resumed)]
    check("the resuming watcher saw exactly the uninterrupted watcher's changes, in order",
          resumed == reference, f"{len(resumed)} vs {len(reference)}; first difference at "
          f"{next((i for i, (a, b) in enumerate(zip(resumed, reference)) if a != b), None)}")
    indices = [e[0] for e in resumed]
    check("log indices never go down", all(a <= b for a, b in zip(indices, indices[1:])))
    values = [e[3].decode() for e in resumed if e[1] == "set"]
    seen_at = {}
    for e in resumed:
        if e[1] == "set":
            seen_at.setdefault(e[3].decode(), []).append(e[0])
    dupes = {v: at for v, at in seen_at.items() if len(at) > 1}
    check("no write applied twice", not dupes,
          f"{len(dupes)}: {[(v, at, 'acknowledged' if v in acked else 'unknown' if v in unknown else '?') for v, at in list(dupes.items())[:3]]}")
    missing = [v for v in acked if v not in set(values)]
    check("every acknowledged write seen, with its value", not missing, f"{len(missing)} missing")
    check("nothing outside the prefix", all(e[2].startswith("w:") for e in resumed))
    incrs = sum(1 for e in resumed if e[1] == "incrby" and e[2] == "w:count")
    check("every acknowledged INCR seen once (unknown outcomes at most once)",
          counts["incr"] <= incrs <= counts["incr"] + len(unknown), f"{incrs} events, {counts['incr']} acknowledged")
    return new_leader


def client(cl, node):
    # No retries inside redis-py (its default retries a write after a broken connection,
    # which applies it twice when the first attempt was committed): an error here is an
    # unknown outcome, counted as such.
    return redis.Redis(host=HOST, port=cl.resp_port(node), socket_timeout=10, socket_connect_timeout=1, protocol=2,
                       retry=Retry(NoBackoff(), 0))


def compaction(cl, node):
    c = client(cl, node)
    pipe = c.pipeline(transaction=False)
    for i in range(13_000):  # past 10,000 trailing entries behind a snapshot every 1,000
        pipe.set(f"fill:{i % 100}", i)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()

    def compacted():
        try:
            c.execute_command("AEGIS.WATCH", "w:", "FROM", "1")
        except redis.exceptions.ResponseError as e:
            return "index 1 is compacted away" in str(e)
        finally:
            c.connection_pool.disconnect()
        return False
    check("FROM an index compacted away is refused with COMPACTED", wait_until(compacted, 20))
    events = []
    writer = threading.Timer(0.5, lambda: client(cl, node).set("w:late", "x"))
    writer.start()
    watch_events(cl.resp_port(node), "w:", None, time.monotonic() + 3, events)
    writer.join()
    check("a watch from the current position still works", any(e[2] == "w:late" for e in events), f"{events}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="aegis-watch-")
    cl = Cluster(os.path.abspath(args.aegis), work, election_ticks=10, port_offset=OFFSET, cluster_id="watch",
                 extra=["--snapshot-entries", "1000"])
    started = time.monotonic()
    try:
        for n in IDS:
            cl.start(n)
        leader = None
        found = []
        attempt("watch across reconnects and a leader kill", lambda: found.append(run(cl, args.seconds, args.seed)))
        leader = (found or [None])[0] or cl.wait_leader()
        attempt("compaction", lambda: compaction(cl, leader))
    finally:
        cl.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"test": "watch", "passed": results.passed, "failed": results.failed,
                      "seconds": round(time.monotonic() - started, 1)}))
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
