"""Which feature-group commit a deployment serves.

A pinned commit (a number or a tag) is served as is. Under `commit: latest`, a new commit is served
only once it has been evaluated: the newest commit whose tuple (the deployment's settings at that
commit) has a passing eval of every gate suite recorded at promotion. Until then the last evaluated
commit keeps serving, so the eval gate covers what users get. Qualify a new commit with
`llmfti eval SUITE --deployment NAME` (it evaluates the latest commit), or let the ingest job run it.

Deployments recorded through the ungated primitive (`DeploymentStore.deploy` without `promote`, as
some tests and benchmarks do) follow the latest commit, and their log rows say it was not evaluated.
"""

from __future__ import annotations

import threading
import time

# How many commits back from the latest are looked at for one with a passing eval (index builds and
# small ingests add commits quickly; an eval older than this many commits is not worth serving).
MAX_LOOKBACK = 64


class CommitPolicy:
    def __init__(self, home, record, config, tables, *, recheck_s: float = 5.0, clock=time.monotonic):
        from llmfti.home import ProjectHome

        self.home, self.config, self.tables = ProjectHome.at(home), config, tables
        self.recheck_s, self.clock = recheck_s, clock
        checks = dict(record.get("checks") or {})
        pinned = record.get("commit")
        self.pinned = int(pinned) if pinned not in (None, "latest") else None
        self.gated = "tuple_key" in checks  # went through promote(): the gate applies to new commits too
        self.gates = [(g["suite"], g.get("suite_version")) for g in checks.get("gate") or []]
        if not self.gates and checks.get("eval"):  # recorded before gates were listed: the suite that qualified it
            self.gates = [(checks["eval"]["suite"], checks["eval"].get("suite_version"))]
        resolved = checks.get("resolved_commit")
        self.base = int(resolved) if resolved not in (None, "None") else None
        self.base_evaluated = bool(checks.get("eval")) and not record.get("forced")
        self.served = self.base
        self._known: dict[int, bool] = {}
        self._checked: dict[int, float] = {}
        self._lock = threading.Lock()

    def choose(self) -> tuple[int, bool]:
        """(the commit this request reads, whether a passing eval of the gate suites covers it)."""
        if self.pinned is not None:
            return self.pinned, self.base_evaluated
        latest = self.tables.latest_commit()
        if not self.gated:
            return latest, False
        with self._lock:
            if self.served is None:  # a gated record without a resolved commit: nothing is known to be evaluated
                self.served = latest
            if latest > self.served:
                for commit in range(latest, max(self.served, latest - MAX_LOOKBACK), -1):
                    if self._evaluated(commit):
                        self.served = commit
                        break
            served = self.served
        return served, (self.base_evaluated if served == self.base else True)

    def _evaluated(self, commit: int) -> bool:
        if self._known.get(commit):
            return True
        now = self.clock()
        if commit in self._checked and now - self._checked[commit] < self.recheck_s:
            return False
        self._checked[commit] = now
        ok = bool(self.gates) and all(self._passes(commit, suite, version) for suite, version in self.gates)
        if ok:
            self._known[commit] = True
        return ok

    def _passes(self, commit: int, suite: str, version: str | None) -> bool:
        from llmfti.registry.deployments import find_passing_eval, tuple_key

        found, _ = find_passing_eval(self.home, tuple_key(self.config, commit), self.config.model, suite, version)
        return found is not None
