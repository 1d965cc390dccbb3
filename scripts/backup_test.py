#!/usr/bin/env python3
"""Backups and point-in-time recovery against real `aegis serve` processes (issue 16).

A three-node cluster (ports 7411-7413, 8411-8413, 9411-9413); node n2 archives its
committed log continuously into a repository (`--backup-repo`, 1 s). Writes 100k keys,
full backup, more writes, incremental, more writes, differential, more writes with
archiving only; then the whole cluster is killed and:
  - `aegis recover --latest` into a new directory, started as a new one-node cluster:
    every acknowledged key is there with its value (all were archived before the kill);
  - `--to-index` (a backup's end) and `--to-time` (between two phases) give exactly the
    state of the model at that point;
  - a flipped byte in a state file, a log file and a manifest is caught by
    `aegis backup verify` and by `aegis recover`'s preflight, naming the file, and
    the target directory is not created.
Prints one JSON line; exits 1 on any failure.
"""
import argparse
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, results, wait_until  # noqa: E402

IDS = ["n1", "n2", "n3"]
HOST = "127.0.0.1"
RESP = {n: 7411 + k for k, n in enumerate(IDS)}
PEER = {n: 9411 + k for k, n in enumerate(IDS)}
ADMIN = {n: 8411 + k for k, n in enumerate(IDS)}
RESTORED_RESP, RESTORED_PEER, RESTORED_ADMIN = 7421, 9421, 8421


class LocalStore:
    """The repository as a local directory."""

    def __init__(self, root):
        self.root = root
        self.url = root

    def keys(self, prefix):
        base = os.path.join(self.root, prefix)
        return sorted(os.path.relpath(p, self.root) for p in glob.glob(base + "**", recursive=True) if os.path.isfile(p))

    def get(self, key):
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()

    def put(self, key, data):
        with open(os.path.join(self.root, key), "wb") as f:
            f.write(data)


