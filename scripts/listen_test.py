#!/usr/bin/env python3
"""A listener that cannot be opened stops `aegis serve` with a clear error.

For each of the three listeners (clients/RESP, admin API, peers), the port is held by
another socket on 127.0.0.1 and a one-node `aegis serve` is started on it: the process
must exit with status 1 within 10 s (before the fix it hung for ever once the admin or
RESP listener failed: the node loop ignored the service group's cancellation), and its
last line must name the listener and the address. Then, with every port free, the same
command serves (the check above cannot pass by the command being wrong). Bounded: about
3 s on this machine.

Usage: scripts/listen_test.py [--aegis PATH] [--port-base 23700]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, results  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--port-base", type=int, default=23700)
    args = ap.parse_args()
    resp, admin, peer = args.port_base, args.port_base + 10, args.port_base + 20
    work = tempfile.mkdtemp(prefix="aegis-listen-")

    def command():
        data = os.path.join(work, "n1")
        shutil.rmtree(data, ignore_errors=True)
        return [os.path.abspath(args.aegis), "serve", "--id", "n1", "--data-dir", data,
                "--peer-listen", f"127.0.0.1:{peer}", "--client-listen", f"127.0.0.1:{resp}",
                "--admin-listen", f"127.0.0.1:{admin}", "--peers", f"n1=127.0.0.1:{peer}/127.0.0.1:{resp}",
                "--initial-cluster-state", "new"]

    try:
        for what, port in [("clients (RESP)", resp), ("the admin API", admin), ("peers", peer)]:
            holder = socket.socket()
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind(("127.0.0.1", port))
            holder.listen()
            proc = subprocess.Popen(command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            started = time.time()
            try:
                out, _ = proc.communicate(timeout=10)
                took = time.time() - started
                last = out.strip().splitlines()[-1] if out.strip() else ""
                check(f"port of {what} in use: aegis serve exits with status 1", proc.returncode == 1,
                      f"(status {proc.returncode} after {took:.2f} s)")
                check(f"... and says which listener and address", f"cannot listen for {what} on 127.0.0.1:{port}" in last,
                      f"({last[:200]!r})")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                check(f"port of {what} in use: aegis serve exits with status 1", False, "(still running after 10 s)")
            finally:
                holder.close()
        proc = subprocess.Popen(command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ready = False
        deadline = time.time() + 15
        while time.time() < deadline and not ready:
            try:
                ready = urllib.request.urlopen(f"http://127.0.0.1:{admin}/livez", timeout=1).status == 200
            except OSError:
                time.sleep(0.1)
        check("with every port free the same command serves (/livez 200)", ready)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
