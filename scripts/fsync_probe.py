#!/usr/bin/env python3
"""How this machine's disk answers small synchronous writes, with nothing else running:
one process writes 200 bytes and calls fdatasync every 2 ms for --seconds (default 40)
in a preallocated 1 MiB file under --dir (default /tmp), and prints the latency
percentiles and the slowest call. A replicated write waits for an fdatasync on a
quorum, so a request can never be faster than the disk's own stalls: the rolling
restart's figures (scripts/rolling_restart_test.py) are read against this.

    python3 scripts/fsync_probe.py --seconds 40
"""
import argparse
import json
import os
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    path = os.path.join(args.dir, f"fsync-probe-{os.getpid()}.dat")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.pwrite(fd, b"\0" * (1 << 20), 0)
        os.fsync(fd)
        latencies = []
        end = time.monotonic() + args.seconds
        k = 0
        while time.monotonic() < end:
            os.pwrite(fd, b"x" * 200, (k * 4096) % (1 << 20))
            k += 1
            started = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)
    print(json.dumps({"dir": args.dir, "seconds": args.seconds, "fdatasyncs": len(latencies), "p50_ms": pct(0.5),
                      "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": round(latencies[-1] * 1000, 1),
                      "over_50ms": sum(1 for x in latencies if x > 0.05),
                      "over_100ms": sum(1 for x in latencies if x > 0.1)}))


if __name__ == "__main__":
    main()
