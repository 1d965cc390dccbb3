#!/usr/bin/env python3
"""`aegis cluster restart-rolling --admin … --restart-command CMD`: the mode for nodes that
a service manager runs (`ssh {host} sudo systemctl restart aegis`). Here CMD is a shell
script that does what a service manager's restart does to a local process: SIGTERM, wait
for the process to exit, start the same command again (its pid in a file) without the
descriptors the script inherited (the tool waits for CMD until every copy of its own
descriptors is closed, so a node started in the background must not keep them).

Three `aegis serve` processes on loopback; one writer in a closed loop of SETs through
every node in turn (a refused or dropped write is retried on the next node: counted,
not a failure — the latency test is scripts/rolling_restart_test.py). Checks: the command
exits 0 and restarts every node once, the leader last, with CMD run once per node (its
{id}, {host} and {admin} replaced); every node is a new process that answers and is
ready; every acknowledged write is readable afterwards; a CMD that fails stops the
rolling restart at that node (exit 1, the command and its status named) and restarts
nothing after it. Bounded: about 15 s on this machine.

Usage: scripts/rolling_restart_command_test.py [--aegis PATH] [--port-base N] [--keep]
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aegis_procs  # noqa: E402
from aegis_procs import ADMIN, HOST, IDS, RESP, Cluster  # noqa: E402
from checks import check, results, wait_until  # noqa: E402
import rolling_restart  # noqa: E402

# What a service manager's restart does: stop (SIGTERM, wait), start again, note the pid.
RESTART_SCRIPT = """#!/bin/bash
# restart.sh ID HOST ADMIN: restarts node ID as `systemctl restart` would.
set -eu
work=$(dirname "$0")
id=$1
echo "$1 $2 $3" >> "$work/restarts.log"
pid=$(cat "$work/$id.pid")
kill -TERM "$pid"
i=0
# Gone, or a zombie its parent (the test, for the first processes) has not reaped yet.
while kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
  i=$((i + 1))
  [ "$i" -le 300 ] || { echo "node $id (pid $pid) did not stop" >&2; exit 3; }
  sleep 0.05
done
# The node's command, one argument per line.
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < "$work/$id.cmd"
# Like a service manager, start the node without the descriptors this shell inherited:
# the tool waits for the command until every holder of its own ends closed them.
for fd in /proc/$$/fd/*; do
  n=${fd##*/}
  if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
