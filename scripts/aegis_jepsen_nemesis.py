"""aegis-jepsen: the nemesis (kill, pause, partition, member, transfer)."""

import shutil
import time

from aegis_jepsen_cluster import log, now_ns


# MARK: nemesis


class Nemesis:
    def __init__(self, cluster, partitions, kinds, rng, recorder, stop, interval, hold):
        self.cluster, self.partitions, self.kinds, self.rng = cluster, partitions, kinds, rng
        self.recorder, self.stop = recorder, stop
        self.interval, self.hold = interval, hold
        self.injected = {k: 0 for k in kinds}
        self.errors = []

    def note(self, kind, what):
        self.injected[kind] += 1
        log(f"nemesis {kind}: {what}")
        self.recorder.event({"type": "nemesis", "f": kind, "value": what, "time": now_ns()})

    def pick_target(self, candidates):
        leader = self.cluster.leader()
        if leader in candidates and self.rng.random() < 0.5:
            return leader
        return self.rng.choice(candidates)

    def sleep(self, seconds):
        self.stop.wait(seconds)

    def run(self):
        if not self.kinds:
            return
        while not self.stop.is_set():
            self.sleep(self.rng.uniform(self.interval / 2, self.interval * 1.5))
            if self.stop.is_set():
                break
            # Alone or mixed: one fault, or two at once (membership changes run alone).
            first = self.rng.choice(self.kinds)
            batch = [first]
            others = [k for k in self.kinds if k != first and k != "member"]
            if first != "member" and others and self.rng.random() < 0.3:
                batch.append(self.rng.choice(others))
            try:
                self.inject(batch)
            except Exception as e:  # keep the run going; the heal phase repairs
                self.errors.append(f"{batch}: {e!r}")
                log(f"nemesis error {batch}: {e!r}")

    def inject(self, batch):
        hold = self.rng.uniform(*self.hold)
        heals = []
        used = set()
        for kind in batch:
            if kind == "member":
                self.member_change()
                continue
            heal = getattr(self, "start_" + kind)(used)
            if heal:
                heals.append(heal)
        if heals:
            self.sleep(hold)
            for heal in heals:
                heal()

    def start_kill(self, used):
        candidates = [n for n in self.cluster.nodes if n.proc is not None and n.id not in used]
        if not candidates:
            return None
        node = self.pick_target(candidates)
        used.add(node.id)
        self.cluster.kill(node)
        self.note("kill", node.id)

        def heal():
            self.cluster.start(node)
            log(f"  restarted {node.id}")
        return heal

    def start_pause(self, used):
        candidates = [n for n in self.cluster.running() if n.id not in used]
        if not candidates:
            return None
        node = self.pick_target(candidates)
        used.add(node.id)
        self.cluster.pause(node)
        self.note("pause", node.id)

        def heal():
            self.cluster.resume(node)
            log(f"  resumed {node.id}")
        return heal

    def start_partition(self, used):
        if self.partitions.mode != "iptables":
            return None
        nodes = list(self.cluster.nodes)
        leader = self.cluster.leader()
        r = self.rng.random()
        if r < 0.4 and leader is not None:
            minority = [leader]  # isolate the leader
        elif r < 0.7:
            minority = [self.rng.choice(nodes)]
        else:
            self.rng.shuffle(nodes)
            minority = nodes[: (len(nodes) - 1) // 2]
        majority = [n for n in self.cluster.nodes if n not in minority]
        if self.rng.random() < 0.2 and len(majority) >= 2:
            # A bridge: the minority node still reaches one majority node.
            bridge = self.rng.choice(majority)
            majority = [n for n in majority if n is not bridge]
        self.partitions.cut_links(minority, majority)
        self.note("partition", f"{[n.id for n in minority]} | {[n.id for n in majority]}")

        def heal():
            self.partitions.heal()
            log("  partition healed")
        return heal

    def start_transfer(self, used):
        leader = self.cluster.leader()
        if leader is None:
            return None
        followers = [n for n in self.cluster.running() if n is not leader]
        body = {"target": self.rng.choice(followers).id} if followers and self.rng.random() < 0.5 else None
        try:
            code, _ = self.cluster.admin_call(leader, "POST", "/v1/cluster/transfer-leader", body, timeout=5)
        except OSError as e:
            code = f"error ({e})"[:60]
        self.note("transfer", f"from {leader.id} to {body['target'] if body else 'any'}: {code}")
        return None

    def member_change(self):
        """Removes a follower, wipes it, re-adds it as a learner and promotes it."""
        leader = self.cluster.wait_for_leader(5)
        if leader is None:
            return
        candidates = [n for n in self.cluster.running() if n is not leader]
        if not candidates:
            return
        node = self.rng.choice(candidates)
        removed = False
        for _ in range(10):
            leader = self.cluster.wait_for_leader(5) or leader
            try:
                code, doc = self.cluster.admin_call(leader, "DELETE", f"/v1/cluster/members/{node.id}", timeout=6)
            except OSError:
                code = None
            if code is not None and 200 <= code < 300:
                removed = True
                break
            doc = self.cluster.status(leader)
            if doc and node.id not in [m["id"] for m in doc.get("members", [])]:
                removed = True
                break
            time.sleep(0.5)
        if not removed:
            self.errors.append(f"member: could not remove {node.id}")
            return
        self.note("member", f"removed {node.id}")
        self.sleep(self.rng.uniform(*self.hold))
        self.cluster.kill(node)
        shutil.rmtree(node.data_dir, ignore_errors=True)
        node.joined = True
        self.cluster.start(node)
        added = False
        deadline = time.time() + 30
        while time.time() < deadline and not added:
            leader = self.cluster.wait_for_leader(5)
            if leader is None:
                continue
            try:
                code, doc = self.cluster.admin_call(leader, "POST", "/v1/cluster/members",
                                                    {"id": node.id, "peerAddress": node.peer,
                                                     "clientAddress": node.client, "learner": True}, timeout=6)
            except OSError:
                code = None
            doc = self.cluster.status(leader)
            if (code is not None and 200 <= code < 300) or (doc and node.id in [m["id"] for m in doc.get("members", [])]):
                added = True
            else:
                time.sleep(0.5)
        if not added:
            self.errors.append(f"member: could not re-add {node.id}")
            return
        # Promote once the learner caught up (lag small), bounded.
        deadline = time.time() + 30
        while time.time() < deadline:
            leader = self.cluster.wait_for_leader(5)
            doc = self.cluster.status(leader) if leader else None
            member = next((m for m in (doc or {}).get("members", []) if m["id"] == node.id), None)
            if member is not None and member.get("role") != "learner":
                break
            if member is not None and (member.get("lag") is not None and member["lag"] <= 10):
                try:
                    code, _ = self.cluster.admin_call(leader, "POST", f"/v1/cluster/members/{node.id}/promote", timeout=6)
                except OSError:
                    code = None
                if code is not None and 200 <= code < 300:
                    break
            time.sleep(0.3)
        else:
            self.errors.append(f"member: could not promote {node.id}")
            return
        log(f"  re-added and promoted {node.id}")

    def ensure_members(self):
        """Heal phase: every node a voter again (finishes an interrupted member change)."""
        deadline = time.time() + 40
        while time.time() < deadline:
            leader = self.cluster.wait_for_leader(5)
            doc = self.cluster.status(leader) if leader else None
            if not doc:
                continue
            roles = {m["id"]: m.get("role") for m in doc.get("members", [])}
            missing = [n for n in self.cluster.nodes if n.id not in roles]
            learners = [n for n in self.cluster.nodes if roles.get(n.id) == "learner"]
            if not missing and not learners:
                return True
            for n in missing:
                self.cluster.admin_call(leader, "POST", "/v1/cluster/members",
                                        {"id": n.id, "peerAddress": n.peer, "clientAddress": n.client,
                                         "learner": True}, timeout=6)
            for n in learners:
                self.cluster.admin_call(leader, "POST", f"/v1/cluster/members/{n.id}/promote", timeout=6)
            time.sleep(0.5)
        return False
