#!/usr/bin/env python3
"""Active-active conflict strategies against real processes: two clusters of three
nodes on loopback (`aegis serve --active-active --aa-strategy m:=manual
--aa-strategy p:=priority:c2,c1`).

1. Concurrent writes made sure of: c2 is paused (SIGSTOP, every node), c1 answers
   c2's waiting long-poll pull with an unrelated write, then writes m:k, m:j and p:k;
   c1 is paused, c2 resumed and writes the same keys; c1 resumed.
   Neither cluster had merged the other's write before writing its own.
2. priority: p:k reads c2's value on both clusters, whatever the clocks, and both
   audit it under the rule priority:c2,c1.
3. manual: both clusters list the two conflicts (HTTP GET /v1/aa/conflicts and RESP
   AEGIS.CONFLICTS) and read the same provisional value; m:k is resolved over RESP
   (AEGIS.RESOLVE … PICK), m:j over HTTP (POST /v1/aa/conflicts/{id}/resolve with a
   value), m:x with `aegis aa resolve`; both clusters then read the resolutions, list no
   conflict, and audit them (manual on the resolving cluster, overwrite on the other);
   `aegis aa audit|conflicts|strategies` show the same.

    python3 scripts/aa_conflict_test.py --aegis .build/release/aegis [--base-port 27600]
"""
import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time

