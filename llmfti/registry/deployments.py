"""Deployments: versioned tuples of (model version, feature group version + commit policy, prompt
template, generation settings, request schema), with atomic deploy and rollback.

- `_deployments`: one row per deployment version (immutable), its config and what was verified.
- `_deployment_events`: append-only deploy/rollback/stage events; the newest deploy or rollback event
  of a name says which version is active, so a switch is one atomic append and the whole tuple moves
  together. A `stage` event records a version that is never active: it exists to be evaluated.
Each version's config is also written to `artifacts/deployments/NAME/VERSION/deployment.json`.

Promotion is gated by evals (`promote`): a version becomes active only when the registry holds a
passing eval of the identical tuple (`tuple_key`: model, feature group, resolved commit, template,
retrieval and generation settings), unless forced with a recorded reason.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from llmfti.config.deployments import DeploymentConfig
from llmfti.errors import ConfigError, IncompatibleError, NotFoundError
from llmfti.home import ProjectHome, claim_version_dir
from llmfti.store.feature_store import sql_quote
from llmfti.store.schema import TS

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
        return claim_version_dir(self.home.artifacts / "deployments" / name)  # atomic across processes

    def _event(self, name: str, action: str, version: int, reason: str = "") -> None:
        row = {"name": name, "action": action, "version": version, "reason": reason, "at": datetime.now(timezone.utc)}
        self._table(EVENTS).add(pa.Table.from_pylist([row], schema=SCHEMAS[EVENTS]))

    def deploy(self, config: DeploymentConfig, *, checks: dict, force: bool = False, reason: str = "", stage: bool = False) -> dict:
        """Record a new version and activate it (or, with `stage`, only record it for evaluation).
        This is the ungated primitive: `promote` is the gated path that `llmfti deploy` takes."""
        version, folder = self._claim_version(config.name)
        row = {
            "key": f"{config.name}:{version}", "name": config.name, "version": version, "config": config.model_dump_json(),
            "model": config.model, "feature_group": config.feature_group, "commit": checks["commit"],
            "checks": json.dumps(checks["checks"]), "forced": force, "reason": reason, "created_at": datetime.now(timezone.utc),
        }
        (folder / "deployment.json").write_text(json.dumps({**row, "config": json.loads(row["config"]), "checks": checks["checks"]}, indent=2, default=str))
        self._table(DEPLOYMENTS).add(pa.Table.from_pylist([row], schema=SCHEMAS[DEPLOYMENTS]))
        self._event(config.name, "stage" if stage else "deploy", version, reason)
        return self.get(config.name, version)

    def rollback(self, name: str, to: int | None = None, reason: str = "") -> dict:
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

    def _events(self, name: str, actions: tuple[str, ...] = ACTIVATING) -> list[dict]:
        return sorted((e for e in self._rows(EVENTS, f"name = {sql_quote(name)}") if e["action"] in actions), key=lambda e: e["at"])

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
            if e["action"] in ACTIVATING:
                latest[e["name"]] = e
        return [self.get(n, e["version"]) for n, e in sorted(latest.items())]

    def staged(self, name: str, version: int | None = None) -> dict:
        """A staged version (the newest one by default), to be evaluated before promotion."""
        events = self._events(name, ("stage",))
        if version is not None:
            events = [e for e in events if e["version"] == version]
        if not events:
            raise NotFoundError(f"deployment {name!r} has no staged version" + (f" {version}" if version else ""),
                                hint="llmfti deploy configs/deployments/NAME.yaml --stage")
        return self.get(name, events[-1]["version"])

    def history(self, name: str) -> list[dict]:
        out = []
        for e in self._events(name, ACTIVATING + ("stage",)):
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


# -- the eval gate on promotion -----------------------------------------------------------------------

# What does not change a deployment's answers, and so does not make a new tuple.
_NOT_IN_TUPLE = {"name", "description", "log_prompt_text", "commit"}
_BACKEND_NOT_IN_TUPLE = {"max_batch_size", "batch_window_ms", "api_key_env"}


def tuple_key(config: DeploymentConfig, commit) -> str:
    """Hash of everything that decides a deployment's answers, with the commit resolved (for a
    `latest` policy: the commit current now, so a new feature-group commit makes a new tuple).
    An eval of one deployment version qualifies any version with the same key."""
    from llmfti.hashing import sha256_json

    data = config.model_dump(mode="json", exclude=_NOT_IN_TUPLE)
    data["backend"] = {k: v for k, v in data["backend"].items() if k not in _BACKEND_NOT_IN_TUPLE}
    data["resolved_commit"] = None if commit is None else str(commit)
    return sha256_json(data)[:24]


def resolved_commit(config: DeploymentConfig, checks: dict, home: ProjectHome) -> str | None:
    """The commit a deployment reads now: the pinned one, or the latest for a `latest` policy."""
    if not config.feature_group:
        return None
    if checks["commit"] != "latest":
        return str(checks["commit"])
    from llmfti.store import FeatureStore

    return str(FeatureStore(home).feature_group(config.feature_group).resolve_commit(None))


def find_passing_eval(home: ProjectHome, key: str, model: str, suite: str | None = None, suite_version: str | None = None) -> tuple[dict | None, list[dict]]:
    """(the passing eval that qualifies `key`, every eval of `key`). Per suite version, the newest
    result decides: a failing re-run revokes an earlier pass."""
    from llmfti.registry import ModelRegistry

    evals = [e for e in ModelRegistry(home).get(model).evals if e.get("tuple_key") == key]
    if suite is not None:
        evals = [e for e in evals if e.get("suite") == suite and (suite_version is None or e.get("suite_version") == suite_version)]
    newest: dict[tuple, dict] = {}
    for e in evals:  # oldest first
        newest[(e.get("suite"), e.get("suite_version"))] = e
    passing = [e for e in newest.values() if e.get("passed")]
    return (max(passing, key=lambda e: str(e["recorded_at"])) if passing else None), evals


def promote(store: DeploymentStore, config: DeploymentConfig, *, force: bool = False, reason: str = "", stage: bool = False,
            suite: str | None = None, suite_version: str | None = None) -> dict:
    """The gated deploy: check the tuple, then activate it only if a passing eval of the identical tuple
    exists (of `suite` at `suite_version` when given), or `force` with a `reason` (recorded). `stage`
    records a version for evaluation without activating it (no eval needed)."""
    if force and not reason.strip():
        raise ConfigError("--force needs --reason: a promotion without a passing eval must say why")
    checks = check_deployment(config, store.home)
    commit = resolved_commit(config, checks, store.home)
    key = tuple_key(config, commit)
    checks["checks"]["tuple_key"] = key
    checks["checks"]["resolved_commit"] = commit
    bypassed = False
    if not stage:
        found, tried = find_passing_eval(store.home, key, config.model, suite, suite_version)
        if found is not None:
            checks["checks"]["eval"] = {k: str(found[k]) if k == "recorded_at" else found.get(k) for k in ("suite", "suite_version", "deployment", "deployment_version", "recorded_at", "metrics")}
        elif force:
            bypassed = True
        else:
            what = f"suite {suite}" + (f"@{suite_version}" if suite_version else "") if suite else "any suite"
            seen = "; ".join(f"{e.get('suite')}@{e.get('suite_version')}: {'pass' if e.get('passed') else 'FAIL ' + ','.join(e.get('failing') or [])}" for e in tried[-3:])
            raise IncompatibleError(
                f"no passing eval ({what}) for {config.name}'s tuple: model {config.model}, feature group {config.feature_group} "
                f"@ commit {commit}, template/retrieval/generation settings (tuple {key})" + (f"; evals of this tuple: {seen}" if seen else ""),
                hint=f"llmfti deploy CONFIG --stage, then llmfti eval SUITE --deployment {config.name} --staged; or --force --reason '...'",
            )
    return store.deploy(config, checks=checks, force=bypassed, reason=reason, stage=stage)
