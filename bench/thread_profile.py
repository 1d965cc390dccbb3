#!/usr/bin/env python3
"""Where each SET's CPU goes, per thread, against a running `aegis dev` (admin ports 8001-8003).

Runs `redis-benchmark -t set -c 50 -d 256 -r 100000 -n N` against PORT and prints, for
every thread of every `aegis serve` process that used CPU: CPU microseconds, voluntary
and involuntary context switches per SET (from /proc/PID/task/TID), the total, and the
per-SET deltas of the nodes' message, proposal, apply and fsync counters. Loopback only;
the benchmark is bounded by N.

Usage: bench/thread_profile.py PORT [N] [extra redis-benchmark arguments]
"""
import os, subprocess, sys, time, re, urllib.request
port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
extra = sys.argv[3:]
hz = os.sysconf('SC_CLK_TCK')
pids = [int(p) for p in subprocess.check_output(['pgrep', '-f', 'aegis serve']).split()]
def threads():
    out = {}
    for pid in pids:
        for tid in os.listdir(f'/proc/{pid}/task'):
            try:
                stat = open(f'/proc/{pid}/task/{tid}/stat').read()
                name = stat[stat.index('(')+1:stat.rindex(')')]
                f = stat[stat.rindex(')')+2:].split()
                cpu = (int(f[11]) + int(f[12])) / hz
                st = open(f'/proc/{pid}/task/{tid}/status').read()
                v = int(re.search(r'voluntary_ctxt_switches:\s+(\d+)', st).group(1))
                nv = int(re.search(r'nonvoluntary_ctxt_switches:\s+(\d+)', st).group(1))
                out[(pid, int(tid))] = (name, cpu, v, nv)
            except FileNotFoundError:
                pass
    return out
def metrics():
    m = {}
    for p in (8001, 8002, 8003):
        for line in urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics').read().decode().splitlines():
            if line.startswith('#') or not line.strip(): continue
            k, v = line.rsplit(' ', 1)
            try: m[(p, k)] = float(v)
            except ValueError: pass
    return m
t0 = threads(); m0 = metrics(); w0 = time.time()
out = subprocess.run(['redis-benchmark', '-p', str(port), '-t', 'set', '-n', str(n), '-c', '50', '-d', '256', '-r', '100000', '--csv'] + extra, capture_output=True, text=True).stdout
w1 = time.time(); t1 = threads(); m1 = metrics()
print(out.strip().splitlines()[-1], f'wall {w1-w0:.2f}s')
per = {}
for k, (name, cpu, v, nv) in t1.items():
    a = t0.get(k, (name, 0, 0, 0))
    d = (cpu - a[1], v - a[2], nv - a[3])
    key = (k[0], name + ":" + str(k[1]))
    s = per.setdefault(key, [0, 0, 0])
    for i in range(3): s[i] += d[i]
tot = 0
for (pid, name), (c, v, nv) in sorted(per.items()):
    tot += c
    if c > 0.005 or v > 100:
        print(f'{pid:>7} {name:<22} cpu/SET {c*1e6/n:7.1f} us  vol/SET {v/n:5.2f} invol/SET {nv/n:5.2f}')
print(f'total cpu/SET {tot*1e6/n:.1f} us')
for (p, k), v in sorted(m1.items()):
    d = v - m0.get((p, k), 0)
    if d and any(s in k for s in ('messages_sent', 'messages_received', 'proposals', 'fsync_seconds_count', 'fsync_seconds_sum', 'applied_entries', 'bytes_sent')):
        print(p, k, f'{d:.0f}' if 'sum' not in k else f'{d:.3f}', f'per SET {d/n:.3f}')