from aegis_procs import start_aa_mesh, stop_clusters
from checks import check, quiet, results, wait_until


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aegis", default=".build/release/aegis")
    parser.add_argument("--base-port", type=int, default=27600,
                        help="c1 uses base..base+8 (RESP, peer, admin), c2 base+10..base+18")
    args = parser.parse_args()
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-aa-conflict-")
    clusters = {}
    try:
        start_aa_mesh(clusters, args.aegis, work, args.base_port,
                      extra=["--aa-strategy", "m:=manual", "--aa-strategy", "p:=priority:c2,c1"])
        c1, c2 = clusters["c1"], clusters["c2"]

        def get(cluster, path):
            code, body = cluster.admin(cluster.wait_leader(), "GET", path)
            return json.loads(body) if code == 200 else None

        def recorded(cluster):
            table = get(cluster, "/v1/aa/strategies")
            return table is not None and table["rules"] == ["m:=manual", "p:=priority:c2,c1"]

        check("both clusters record the --aa-strategy table",
              all(wait_until(lambda c=c: quiet(lambda: recorded(c)), 20, interval=0.2) for c in clusters.values()))

        def pause(cluster, sig):
            for p in cluster.procs.values():
                p.send_signal(sig)

        def write(cluster, suffix):
            client = cluster.client(cluster.wait_leader())
            for key in ["m:k", "m:j", "m:x", "p:k"]:
                client.set(key, f"{key}-{suffix}")

        pause(c2, signal.SIGSTOP)
        # c2's leader may have a long-poll pull waiting on c1: a first write answers it
        # (the answer waits in c2's socket), so that c2 cannot see c1's writes below
        # before it writes its own.
        c1.client(c1.wait_leader()).set("sync", "1")
        time.sleep(0.5)
        write(c1, "c1")
        pause(c1, signal.SIGSTOP)
        pause(c2, signal.SIGCONT)
        check("c2 takes its writes while c1 is paused", quiet(lambda: write(c2, "c2") or True)
              or wait_until(lambda: quiet(lambda: write(c2, "c2") or True), 10, interval=0.2))
        pause(c1, signal.SIGCONT)

        def reads(cluster, key):
            return cluster.client(cluster.wait_leader()).get(key)

        check("priority: p:k reads c2's value on both clusters",
              wait_until(lambda: quiet(lambda: reads(c1, "p:k") == reads(c2, "p:k") == b"p:k-c2"), 15, interval=0.2))
        for name, cluster in clusters.items():
            audit = quiet(lambda: get(cluster, "/v1/aa/audit?key=p%3Ak&limit=5")) or []
            check(f"priority: {name} audits it (rule, winner, both versions)",
                  bool(audit) and audit[0]["rule"] == "priority:c2,c1" and audit[0]["winner"] == "p:k-c2"
                  and sorted(v["origin"] for v in audit[0]["versions"]) == ["c1", "c2"], f"{audit[:1]}")

        def open_conflicts(cluster):
            return {c["key"]: c for c in get(cluster, "/v1/aa/conflicts")}

        check("manual: both clusters list the conflicts of m:k, m:j and m:x",
              all(wait_until(lambda c=c: quiet(lambda: set(open_conflicts(c)) == {"m:k", "m:j", "m:x"}), 15, interval=0.2)
                  for c in clusters.values()))
        check("manual: both read the same provisional value",
              quiet(lambda: reads(c1, "m:k") == reads(c2, "m:k") in (b"m:k-c1", b"m:k-c2")))
        client = c1.client(c1.wait_leader())
        listed = {row[1].decode(): row for row in client.execute_command("AEGIS.CONFLICTS")}
        check("AEGIS.CONFLICTS lists them over RESP", set(listed) == {"m:k", "m:j", "m:x"}, f"{listed}")
        versions = [v[2] for v in listed["m:k"][3]]
        pick = versions.index(b"m:k-c1")
        check("AEGIS.RESOLVE m:k … PICK resolves over RESP",
              client.execute_command("AEGIS.RESOLVE", "m:k", listed["m:k"][0], "PICK", pick) == b"OK")
        conflict_j = open_conflicts(c2)["m:j"]
        code, body = c2.admin(c2.wait_leader(), "POST", f"/v1/aa/conflicts/{conflict_j['id']}/resolve",
                              {"value": "m:j-operator"})
        check("POST /v1/aa/conflicts/{id}/resolve resolves over HTTP", code == 200, body.decode())
        def cli(cluster, *arguments):
            address = f"127.0.0.1:{cluster.admin_port(cluster.wait_leader())}"
            return subprocess.run([args.aegis, "aa", *arguments, "--admin", address, "--admin-token", cluster.token],
                                  capture_output=True, text=True, timeout=10)

        resolved = cli(c1, "resolve", str(listed["m:x"][0]), "--value", "m:x-cli")
        check("aegis aa resolve ID --value resolves", resolved.returncode == 0 and "resolved" in resolved.stdout,
              resolved.stdout + resolved.stderr)
        check("both clusters read the resolutions and list no conflict",
              wait_until(lambda: quiet(lambda: all(reads(c, "m:k") == b"m:k-c1" and reads(c, "m:j") == b"m:j-operator"
                                                   and reads(c, "m:x") == b"m:x-cli"
                                                   and not open_conflicts(c) for c in clusters.values())), 15,
                         interval=0.2))
        rules = {name: {key: (quiet(lambda c=c, key=key: get(c, f"/v1/aa/audit?key={key.replace(':', '%3A')}&limit=1"))
                              or [{}])[0].get("rule") for key in ["m:k", "m:j"]} for name, c in clusters.items()}
        check("the audit has manual on the resolving cluster, overwrite on the other",
              rules == {"c1": {"m:k": "manual", "m:j": "overwrite"}, "c2": {"m:k": "overwrite", "m:j": "manual"}},
              f"{rules}")
        audit = client.execute_command("AEGIS.AUDIT", "m:k", "1")
        check("AEGIS.AUDIT shows it over RESP", bool(audit) and audit[0][3] == b"manual", f"{audit}")
        shown = cli(c1, "audit", "--key", "m:x", "--limit", "1")
        check("aegis aa audit shows it", shown.returncode == 0 and "rule manual" in shown.stdout, shown.stdout + shown.stderr)
        listed_cli = cli(c2, "conflicts")
        check("aegis aa conflicts lists none", listed_cli.stdout.strip() == "no open conflicts", listed_cli.stdout)
        table = cli(c2, "strategies")
        check("aegis aa strategies shows the table", "m:=manual" in table.stdout and "p:=priority:c2,c1" in table.stdout,
              table.stdout + table.stderr)
        changed = cli(c1, "strategies", "--set", "m:=manual", "--set", "v:=vector-clock", "--max-conflicts", "50")
        now = quiet(lambda: get(c1, "/v1/aa/strategies")) or {}
        check("aegis aa strategies --set replaces the table through the log (PUT /v1/aa/strategies)",
              changed.returncode == 0 and now.get("rules") == ["m:=manual", "v:=vector-clock"]
              and now.get("maxConflicts") == 50, f"{now} {changed.stderr}")
        refused = cli(c1, "strategies", "--set", "x:=custom:nope")
        check("an unregistered merge function is refused with its name", refused.returncode != 0 and "nope" in refused.stderr,
              refused.stderr)
    finally:
        stop_clusters(clusters, work, results.failed == 0)
    print(f"aa_conflict_test: {results.passed} passed, {results.failed} failed in {time.time() - started:.1f} s")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
