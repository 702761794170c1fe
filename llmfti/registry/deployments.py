"""Deployments: versioned tuples of (model version, feature group version + commit policy, prompt
template, generation settings, request schema), with atomic deploy and rollback. Storage only: the
checks and the eval gate that decide what may be recorded are `llmfti.pipelines.deployment`.

- `_deployments`: one row per deployment version (immutable), its config and what was verified.
- `_deployment_events`: append-only deploy/rollback/stage events; the newest deploy or rollback event
  of a name says which version is active, so a switch is one atomic append and the whole tuple moves
  together. A `stage` event records a version that is never active: it exists to be evaluated.
  "Newest" is by `seq`, a per-name sequence number claimed atomically before the append (a folder
  `artifacts/deployments/NAME/events/SEQ`, created by mkdir or, on an object-store home, by a
  conditional put), never by the `at` timestamp: replicas on several hosts deploy and roll back
  against one home, and their clocks disagree. (A LanceDB merge-insert on a unique key does not
  serialize concurrent writers: two processes can both insert the same key.) Events written before
  `seq` existed have none and order by `at`, before every sequenced event.
Each version's config is also written to `artifacts/deployments/NAME/VERSION/deployment.json`.

Rows are typed (`DeploymentRecord`, `DeploymentEvent`); a record also reads like a mapping
(`record["version"]`) for callers that render it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from llmfti.config.deployments import DeploymentConfig
from llmfti.errors import ConfigError, NotFoundError
from llmfti.home import ProjectHome
from llmfti.tables import TS, Record, SystemTable, sql_quote

DEPLOYMENTS, EVENTS = "_deployments", "_deployment_events"
ACTIVATING = ("deploy", "rollback")  # events that change the active version; "stage" does not
SCHEMAS = {
    DEPLOYMENTS: pa.schema([
        pa.field("key", pa.string(), nullable=False), pa.field("name", pa.string()), pa.field("version", pa.int32()),
        pa.field("config", pa.string()), pa.field("model", pa.string()), pa.field("feature_group", pa.string()),
        pa.field("commit", pa.string()), pa.field("checks", pa.string()), pa.field("forced", pa.bool_()),
        pa.field("reason", pa.string()), pa.field("created_at", TS),
    ]),
    EVENTS: pa.schema([
        pa.field("name", pa.string()), pa.field("action", pa.string()), pa.field("version", pa.int32()),
        pa.field("reason", pa.string()), pa.field("at", TS), pa.field("seq", pa.int64()),
    ]),
}


class DeploymentRecord(Record):
    """One deployment version: its config, the tuple it pins and what was verified when it was recorded."""

    JSON_FIELDS: ClassVar = ("config", "checks")
    key: str
    name: str
    version: int
    config: dict[str, Any]
    model: str
    feature_group: str | None = None
    commit: str = "latest"  # the pinned commit, or "latest"
    checks: dict[str, Any] = {}
    forced: bool = False
    reason: str = ""
    created_at: datetime

    def __getitem__(self, key: str):
        return getattr(self, key)

    def get(self, key: str, default=None):
        return getattr(self, key, default)

    @property
    def deployment_config(self) -> DeploymentConfig:
        return DeploymentConfig.model_validate(self.config)


class DeploymentEvent(Record):
    name: str
    action: str  # deploy | rollback | stage
    version: int
    reason: str = ""
    at: datetime
    seq: int | None = None  # per-name order of events (None: written before sequences existed)

    def order(self) -> tuple:
        """Sort key: legacy events by time first, then sequenced events by sequence."""
        return (self.seq is not None, self.seq or 0, self.at)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class DeploymentStore:
    def __init__(self, home=None, *, clock=_utcnow):
        self.home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
        self.deployments = SystemTable(self.home, DEPLOYMENTS, SCHEMAS[DEPLOYMENTS], DeploymentRecord)
        self.events = SystemTable(self.home, EVENTS, SCHEMAS[EVENTS], DeploymentEvent, db=None)
        self.clock = clock  # only for the `at` and `created_at` columns: activation follows `seq`

    def _claim_version(self, name: str) -> tuple[int, Path]:
        return self.home.claim_version_dir(self.home.artifacts / "deployments" / name)  # atomic across processes and hosts

    def _next_seq(self, name: str) -> int:
        """The next event sequence number of `name`, claimed atomically (see the module doc)."""
        known = [e.seq for e in self.events.rows(f"name = {sql_quote(name)}") if e.seq is not None] if self.events.exists() else []
        seq, _ = self.home.claim_version_dir(self.home.artifacts / "deployments" / name / "events", known)
        return seq

    def _event(self, name: str, action: str, version: int, reason: str = "") -> None:
        seq = self._next_seq(name)
        self.events.add(DeploymentEvent(name=name, action=action, version=version, reason=reason, at=self.clock(), seq=seq))

    def deploy(self, config: DeploymentConfig, *, checks: dict, force: bool = False, reason: str = "", stage: bool = False) -> DeploymentRecord:
        """Record a new version and activate it (or, with `stage`, only record it for evaluation).
        This is the ungated primitive: `llmfti.pipelines.deployment.promote` is the gated path that
        `llmfti deploy` takes."""
        version, folder = self._claim_version(config.name)
        record = DeploymentRecord(
            key=f"{config.name}:{version}", name=config.name, version=version, config=config.model_dump(mode="json"),
            model=config.model, feature_group=config.feature_group, commit=str(checks["commit"]), checks=checks["checks"],
            forced=force, reason=reason, created_at=self.clock(),
        )
        (folder / "deployment.json").write_text(json.dumps(record.model_dump(mode="json"), indent=2, default=str))
        self.home.publish(folder / "deployment.json")
        self.deployments.add(record)
        self._event(config.name, "stage" if stage else "deploy", version, reason)
        return self.get(config.name, version)

    def rollback(self, name: str, to: int | None = None, reason: str = "") -> DeploymentRecord:
        history = [h for h in self.history(name) if h["action"] in ACTIVATING]  # staged versions were never live
        if not history:
            raise NotFoundError(f"deployment {name!r} does not exist")
        active = self.active(name)["version"]
        if to is None:
            earlier = sorted({h["version"] for h in history if h["version"] < active})
            if not earlier:
                raise ConfigError(f"deployment {name!r} has no version before {active} to roll back to")
            to = earlier[-1]
        if to == active:
            raise ConfigError(f"deployment {name}:{to} is already active")
        self.get(name, to)
        if to not in {h["version"] for h in history}:  # rolling "back" to a staged version would skip the eval gate
            raise ConfigError(f"deployment {name}:{to} was never active; promote it with llmfti deploy")
        self._event(name, "rollback", to, reason)
        return self.get(name, to)

    def _events(self, name: str, actions: tuple[str, ...] = ACTIVATING) -> list[DeploymentEvent]:
        return sorted((e for e in self.events.rows(f"name = {sql_quote(name)}") if e.action in actions), key=DeploymentEvent.order)

    def get(self, name: str, version: int) -> DeploymentRecord:
        rows = self.deployments.rows(f"key = {sql_quote(f'{name}:{version}')}")
        if not rows:
            raise NotFoundError(f"deployment {name}:{version} does not exist")
        return rows[0]

    def active(self, name: str) -> DeploymentRecord:
        events = self._events(name)
        if not events:
            raise NotFoundError(f"deployment {name!r} does not exist", hint="llmfti deploy configs/deployments/NAME.yaml")
        return self.get(name, events[-1].version)

    def list_active(self) -> list[DeploymentRecord]:
        latest: dict[str, DeploymentEvent] = {}
        for e in sorted(self.events.rows(), key=DeploymentEvent.order):  # per name: the newest activating event
            if e.action in ACTIVATING:
                latest[e.name] = e
        return [self.get(n, e.version) for n, e in sorted(latest.items())]

    def staged(self, name: str, version: int | None = None) -> DeploymentRecord:
        """A staged version (the newest one by default), to be evaluated before promotion."""
        events = self._events(name, ("stage",))
        if version is not None:
            events = [e for e in events if e.version == version]
        if not events:
            raise NotFoundError(f"deployment {name!r} has no staged version" + (f" {version}" if version else ""),
                                hint="llmfti deploy configs/deployments/NAME.yaml --stage")
        return self.get(name, events[-1].version)

    def history(self, name: str) -> list[dict]:
        out = []
        for e in self._events(name, ACTIVATING + ("stage",)):
            d = self.get(name, e.version)
            out.append({"at": e.at, "seq": e.seq, "action": e.action, "version": e.version, "reason": e.reason,
                        "model": d.model, "feature_group": d.feature_group, "commit": d.commit})
        return out

    def events_marker(self) -> int:
        """Changes whenever a deploy or rollback is recorded (cheap to poll)."""
        try:
            return self.events.table().version if self.events.exists() else 0
        except (FileNotFoundError, ValueError):
            return 0


# -- the eval gate on promotion -----------------------------------------------------------------------

# The fields of a deployment config that decide its answers, listed explicitly: a config field that is
# not listed never changes the key, so adding a field with a default cannot revoke earlier evals. A
# field listed with ALWAYS always counts; one listed with a value (the default it had when it joined
# the list) counts only when a config sets something else, so listing a new output-changing field
# keeps the keys of configs that leave it alone. Never remove or reorder entries: extend the list.
ALWAYS = "<always>"
TUPLE_FIELDS: tuple[tuple[str, object], ...] = tuple((path, ALWAYS) for path in (
    "model", "feature_group", "prompt_template", "max_prompt_tokens", "retrieval.k", "retrieval.hybrid", "on_demand", "tools",
    "max_tool_rounds", "generation.max_new_tokens", "generation.temperature", "generation.top_p", "backend.kind", "backend.device",
    "backend.dtype", "backend.base_url", "backend.model", "request_schema",
)) + (
    ("backend.prompt_mode", None),  # openai: chat messages reach the model through the server's template
    ("backend.quantize", "none"),  # transformers: int8 decode weights
    ("backend.decode", "torch"),  # transformers: llama.cpp decodes from the GGUF's weights
)
TUPLE_KEY_FORMAT = "llmfti-tuple/2"  # bump only if the hashing below changes meaning


def _field(data: dict, path: str):
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def tuple_key(config: DeploymentConfig, commit) -> str:
    """Hash of what decides a deployment's answers (TUPLE_FIELDS), with the commit resolved (for a
    `latest` policy: the commit current now, so a new feature-group commit makes a new tuple).
    An eval of one deployment version qualifies any version with the same key."""
    from llmfti.hashing import sha256_json

    data = config.model_dump(mode="json")
    values = {path: _field(data, path) for path, joined_at in TUPLE_FIELDS if joined_at == ALWAYS or _field(data, path) != joined_at}
    return sha256_json({"format": TUPLE_KEY_FORMAT, "fields": values, "resolved_commit": None if commit is None else str(commit)})[:24]


def find_passing_eval(home: ProjectHome, key: str, model: str, suite: str | None = None, suite_version: str | None = None):
    """(the passing EvalRecord that qualifies tuple `key`, every eval of `key`). Per suite version,
    the newest result decides: a failing re-run revokes an earlier pass."""
    from llmfti.registry import ModelRegistry

    home = ProjectHome.at(home)  # callers pass a ProjectHome or a plain folder
    evals = ModelRegistry(home).evals(model, tuple_key=key)
    if suite is not None:
        evals = [e for e in evals if e.suite == suite and (suite_version is None or e.suite_version == suite_version)]
    newest = {}
    for e in evals:  # oldest first
        newest[(e.suite, e.suite_version)] = e
    passing = [e for e in newest.values() if e.passed]
    found = max(passing, key=lambda e: e.recorded_at) if passing else None
    if found is not None and found.artifact:
        home.fetch(home.root / found.artifact)  # its per-case results, made on another host of an object-store home
    return found, evals
