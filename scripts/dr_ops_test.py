#!/usr/bin/env python3
"""DR operations against real processes: runbooks (`aegis dr run`), drills
(`aegis dr drill`) and the DR health checks, on a primary cluster and a standby
cluster (3 nodes each) on loopback.

1. A runbook whose redirect-clients check fails (the standby is not promoted yet) stops
   there: exit status 1 naming the step, the promote step after it skipped (the standby
   is still a standby), the `always` notify hook run with the results in AEGIS_* env
   vars. A runbook with an unknown field is refused before anything runs; --dry-run
   prints the plan of a runbook whose addresses do not answer.
2. A drill copies a standby member, promotes the copy on other ports, writes and reads
   through it, prints RTO and RPO as JSON, and records it in every node's history; the
   primary keeps taking writes, the standby stays a standby, neither sees the drill's
   keys. `/healthz/dr-drill` passes; after a drill that fails (its port is taken) it fails
   while /livez passes.
3. The whole primary is SIGKILLed: the standby's `dr` check fails (dead link) while
   /livez and /readyz pass.
4. The primary is restarted and a failover runbook runs end to end: check-lag, promote,
   fence-primary, redirect-clients (every old node answers -READONLY naming the new
   primary), verify-writes, notify.

    python3 scripts/dr_ops_test.py --aegis .build/release/aegis
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_procs import HOST, IDS, Cluster  # noqa: E402
from checks import check, results, wait_until  # noqa: E402
from dr_test import doc, leader_doc, probe as http_status  # noqa: E402 - the DR test's helpers

# Ports of their own (aegis_procs' defaults are 7311-, dr_test.py's +400/+500).
PRIMARY_OFFSET = 620
STANDBY_OFFSET = 720
DRILL_PORT = 10191      # the drill's copy: RESP, peer, admin on 10191-10193
BUSY_PORT = 10201       # taken by this test: a drill there must fail
LEASE = "2s"


def aegis(args, *argv, timeout=120):
    out = subprocess.run([args.aegis, *argv, "--no-tls", "--admin-token", args.token],
                         capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def write_runbook(work, name, body):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(body)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--keys", type=int, default=2000)
    args = ap.parse_args()
    args.aegis = os.path.abspath(args.aegis)
    started = time.time()
    work = tempfile.mkdtemp(prefix="aegis-drops-")
    os.makedirs(os.path.join(work, "east"))
    os.makedirs(os.path.join(work, "west"))
    primary = Cluster(args.aegis, os.path.join(work, "east"), port_offset=PRIMARY_OFFSET, cluster_id="east")
    standby = Cluster(args.aegis, os.path.join(work, "west"), port_offset=STANDBY_OFFSET, cluster_id="west")
    standby.token, standby.token_file = primary.token, primary.token_file
    args.token = primary.token
    primary.extra = ["--dr-peer", standby.admin_addresses()]
    standby.extra = ["--standby-of", primary.admin_addresses(), "--dr-lease", LEASE,
                     "--dr-peer", primary.admin_addresses()]
    p_admin, s_admin = primary.admin_addresses(), standby.admin_addresses()
    figures = {}
    busy = socket.socket()
    try:
        for n in IDS:
            primary.start(n)
            standby.start(n)
        check("both clusters elect a leader", primary.wait_leader() is not None and standby.wait_leader() is not None)
        check("the standby records its role", wait_until(
            lambda: all(doc(standby, n)["role"] == "standby" for n in IDS), 20))
        check("the primary takes writes", wait_until(lambda: primary.client("n1").set("hello", "1"), 20))
        # In chunks, each retried: on a loaded machine the write lease can lapse for a
        # moment (the primary then refuses writes until its standby asks again).
        def write_chunk(start):
            pipe = primary.client("n1").pipeline(transaction=False)
            for k in range(start, min(start + 100, args.keys)):
                pipe.set(f"k{k}", str(k))
            pipe.execute()
            return True
        check(f"the primary acknowledges {args.keys} writes",
              all(wait_until(lambda: write_chunk(start), 10) for start in range(0, args.keys, 100)))
        check(f"the standby applies {args.keys} keys", wait_until(
            lambda: standby.client("n2").get(f"k{args.keys - 1}") == str(args.keys - 1).encode(), 20))

        # 1. Runbooks that must not run, or stop.
        bad = write_runbook(work, "bad.yaml", f"name: bad\nprimary: {p_admin}\nstandby: {s_admin}\n"
                                              "steps:\n  - step: check-lag\n    max-entries: 10\n"
                                              "  - step: promote\n    forse: true\n")
        code, out, err = aegis(args, "dr", "run", bad)
        check("a runbook with an unknown field is refused, naming the step", code != 0
              and "step 2 (promote) (line 8): unknown field 'forse'" in err and "nothing was executed" in err, err.strip()[:300])
        code, out, err = aegis(args, "dr", "run", "--dry-run", write_runbook(
            work, "nowhere.yaml", "name: plan\nprimary: 127.0.0.1:9\nstandby: 127.0.0.1:9\nsteps:\n"
                                  "  - step: promote\n  - step: verify-writes\n"))
        check("--dry-run prints the plan without contacting anything",
              code == 0 and "1. promote [promote, timeout 30s]" in out and "2. verify-writes" in out, "" if code == 0 else out + err)
        notified = os.path.join(work, "notify-failed.env")
        stops = write_runbook(work, "stops.yaml", f"""name: stops-at-redirect
