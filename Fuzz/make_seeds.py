#!/usr/bin/env python3
"""Writes the seed inputs in Fuzz/seeds/<target>/ (committed; re-run after a format change).

Each seed is a small valid input in the layout the target's harness expects (see the
comment at the top of each Fuzz/Targets/*/*.swift): the fuzzer starts from them
instead of discovering the formats byte by byte.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def crc32c(data, crc=0xFFFFFFFF):
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc


def write(target, name, data):
    path = os.path.join(ROOT, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


# --- RESP: first byte = chunk size selector, then the stream -------------------------
def bulk(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


write("resp", "set", b"\x03" + bulk(b"SET", b"key", b"value"))
write("resp", "pipeline", b"\x00" + bulk(b"GET", b"k") + b"PING\r\n" + bulk(b"MSET", b"a", b"1", b"b", b"2"))
write("resp", "inline-quotes", b"\x05" + b"SET \"a\\x41 b\" 'c\\'d'\r\nECHO \"\\n\\t\"\n")
write("resp", "large-refused", b"\x07" + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\n" + b"x" * 20 + b"\r\n" + bulk(b"PING"))
write("resp", "resp3-values", b"\x01" + b"%1\r\n+a\r\n:1\r\n~2\r\n#t\r\n,1.5\r\n|1\r\n+k\r\n+v\r\n=7\r\ntxt:abc\r\n$-1\r\n")


# --- peer frames: u32 length, version 1, kind, body (big-endian) ---------------------
def s(text):
    b = text.encode()
    return struct.pack(">I", len(b)) + b


def frame(kind, body):
    payload = bytes([1, kind]) + body
    return struct.pack(">I", len(payload)) + payload


def entry(index, term, data=b"", etype=0):
    return struct.pack(">QQBQ", index, term, etype, 7) + struct.pack(">I", len(data)) + data


def nodes(*names):
    return struct.pack(">I", len(names)) + b"".join(s(n) for n in names)


env = s("n1") + s("n2")
write("frame", "vote", frame(1, env + struct.pack(">Q", 3) + s("n1") + struct.pack(">QQBB", 10, 2, 1, 0)))
write("frame", "append", frame(3, env + struct.pack(">Q", 3) + s("n1") + struct.pack(">QQQ", 4, 2, 4)
                                 + struct.pack(">I", 2) + entry(5, 3, b"abc") + entry(6, 3, b"", 2)))
write("frame", "append-response", frame(4, env + struct.pack(">QB", 3, 0) + s("n2") + struct.pack(">QQQQ", 0, 6, 4, 2)))
write("frame", "snapshot", frame(7, env + struct.pack(">Q", 3) + s("n1") + struct.pack(">QQ", 9, 3)
                                   + nodes("n1", "n2", "n3") + nodes() + nodes("n4") + nodes() + b"\x00"
                                   + struct.pack(">QB", 0, 1) + struct.pack(">I", 3) + b"xyz"))
write("frame", "handshake-then-heartbeat",
      frame(0x80, struct.pack(">IH", 0x41454753, 1) + s("cluster") + s("n1") + s("n2"))
      + frame(5, env + struct.pack(">Q", 3) + s("n1") + struct.pack(">QQ", 4, 0)))
write("frame", "client-request", frame(13, env + struct.pack(">QB", 42, 0) + struct.pack(">I", 4) + b"\x01\x01\x01k"))

# --- Raft: a script of actions (see FuzzRaft.swift) ----------------------------------
write("raft", "append-to-follower", bytes([0x00, 0x01, 0x00, 0x02, 7, 0, 0x01, 1, 0, 3]))
write("raft", "response-to-leader", bytes([0x10, 0x02, 0x00, 0x03, 1, 1, 1, 12, 0, 0, 0, 0]))
write("raft", "mixed", bytes(range(0, 64)))
write("raft", "ticks", bytes([0x07, 30, 0x17, 30, 0x06, 0x06]))


# --- WAL segments (little-endian records: length, crc, type, payload) ----------------
def record(rtype, payload):
    length = struct.pack("<I", len(payload))
    crc = crc32c(length + bytes([rtype]) + payload) ^ 0xFFFFFFFF
    return length + struct.pack("<I", crc) + bytes([rtype]) + payload


def conf(voters, learners=()):
    def ns(names):
        return struct.pack("<I", len(names)) + b"".join(struct.pack("<I", len(n)) + n.encode() for n in names)
    return ns(voters) + ns(()) + ns(learners) + ns(()) + b"\x00"


header = record(0, struct.pack("<IHQQ", 0x57474541, 1, 1, 1))
entries = b"".join(record(1, struct.pack("<QQQB", i, 1, 1000 + i, 0) + b"data%d" % i) for i in range(1, 5))
hard = record(2, struct.pack("<QQ", 1, 3) + b"\x01" + struct.pack("<I", 2) + b"n1")
write("wal", "raw-segment", b"\x00" + header + entries + hard)
write("wal", "raw-preallocated", b"\x00" + header + entries + hard + b"\x00" * 300)
write("wal", "raw-compacted", b"\x00" + header + record(4, struct.pack("<QQ", 2, 1)) + entries)
write("wal", "raw-snapshot-marker", b"\x00" + header + record(3, struct.pack("<QQB", 3, 1, 1) + conf(["n1", "n2"])) + entries)
write("wal", "raw-torn-tail", b"\x00" + header + entries + hard[:7])
# Framed mode: first-index byte, then (type, length, payload) triples.
framed = bytes([0])
for i in range(1, 4):
    p = struct.pack("<QQQB", i, 1, 0, 0) + b"v"
    framed += bytes([1, len(p)]) + p
p = struct.pack("<QQ", 1, 2) + b"\x00"
framed += bytes([2, len(p)]) + p
write("wal", "framed", b"\x01" + framed)
write("wal", "framed-two-segments", b"\x01" + framed + bytes([0xEF, 1, 4]) + bytes([1, 25]) + struct.pack("<QQQB", 4, 1, 0, 0))


# --- snapshot files --------------------------------------------------------------------
def snapshot(index, term, data, voters=("n1", "n2", "n3")):
    body = struct.pack("<IHQQ", 0x53474541, 1, index, term) + conf(list(voters)) + struct.pack("<Q", len(data)) + data
    return body + struct.pack("<I", crc32c(body) ^ 0xFFFFFFFF)


write("snapshot", "valid", b"\x00" + snapshot(10, 2, b"state"))
write("snapshot", "crc-fixed", b"\x01" + snapshot(7, 1, b"", ("n1",)))
write("snapshot", "unnamed", b"\x03" + snapshot(0, 0, b"x" * 40))


# --- KV: entries (length, command bytes) ------------------------------------------------
def field(b):
    assert len(b) < 128
    return bytes([len(b)]) + b


cmds = [
    bytes([1, 2]) + field(b"k") + field(b"v"),           # set
    bytes([1, 1]) + field(b"k"),                         # get
    bytes([1, 5]) + field(b"n") + bytes([4]),            # increment by 2 (zig-zag)
    bytes([1, 4]) + field(b"k") + bytes([0]) + field(b"v") + field(b"w"),  # compare-and-swap
    bytes([1, 3]) + field(b"k"),                         # delete
    bytes([2, 7, 0, 2]) + field(b"a") + field(b"1") + field(b"b") + field(b"2"),  # setMany
    bytes([2, 8, 2]) + field(b"a") + field(b"b"),        # deleteMany
]
write("kv", "commands", b"\x00" + b"".join(bytes([len(c)]) + c for c in cmds))

# Encoding version 4: expiry, keyspace commands and transactions (zig-zag times: 2 * ms).
v4 = [
    bytes([1, 2]) + field(b"k") + field(b"v"),                                   # set
    bytes([4, 12]) + field(b"k") + bytes([0, 0xD0, 0x0F, 0]),                   # expire k after 1000 ms
    bytes([4, 14]) + field(b"k"),                                               # timeToLive
    bytes([4, 15]) + field(b"e") + field(b"v") + bytes([1, 0, 2, 1, 0xD0, 0x0F]),  # setWith NX, PXAT 1000
    bytes([4, 16]) + field(b"k") + bytes([1]),                                   # getAndExpire keep
    bytes([4, 13]) + field(b"k"),                                               # persist
    bytes([4, 19, 1, 3]) + field(b"a") + field(b"*") + bytes([10]),              # scan after "a" match * count 10
    bytes([4, 19, 2]) + field(b"*") + bytes([100]),                              # keys * limit 100
    bytes([4, 20]) + field(b"k") + field(b"r") + bytes([0]),                     # rename k r
    bytes([4, 21]) + field(b"r") + field(b"c") + bytes([1]),                     # copy r c replace
    bytes([4, 17, 1]) + field(b"e"),                                             # purgeExpired [e]
    bytes([4, 18, 1]) + field(b"c") + bytes([0, 2]) + field(bytes([1, 5]) + field(b"n") + bytes([2]))
    + field(bytes([4, 14]) + field(b"c")),                                       # transaction watching c
    bytes([4, 22]),                                                              # flushAll
]
write("kv", "expiry-keyspace-transactions", b"\x00" + b"".join(bytes([len(c)]) + c for c in v4))
# DR: become a standby (setDRState 41), apply a stream batch (40) twice, write (refused).
set_kv = bytes([1, 2]) + field(b"k") + field(b"v")
standby = bytes([4, 41, 0, 2]) + field(b"") + field(b"") + bytes([0]) + field(b"") + bytes([0])
batch_body = (field(b"east") + bytes([0, 0, 2, 3, 1]) + bytes([2]) + field(b"east") + bytes([5, 0])
              + field(set_kv))
dr = [standby, bytes([4, 40]) + batch_body, bytes([4, 40]) + batch_body, set_kv]
write("kv", "dr", b"\x00" + b"".join(bytes([len(c)]) + c for c in dr))
# DR re-seed and failback: a standby stages two chunks of a (damaged) 40-byte snapshot
# (drSeedChunk 50; the staging is in the state's snapshot section 4 between them), and
# a fenced cluster rejoins as the standby of "west" (drRejoin 51, pendingSeed).
def seed_chunk(offset, data, total=40):
    return bytes([4, 50]) + field(b"east") + bytes([0, 7, total, offset]) + field(data)


fenced = bytes([4, 41, 1, 3]) + field(b"") + field(b"") + bytes([0]) + field(b"") + bytes([0])
rejoin = bytes([4, 51, 1, 2]) + field(b"w:1") + field(b"w:2") + bytes([0]) + field(b"west") + bytes([0])
seed = [standby, seed_chunk(0, b"AKVS" + bytes(16)), seed_chunk(20, bytes(20)), fenced, rejoin,
        bytes([4, 40]) + batch_body]
write("kv", "dr-seed-rejoin", b"\x00" + b"".join(bytes([len(c)]) + c for c in seed))
# Active-active topology (command 77): enable, set a tree of a-b-c, add d via b, remove c
# (refused or not, depending on the fuzzed state machine's own cluster ID).
tree = (bytes([2]) + field(b"") + bytes([3]) + field(b"a") + bytes([1]) + field(b"127.0.0.1:1")
        + field(b"b") + bytes([0]) + field(b"c") + bytes([0]) + bytes([2]) + field(b"a") + field(b"b")
        + field(b"b") + field(b"c"))
topology = [bytes([4, 70, 1, 10]), bytes([4, 77, 0]) + tree,
            bytes([4, 77, 1]) + field(b"d") + bytes([1]) + field(b"127.0.0.1:2") + bytes([1]) + field(b"b"),
            bytes([4, 77, 2]) + field(b"c")]
write("kv", "aa-topology", b"\x00" + b"".join(bytes([len(c)]) + c for c in topology))


# --- Stream: one frame (header, payload = the batch body, uncompressed) ----------------
def frame(body, codec=0):
    header = b"AGST" + bytes([1, codec, 0]) + struct.pack("<III", len(body), len(body), crc32c(body) ^ 0xFFFFFFFF)
    return header + struct.pack("<QQQ", 1_700_000_000_000, 7, 123) + body


write("stream", "batch", frame(batch_body))
write("stream", "empty", frame(field(b"east") + bytes([0, 4, 4, 9, 0])))
