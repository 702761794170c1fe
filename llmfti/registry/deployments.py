"""Deployments: versioned tuples of (model version, feature group version + commit policy, prompt
template, generation settings, request schema), with atomic deploy and rollback.

- `_deployments`: one row per deployment version (immutable), its config and what was verified.
- `_deployment_events`: append-only deploy/rollback events; the newest event of a name says which
  version is active, so a switch is one atomic append and the whole tuple moves together.
Each version's config is also written to `artifacts/deployments/NAME/VERSION/deployment.json`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from llmfti.config.deployments import DeploymentConfig
from llmfti.errors import ConfigError, IncompatibleError, NotFoundError
from llmfti.home import ProjectHome
from llmfti.store.feature_store import sql_quote

DEPLOYMENTS, EVENTS = "_deployments", "_deployment_events"
TS = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    DEPLOYMENTS: pa.schema([
        pa.field("key", pa.string(), nullable=False), pa.field("name", pa.string()), pa.field("version", pa.int32()),
        pa.field("config", pa.string()), pa.field("model", pa.string()), pa.field("feature_group", pa.string()),
        pa.field("commit", pa.string()), pa.field("checks", pa.string()), pa.field("forced", pa.bool_()),
        pa.field("reason", pa.string()), pa.field("created_at", TS),
    ]),
    EVENTS: pa.schema([
        pa.field("name", pa.string()), pa.field("action", pa.string()), pa.field("version", pa.int32()),
        pa.field("reason", pa.string()), pa.field("at", TS),
    ]),
}


def check_deployment(config: DeploymentConfig, home: ProjectHome) -> dict:
    """Verify the tuple can work; raise with a message naming the mismatch. Returns what was verified."""
    from llmfti.models.embedders import load_embedder
    from llmfti.registry import ModelRegistry
    from llmfti.store import FeatureStore
    from llmfti.transforms.on_demand import get_on_demand

    registry = ModelRegistry(home)
    registry.check(config.model)  # artifact hashes and the stored encoder fingerprint
    encoder = registry.load_encoder(config.model, template=config.prompt_template, max_prompt_tokens=config.max_prompt_tokens)
    for name in config.on_demand:
        get_on_demand(name)
    missing = [f for f in encoder.template.features if f not in config.on_demand]
    if missing:
        raise ConfigError(f"prompt template {encoder.template.name!r} needs on-demand feature(s) {missing}: add them under on_demand")
    if config.tools:
        from agents.tools import get_tool

        for tool in config.tools:
            get_tool(tool)
    checks = {"encoder_fingerprint": encoder.fingerprint, "prompt_template": encoder.template.name}
    commit = "latest"
    if config.feature_group:
        fg = FeatureStore(home).feature_group(config.feature_group)
        embedder = load_embedder(fg.config.embedder, home)
        try:
            actual = embedder.fingerprint
        except Exception as exc:
            raise IncompatibleError(f"the embedder of {fg.key} ({fg.info['embedder_id']}) is not available: {exc}") from exc
        if actual != fg.info["embedder_fingerprint"]:
            raise IncompatibleError(
                f"embedder mismatch: {fg.key} was built with {fg.info['embedder_id']} fingerprint {fg.info['embedder_fingerprint'][:16]}, "
                f"but the embedder available here has fingerprint {actual[:16]}; queries would be embedded differently from the chunks"
            )
        if config.commit != "latest":
            commit = str(fg.resolve_commit(config.commit))
        else:
            fg.resolve_commit(None)  # the group must have data
        checks.update(feature_group=fg.key, embedder_fingerprint=actual, commit_requested=str(config.commit))
    return {"checks": checks, "commit": commit}


class DeploymentStore:
    def __init__(self, home=None):
        self.home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
        self._db = None

    def _table(self, name: str):
        if self._db is None:
            self._db = self.home.connect()
        return self._db.create_table(name, schema=SCHEMAS[name], exist_ok=True)

    def _rows(self, name: str, where: str | None = None) -> list[dict]:
        q = self._table(name).search()
        if where:
            q = q.where(where)
        return q.limit(None).to_list()

    def _claim_version(self, name: str) -> tuple[int, Path]:
        root = self.home.artifacts / "deployments" / name
        root.mkdir(parents=True, exist_ok=True)
        version = max([int(p.name) for p in root.iterdir() if p.name.isdigit()], default=0) + 1
        while True:
            try:
                (root / str(version)).mkdir()  # atomic: concurrent deploys get distinct versions
                return version, root / str(version)
            except FileExistsError:
                version += 1

    def _event(self, name: str, action: str, version: int, reason: str = "") -> None:
        row = {"name": name, "action": action, "version": version, "reason": reason, "at": datetime.now(timezone.utc)}
        self._table(EVENTS).add(pa.Table.from_pylist([row], schema=SCHEMAS[EVENTS]))

    def deploy(self, config: DeploymentConfig, *, checks: dict, force: bool = False, reason: str = "") -> dict:
        version, folder = self._claim_version(config.name)
        row = {
            "key": f"{config.name}:{version}", "name": config.name, "version": version, "config": config.model_dump_json(),
            "model": config.model, "feature_group": config.feature_group, "commit": checks["commit"],
            "checks": json.dumps(checks["checks"]), "forced": force, "reason": reason, "created_at": datetime.now(timezone.utc),
        }
        (folder / "deployment.json").write_text(json.dumps({**row, "config": json.loads(row["config"]), "checks": checks["checks"]}, indent=2, default=str))
        self._table(DEPLOYMENTS).add(pa.Table.from_pylist([row], schema=SCHEMAS[DEPLOYMENTS]))
        self._event(config.name, "deploy", version, reason)
        return self.get(config.name, version)

    def rollback(self, name: str, to: int | None = None, reason: str = "") -> dict:
        history = self.history(name)
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
        self._event(name, "rollback", to, reason)
        return self.get(name, to)

    def _events(self, name: str) -> list[dict]:
        return sorted(self._rows(EVENTS, f"name = {sql_quote(name)}"), key=lambda e: e["at"])

    def _decode(self, row: dict) -> dict:
        row = dict(row)
        row["config"] = json.loads(row["config"])
        row["checks"] = json.loads(row["checks"]) if row["checks"] else {}
        return row

    def get(self, name: str, version: int) -> dict:
        rows = self._rows(DEPLOYMENTS, f"key = {sql_quote(f'{name}:{version}')}")
        if not rows:
            raise NotFoundError(f"deployment {name}:{version} does not exist")
        return self._decode(rows[0])

    def active(self, name: str) -> dict:
        events = self._events(name)
        if not events:
            raise NotFoundError(f"deployment {name!r} does not exist", hint="llmfti deploy configs/deployments/NAME.yaml")
        return self.get(name, events[-1]["version"])

    def list_active(self) -> list[dict]:
        latest: dict[str, dict] = {}
        for e in sorted(self._rows(EVENTS), key=lambda e: e["at"]):
            latest[e["name"]] = e
        return [self.get(n, e["version"]) for n, e in sorted(latest.items())]

    def history(self, name: str) -> list[dict]:
        out = []
        for e in self._events(name):
            d = self.get(name, e["version"])
            out.append({"at": e["at"], "action": e["action"], "version": e["version"], "reason": e["reason"],
                        "model": d["model"], "feature_group": d["feature_group"], "commit": d["commit"]})
        return out

    def events_marker(self) -> int:
        """Changes whenever a deploy or rollback is recorded (cheap to poll)."""
        if self._db is None:
            self._db = self.home.connect()
        try:
            return self._db.open_table(EVENTS).version
        except (FileNotFoundError, ValueError):
            return 0