primary: {p_admin}
standby: {s_admin}
steps:
  - step: check-lag
    max-entries: 100000
    timeout: 10s
  - step: redirect-clients
    timeout: 1s
  - step: promote
    force: true
  - step: notify
    command: env | grep ^AEGIS_ > {notified}
    always: true
""")
        code, out, err = aegis(args, "dr", "run", stops, "--json")
        report = json.loads(out) if out.strip().startswith("{") else {}
        check("a runbook stops at the first failed check (exit 1, names the step and why)",
              code == 1 and report.get("ok") is False and report.get("failedStep") == 2
              and "redirect-clients" in (report.get("failure") or "") and "not promoted" in (report.get("failure") or ""),
              report.get("failure") or (out + err)[-600:])
        results_by_name = {s["name"]: s["result"] for s in report.get("steps", [])}
        check("... the steps after it are skipped, the always-notify runs",
              results_by_name == {"check-lag": "ok", "redirect-clients": "failed", "promote": "skipped", "notify": "ok"},
              json.dumps(results_by_name))
        check("... and the standby was not promoted", leader_doc(standby)["role"] == "standby")
        env = open(notified).read() if os.path.exists(notified) else ""
        check("the notify hook gets the results in AEGIS_* env vars",
              "AEGIS_RUNBOOK=stops-at-redirect" in env and "AEGIS_RUNBOOK_OK=false" in env
              and "AEGIS_STEP_1_RESULT=ok" in env and "AEGIS_STEP_2_RESULT=failed" in env
              and "AEGIS_RUNBOOK_FAILED_STEP=2 redirect-clients" in env, "" if "AEGIS_RUNBOOK_OK=false" in env else env[:400])

        # 2. Drills.
        t0 = time.monotonic()
        code, out, err = aegis(args, "dr", "drill", "--standby", s_admin, "--primary", p_admin,
                               "--standby-data-dir", standby.data("n2"), "--port", str(DRILL_PORT), "--keys", "50",
                               "--json")
        drill = json.loads(out) if out.strip().startswith("{") else {}
        figures["drill_seconds"] = round(time.monotonic() - t0, 3)
        check("aegis dr drill --json prints RTO and RPO", code == 0 and drill.get("ok") is True
              and drill.get("rtoSeconds", 0) > 0 and drill.get("rpoEntries") is not None
              and drill.get("rpoSeconds") is not None and drill.get("keys", 0) >= args.keys, "" if code == 0 else (out + err)[-800:])
        figures.update(drill_rto_s=drill.get("rtoSeconds"), drill_rpo_entries=drill.get("rpoEntries"),
                       drill_rpo_s=drill.get("rpoSeconds"), drill_phases_ms=drill.get("phasesMillis"))
        print(f"drill: RTO {drill.get('rtoSeconds')} s, RPO {drill.get('rpoEntries')} entries "
              f"(<= {drill.get('rpoSeconds')} s); phases {drill.get('phasesMillis')}")
        check("the drill harms nothing: the primary still takes writes, the standby is still a standby",
              primary.client("n1").set("after-drill", "1") and leader_doc(standby)["role"] == "standby"
              and http_status(primary, primary.leader() or "n1", "/primary") == 200)
        check("... the drill's keys are on neither cluster",
              primary.client("n1").get("aegis:drill:0") is None and standby.client("n1").get("aegis:drill:0") is None)
        check("... its copy is gone (port closed)", socket.socket().connect_ex((HOST, DRILL_PORT)) != 0)
        _, body = standby.admin("n3", "GET", "/v1/dr/drills")
        history = json.loads(body)
        check("the drill is in every node's history", len(history) == 1 and history[0]["ok"] is True
              and all(len(json.loads(c.admin(n, "GET", "/v1/dr/drills")[1])) == 1 for c in (primary, standby) for n in IDS))
        def post_drill(body):
            req = urllib.request.Request(f"http://{HOST}:{standby.admin_port('n1')}/v1/dr/drills", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {args.token}"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        bad = [b"not json", b'{"ok": true}', json.dumps({**history[0], "rtoSeconds": -1}).encode(),
               json.dumps({**history[0], "ok": False, "error": None}).encode(), b"x" * 9000]
        check("POST /v1/dr/drills refuses bad records (400, 413) and keeps the history as it was",
              [post_drill(b) for b in bad] == [400, 400, 400, 400, 413]
              and len(json.loads(standby.admin("n1", "GET", "/v1/dr/drills")[1])) == 1)
        check("/healthz/dr-drill passes after a successful drill",
              all(http_status(standby, n, "/healthz/dr-drill") == 200 for n in IDS))
        # A drill killed half-way leaves no copy running: the copy stops when its drill is gone.
        killed = subprocess.Popen([args.aegis, "dr", "drill", "--standby", s_admin, "--standby-data-dir", standby.data("n3"),
                                   "--port", str(DRILL_PORT), "--keys", "100000", "--work", os.path.join(work, "killed"),
                                   "--no-tls", "--admin-token", args.token],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        copy_up = wait_until(lambda: socket.socket().connect_ex((HOST, DRILL_PORT + 2)) == 0, 30)
        killed.kill()
        killed.wait()
        check("a drill killed while its copy runs: the copy stops by itself",
              copy_up and wait_until(lambda: socket.socket().connect_ex((HOST, DRILL_PORT + 2)) != 0, 15))
        busy.bind((HOST, BUSY_PORT))
        busy.listen(1)
        code, out, err = aegis(args, "dr", "drill", "--standby", s_admin, "--standby-data-dir", standby.data("n1"),
                               "--port", str(BUSY_PORT), "--json")
        failed = json.loads(out) if out.strip().startswith("{") else {}
        check("a drill whose copy cannot start fails (exit 1, the reason recorded)",
              code == 1 and failed.get("ok") is False and "in use" in (failed.get("error") or ""), failed.get("error") or (out + err)[-600:])
        check("/healthz/dr-drill fails (503) after a failed drill, /livez passes",
              all(http_status(standby, n, "/healthz/dr-drill") == 503 and http_status(standby, n, "/livez") == 200
                  for n in IDS))

        # 3. A dead DR link fails its check, not liveness or readiness.
        for n in IDS:
            primary.kill(n)
        sl = standby.leader() or "n1"
        dead = wait_until(lambda: http_status(standby, sl, "/healthz/dr") == 503, 15)
        check("the primary gone: the standby's dr check fails (503)", dead)
        check("... /livez and /readyz still pass", http_status(standby, sl, "/livez") == 200
              and http_status(standby, sl, "/readyz") == 200)

        # 4. The failover runbook, end to end.
        for n in IDS:
            primary.start(n)
        check("the old primary is back", primary.wait_leader() is not None)
        notified_ok = os.path.join(work, "notify-ok.env")
        failover = write_runbook(work, "failover.yaml", f"""name: east-to-west