done
nohup "$@" >> "$work/$id.log" 2>&1 < /dev/null &
echo $! > "$work/$id.pid"
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie (exited, not reaped yet) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def run_tool(args, work, timeout):
    """Runs the tool with its output in files (not pipes, which the nodes it starts could
    hold open); returns an object with returncode, stdout and stderr."""
    out_path, err_path = os.path.join(work, "tool.out"), os.path.join(work, "tool.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        code = subprocess.run(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout).returncode
    with open(out_path) as out, open(err_path) as err:
        return argparse.Namespace(returncode=code, stdout=out.read(), stderr=err.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--port-base", type=int, default=None,
                    help="RESP on BASE+k, admin BASE+10+k, peers BASE+20+k (default: aegis_procs' ports)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.port_base is not None:
        aegis_procs.use_port_base(args.port_base)
    aegis = os.path.abspath(args.aegis)
    work = tempfile.mkdtemp(prefix="aegis-restart-cmd-")
    cluster = Cluster(aegis, work, election_ticks=15)
    script = os.path.join(work, "restart.sh")
    with open(script, "w") as f:
        f.write(RESTART_SCRIPT)
    os.chmod(script, stat.S_IRWXU)
    stop = threading.Event()
    acked, retried = {}, [0]
    try:
        for n in IDS:
            cluster.start(n)
            with open(os.path.join(work, f"{n}.cmd"), "w") as f:
                f.write("\n".join(cluster.command(n)) + "\n")
            with open(os.path.join(work, f"{n}.pid"), "w") as f:
                f.write(f"{cluster.procs[n].pid}\n")
        leader = cluster.wait_leader(timeout=30)
        check("cluster elects a leader", leader is not None)
        check("every node ready", wait_until(lambda: all(rolling_restart.ready(cluster, n) for n in IDS), 30))
        first_pids = {n: cluster.procs[n].pid for n in IDS}

        def writer():
            k = 0
            while not stop.is_set():
                node = IDS[k % 3]
                try:
                    r = redis.Redis(host=HOST, port=RESP[node], socket_timeout=3, socket_connect_timeout=1)
                    r.set(f"k{k}", str(k))
                    acked[f"k{k}"] = str(k)
                    k += 1
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                    retried[0] += 1  # refused or dropped: written again under the next key
                    k += 1
                    time.sleep(0.01)

        thread = threading.Thread(target=writer)
        thread.start()
        admins = ",".join(f"{n}={HOST}:{ADMIN[n]}" for n in IDS)
        command = f"{shlex.quote(script)} {{id}} {{host}} {{admin}}"
        started = time.monotonic()
        out = run_tool([aegis, "cluster", "restart-rolling", "--admin", admins, "--restart-command", command,
                        "--json", "--no-tls", "--admin-token", cluster.token, "--timeout", "20"], work, 120)
        took = time.monotonic() - started
        time.sleep(0.5)
        stop.set()
        thread.join(timeout=10)
        steps = json.loads(out.stdout) if out.stdout.strip().startswith("[") else []
        check("restart-rolling --restart-command exits 0 having restarted every node once",
              out.returncode == 0 and sorted(s["node"] for s in steps) == IDS and all(s["ok"] for s in steps),
              (out.stdout + out.stderr)[-800:])
        check("... the leader last", steps and steps[-1]["node"] == leader and steps[-1]["wasLeader"]
              and not any(s["wasLeader"] for s in steps[:-1]), json.dumps(steps))
        with open(os.path.join(work, "restarts.log")) as f:
            calls = [line.split() for line in f.read().splitlines()]
        check("... the command ran once per node, {id} {host} {admin} replaced",
              calls == [[s["node"], HOST, f"{HOST}:{ADMIN[s['node']]}"] for s in steps], json.dumps(calls))
        pids = {}
        for n in IDS:
            with open(os.path.join(work, f"{n}.pid")) as f:
                pids[n] = int(f.read())
        check("every node is a new process; the old ones exited",
              all(pids[n] != first_pids[n] and alive(pids[n]) and cluster.procs[n].poll() is not None for n in IDS),
              json.dumps({"first": first_pids, "now": pids}))
        check("every node answers and is ready", wait_until(
            lambda: all(rolling_restart.ready(cluster, n) for n in IDS), 20))
        reader = cluster.client(cluster.wait_leader() or IDS[0])
        missing = [k for k, v in acked.items() if (reader.get(k) or b"").decode() != v]
        check("every acknowledged write readable after the restarts", acked and not missing,
              f"{len(missing)} of {len(acked)} differ; {retried[0]} refused or dropped writes retried")

        # A command that fails stops the rolling restart at the first node.
        failing = os.path.join(work, "fail.sh")
        with open(failing, "w") as f:
            f.write(f"#!/bin/sh\necho \"$1\" >> {shlex.quote(os.path.join(work, 'failed.log'))}\nexit 7\n")
        os.chmod(failing, stat.S_IRWXU)
        out = run_tool([aegis, "cluster", "restart-rolling", "--admin", admins, "--restart-command",
                        f"{shlex.quote(failing)} {{id}}", "--no-tls", "--admin-token", cluster.token, "--timeout", "20"],
                       work, 60)
        tried = []
        if os.path.exists(os.path.join(work, "failed.log")):
            with open(os.path.join(work, "failed.log")) as f:
                tried = f.read().split()
        check("a failing command stops the rolling restart at that node (exit 1, command and status named)",
              out.returncode == 1 and len(tried) == 1 and "exited with status 7" in out.stdout
              and "the other nodes are not restarted" in out.stdout, (out.stdout + out.stderr)[-400:])
        print(json.dumps({"seconds": round(took, 1), "acknowledged": len(acked), "retried": retried[0], "steps": steps}))
    finally:
        stop.set()
        for n in IDS:
            try:
                with open(os.path.join(work, f"{n}.pid")) as f:
                    pid = int(f.read())
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        cluster.stop_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failed else 0)


if __name__ == "__main__":
    main()
