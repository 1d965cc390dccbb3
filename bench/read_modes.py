#!/usr/bin/env python3
"""GET through the leader with safe ReadIndex reads and with lease reads, back to back.

    bench/read_modes.py --aegis .build/release/aegis [--port-base 26000] [--requests 200000]

For each mode (safe, then lease, then safe again by default) starts three `aegis serve`
processes on loopback (scripts/aegis_procs.py, ports from --port-base), loads --keys
keys of --value-bytes bytes through the leader, then runs
`redis-benchmark -t get -n N -c 50 -d 256 -r KEYS` against the leader and prints the
setup, the figure and the nodes' INFO read_mode. The same machine, one run: compare the
modes with each other, not with runs on another day.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import aegis_procs  # noqa: E402
from aegis_procs import IDS, Cluster  # noqa: E402


def run_mode(args, mode):
    work = tempfile.mkdtemp(prefix=f"aegis-readmodes-{mode}-")
    cluster = Cluster(args.aegis, work, extra=["--read-mode", mode], election_ticks=args.election_ticks,
                      cluster_id="readmodes")
    try:
        for n in IDS:
            cluster.start(n)
        leader = cluster.wait_leader(timeout=30)
        if leader is None:
            raise SystemExit(f"{mode}: no leader")
        modes = {n: cluster.info(n).get("read_mode") for n in IDS}
        port = cluster.resp_port(leader)
        load = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-n", str(args.keys),
                               "-c", "50", "-P", "16", "-d", str(args.value_bytes), "-r", str(args.keys), "-q"],
                              capture_output=True, text=True, timeout=600)
        time.sleep(1)
        out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get", "-n", str(args.requests),
                              "-c", "50", "-d", str(args.value_bytes), "-r", str(args.keys), "-q"],
                             capture_output=True, text=True, timeout=600).stdout
        match = re.search(r"GET: ([\d.]+) requests per second(?:, p50=([\d.]+) msec)?", out)
        rate = float(match.group(1)) if match else None
        p50 = match.group(2) if match and match.group(2) else "?"
        errors = out.count("ERR") + out.count("UNAVAILABLE")
        print(f"mode {mode:5}  GET {rate if rate is not None else 'n/a':>10} req/s  p50 {p50} ms  leader {leader}  "
              f"read_mode per node {modes}  load: {load.stdout.strip().splitlines()[-1] if load.stdout.strip() else load.stderr.strip()[:80]}"
              f"{'  ERRORS ' + str(errors) if errors else ''}", flush=True)
        return rate
    finally:
        cluster.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aegis", required=True)
    ap.add_argument("--port-base", type=int, default=26000)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--value-bytes", type=int, default=256)
    ap.add_argument("--election-ticks", type=int, default=100)
    ap.add_argument("--modes", default="safe,lease,safe,lease")
    args = ap.parse_args()
    aegis_procs.use_port_base(args.port_base)
    load = os.getloadavg()
    print(f"setup: 3 x aegis serve ({args.aegis}), loopback, ports {args.port_base}+, election {args.election_ticks} ticks "
          f"x 10 ms, redis-benchmark -t get -n {args.requests} -c 50 -d {args.value_bytes} -r {args.keys} through the "
          f"leader after loading {args.keys} keys; {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(shared machine)", flush=True)
    rates = {}
    for mode in args.modes.split(","):
        rates.setdefault(mode, []).append(run_mode(args, mode))
    for mode, values in rates.items():
        print(f"{mode}: {', '.join(str(v) for v in values)} req/s")


if __name__ == "__main__":
    main()