class S3Store:
    """The repository in moto_server on 127.0.0.1, read and written with boto3 (an independent client)."""

    def __init__(self, work):
        import boto3  # noqa: PLC0415
        self.port = 5411
        log = open(os.path.join(work, "moto.log"), "ab")
        self.proc = subprocess.Popen(["moto_server", "-H", HOST, "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.endpoint = f"http://{HOST}:{self.port}"
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
        if not wait_until(lambda: self.s3.list_buckets() is not None, 30):
            raise RuntimeError("moto_server did not start")
        self.s3.create_bucket(Bucket="aegis-backups")
        self.url = "s3://aegis-backups/bk"
        os.environ.update({"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"})

    def keys(self, prefix):
        out, token = [], None
        while True:
            kw = {"Bucket": "aegis-backups", "Prefix": "bk/" + prefix}
            if token:
                kw["ContinuationToken"] = token
            page = self.s3.list_objects_v2(**kw)
            out += [o["Key"][3:] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page["NextContinuationToken"]

    def get(self, key):
        return self.s3.get_object(Bucket="aegis-backups", Key="bk/" + key)["Body"].read()

    def put(self, key, data):
        self.s3.put_object(Bucket="aegis-backups", Key="bk/" + key, Body=data)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Cluster:
    def __init__(self, aegis, work, repo):
        self.aegis, self.work, self.repo = aegis, work, repo
        self.token = secrets.token_hex(16)
        self.token_file = os.path.join(work, "admin-token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        self.procs = {}

    def start(self, node):
        peers = ",".join(f"{n}={HOST}:{PEER[n]}/{HOST}:{RESP[n]}" for n in IDS)
        cmd = [self.aegis, "serve", "--id", node, "--data-dir", os.path.join(self.work, node), "--cluster-id", "bk",
               "--peer-listen", f"{HOST}:{PEER[node]}", "--client-listen", f"{HOST}:{RESP[node]}",
               "--admin-listen", f"{HOST}:{ADMIN[node]}", "--peers", peers, "--election-ticks", "30",
               "--admin-token-file", self.token_file, "--initial-cluster-state", "new"]
        if node == "n2":
            cmd += ["--backup-repo", self.repo, "--archive-interval", "1s", "--backup-max-age", "1h"]
        log = open(os.path.join(self.work, f"{node}.log"), "ab")
        self.procs[node] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        self.procs = {}

    def client(self, node):
        return redis.Redis(host=HOST, port=RESP[node], socket_timeout=10, socket_connect_timeout=1)

    def leader(self):
        for n in IDS:
            try:
                if self.client(n).info("replication").get("aegis_role") == "leader":
                    return n
            except Exception:
                pass
        return None

    def commit(self, node):
        return int(self.client(node).info("replication").get("commit_index", 0))


def write_phase(r, model, start, count, tag):
    """SETs key<i> for i in range(start, start+count) in pipelined batches; all acknowledged."""
    batch = 1000
    for base in range(start, start + count, batch):
        pipe = r.pipeline(transaction=False)
        for i in range(base, min(base + batch, start + count)):
            pipe.set(f"key{i}", f"{tag}-{i}")
        for i, ok in zip(range(base, min(base + batch, start + count)), pipe.execute()):
            if ok is True:
                model[f"key{i}"] = f"{tag}-{i}"
            else:
                raise RuntimeError(f"SET key{i} answered {ok}")


def run(aegis, args, check_rc=True):
    if args and args[0] in ("backup", "recover") and "--quiet" not in args:
        args = args + ["--quiet"]
    p = subprocess.run([aegis] + args, capture_output=True, text=True, timeout=600)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"aegis {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def caught_up(cl, member):
    leader = cl.leader()
    target = cl.commit(leader)
    return wait_until(lambda: cl.commit(member) >= target, 20)


def read_all(port, keys):
    r = redis.Redis(host=HOST, port=port, socket_timeout=30)
    found = {}
    keys = sorted(keys)
    for k in range(0, len(keys), 2000):
        chunk = keys[k:k + 2000]
        for key, value in zip(chunk, r.mget(chunk)):
            if value is not None:
                found[key] = value.decode()
    return found


def start_restored(aegis, work, directory, cluster_id):
    log = open(os.path.join(work, "restored.log"), "ab")
    cmd = [aegis, "serve", "--id", "node1", "--data-dir", directory, "--cluster-id", cluster_id,
           "--peer-listen", f"{HOST}:{RESTORED_PEER}", "--client-listen", f"{HOST}:{RESTORED_RESP}",
           "--admin-listen", f"{HOST}:{RESTORED_ADMIN}", "--election-ticks", "30"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    r = redis.Redis(host=HOST, port=RESTORED_RESP, socket_timeout=5, socket_connect_timeout=1)
    ok = wait_until(lambda: r.info("replication").get("aegis_role") == "leader", 30)
    return p, ok


def recover_and_compare(aegis, work, repo, name, target_args, expected, all_keys):
    directory = os.path.join(work, f"restored-{name}")
    p = run(aegis, ["recover", "--repo", repo, "--data-dir", directory, "--cluster-id", f"restored-{name}", "--json"]
            + target_args)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    proc, ok = start_restored(aegis, work, directory, f"restored-{name}")
    try:
        check(f"{name}: the restored directory starts with aegis serve and elects itself", ok)
        found = read_all(RESTORED_RESP, all_keys) if ok else {}
        missing = [k for k in expected if found.get(k) != expected[k]]
        extra = [k for k in found if k not in expected]
        check(f"{name}: exactly the model's state ({len(expected)} keys)", not missing and not extra,
              f"missing/wrong {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}")
        # A new identity: never the old cluster's UUID.
        with open(os.path.join(directory, "identity")) as f:
            identity = f.read()
        check(f"{name}: a new cluster UUID", report["clusterUUID"] in identity)
        if ok:
            w = redis.Redis(host=HOST, port=RESTORED_RESP, socket_timeout=5)
            check(f"{name}: the restored cluster takes writes", w.set("after-restore", "1") is True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return report


def corruption_checks(aegis, work, repo, store):
    """A flipped byte in every file of one kind (so whichever chain a restore picks reads one)."""
    backups = json.loads(run(aegis, ["backup", "list", "--repo", repo, "--json", "--quiet"]).stdout)["backups"]
    incr = next(b for b in backups if b["kind"] == "incremental")
    everything = store.keys("")
    victims = {
        "state file": [k for k in everything if "/state.akvs" in k],
        "log file": [k for k in everything if "/log-" in k],
        "manifest": [f"backups/{incr['id']}/manifest.json"],
    }
    for what, paths in victims.items():
        originals = {path: store.get(path) for path in paths}
        for path, original in originals.items():
            damaged = bytearray(original)
            damaged[len(damaged) // 2] ^= 0x5A
            store.put(path, bytes(damaged))
        names = [os.path.basename(p) for p in paths]
        try:
            v = run(aegis, ["backup", "verify", incr["id"], "--repo", repo, "--quiet"], check_rc=False)
            out = v.stdout + v.stderr
            check(f"verify catches a flipped byte in the {what}", v.returncode != 0 and any(n in out for n in names),
                  out.strip()[-300:])
            target = os.path.join(work, "never-written")
            r = run(aegis, ["recover", "--repo", repo, "--data-dir", target, "--latest", "--quiet"], check_rc=False)
            out = r.stdout + r.stderr
            check(f"recover's preflight refuses the {what}, naming it, writing nothing",
                  r.returncode != 0 and any(n in out for n in names) and not os.path.exists(target), out.strip()[-300:])
            shutil.rmtree(target, ignore_errors=True)
        finally:
            for path, original in originals.items():
                store.put(path, original)
    v = run(aegis, ["backup", "verify", "--repo", repo], check_rc=False)
    check("every backup verifies again once repaired", v.returncode == 0, v.stdout.strip()[-300:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=".build/release/aegis")
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--s3", action="store_true", help="the repository in moto_server on 127.0.0.1 (PyPI moto[server])")
    args = ap.parse_args()
    aegis = os.path.abspath(args.aegis)
    work = tempfile.mkdtemp(prefix="aegis-backup-")
    store = S3Store(work) if args.s3 else LocalStore(os.path.join(work, "repo"))
    repo = store.url
    cl = Cluster(aegis, work, repo)
    started = time.time()
    model, phases = {}, {}
    try:
        for n in IDS:
            cl.start(n)
        check("cluster elects a leader", wait_until(lambda: cl.leader() is not None, 30))
        r = cl.client(cl.leader())
        n = args.keys
        write_phase(r, model, 0, n, "p1")
        caught_up(cl, "n2")
        full = json.loads(run(aegis, ["backup", "create", "--kind", "full", "--data-dir", os.path.join(work, "n2"),
                                      "--repo", repo, "--json"]).stdout)
        check("full backup of the follower's data directory", full["keys"] == len(model), f"{full['keys']} keys, "
              f"{full['storedBytes']} bytes, {full['seconds']:.2f} s")
        write_phase(r, model, n // 2, n // 10, "p2")
        caught_up(cl, "n2")
        incr = json.loads(run(aegis, ["backup", "create", "--kind", "incremental", "--data-dir",
                                      os.path.join(work, "n2"), "--repo", repo, "--json"]).stdout)
        phases["incremental"] = (incr["endIndex"], dict(model))
        time.sleep(0.3)
        time_mark = int(time.time() * 1000)
        time.sleep(0.3)
        write_phase(r, model, n, n // 10, "p3")
        caught_up(cl, "n2")
        diff = json.loads(run(aegis, ["backup", "create", "--kind", "differential", "--data-dir",
                                      os.path.join(work, "n2"), "--repo", repo, "--json"]).stdout)
        # Its parent is the newest full: ours, or one the archiver took after a gap.
        fulls = {b["id"] for b in json.loads(run(aegis, ["backup", "list", "--repo", repo, "--json", "--quiet"]).stdout)["backups"]
                 if b["kind"] == "full"}
        check("differential's parent is the newest full backup", diff["parent"] == max(fulls), f"{diff['parent']} of {sorted(fulls)}")
        write_phase(r, model, 2 * n, n // 10, "p4")
        # Wait until the archiver (n2, 1 s) shipped everything committed, then kill all.
        leader_commit = cl.commit(cl.leader())
        archived = []

        def archived_through():
            req = urllib.request.Request(f"http://{HOST}:{ADMIN['n2']}/v1/backups/archive",
                                         headers={"Authorization": f"Bearer {cl.token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                status = json.loads(resp.read())
            archived.append(status)
            return status["archive"]["archived"]["index"] >= leader_commit
        check("continuous archiving reaches the leader's commit index", wait_until(archived_through, 30),
              json.dumps(archived[-1] if archived else None)[:300])
        with urllib.request.urlopen(f"http://{HOST}:{ADMIN['n2']}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        check("metrics: last backup time and archive lag", "aegis_backup_archive_lag_entries" in metrics
              and "aegis_backup_last_success_timestamp_seconds" in metrics)
        cl.kill_all()
        all_keys = set(model) | {f"key{i}" for i in range(0, 2 * n + n // 10)}
        latest = recover_and_compare(aegis, work, repo, "latest", ["--latest"], model, all_keys)
        check("latest: RTO and RPO reported", latest["rtoMillis"] >= 0 and latest["lastRecoverableIndex"] >= leader_commit,
              f"RTO {latest['rtoMillis']} ms, reached {latest['reachedIndex']}, RPO {latest.get('rpoMillis')} ms")
        index, expected = phases["incremental"]
        recover_and_compare(aegis, work, repo, "to-index", ["--to-index", str(index)], expected, all_keys)
        recover_and_compare(aegis, work, repo, "to-time", ["--to-time", str(time_mark)], expected, all_keys)
        if args.s3:
            # The objects as an independent client sees them; one decompressed by the zstd tool.
            keys = store.keys("")
            check("s3: backups and archive pieces are objects in the bucket",
                  any(k.startswith("backups/") for k in keys) and any(k.startswith("archive/") for k in keys),
                  f"{len(keys)} objects")
            state_key = [k for k in store.keys(f"backups/{full['id']}/") if "/state.akvs" in k][0]
            z = subprocess.run(["zstd", "-d", "-c"], input=store.get(state_key), capture_output=True)
            check("s3: a state object downloaded with boto3 decompresses with the zstd tool",
                  z.returncode == 0 and z.stdout[:4] == b"AKVS", f"{len(z.stdout)} bytes")
        corruption_checks(aegis, work, repo, store)
    except Exception as e:  # noqa: BLE001
        check("scenario ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        cl.kill_all()
        if args.s3:
            store.stop()
        if not args.keep and not results.failures:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"passed": results.passed, "failed": results.failed, "seconds": round(time.time() - started, 1),
                      "work": work if results.failures or args.keep else None}))
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