primary: {p_admin}
standby: {s_admin}
defaults:
  timeout: 20s
steps:
  - step: check-lag
    max-entries: 100000
  - step: promote
  - step: fence-primary
  - step: redirect-clients
  - step: verify-writes
    key: runbook-probe
  - step: notify
    name: tell someone
    command: env | grep ^AEGIS_ > {notified_ok}
""")
        t0 = time.monotonic()
        code, out, err = aegis(args, "dr", "run", failover)
        figures["failover_runbook_seconds"] = round(time.monotonic() - t0, 3)
        print(out.strip())
        lines = [line for line in out.splitlines() if line.startswith("[")]
        check("the failover runbook runs every step, a log line each with its timing",
              code == 0 and len(lines) == 6 and all(": ok in " in line for line in lines)
              and "every step passed" in out, "" if code == 0 else err[-400:])
        check("... the standby is the primary, the old primary fenced",
              leader_doc(standby)["role"] == "primary" and (leader_doc(primary) or {}).get("role") == "fenced")
        check("... its verify write is readable on the new primary", standby.client("n2").get("runbook-probe") is not None)
        try:
            primary.client("n1").set("nope", "1")
            refused = ""
        except Exception as e:  # noqa: BLE001
            refused = str(e)
        check("... the old side refuses writes naming the new primary",
              "read only replica" in refused and f"{HOST}:{standby.resp_port('n1')}" in refused, refused[:200])
        env = open(notified_ok).read() if os.path.exists(notified_ok) else ""
        check("... the notify hook saw every step ok", "AEGIS_RUNBOOK_OK=true" in env and "AEGIS_STEP_5_RESULT=ok" in env)
    finally:
        busy.close()
        # A drill copy left running (only if a check above failed): found by this run's own
        # scratch path in its command line.
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if os.path.join(work, "killed").encode() in f.read():
                        os.kill(int(pid), 9)
            except OSError:
                pass
        primary.stop_all()
        standby.stop_all()
        if not results.failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    print(json.dumps({"seconds": round(time.time() - started, 1), **figures}))
    print(f"{results.passed} passed, {results.failed} failed")
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
