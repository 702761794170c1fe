"""The deployment step of the inference side: (model version, feature group, settings) -> a checked,
gated deployment version in the registry (CLI: `llmfti deploy`).

    from llmfti.pipelines.deployment import promote
    record = promote(DeploymentStore(home), load_config(DeploymentConfig, "configs/deployments/python-docs.yaml"))

`check_deployment` refuses pairs that cannot work (model artifacts or encoder fingerprint changed,
embedder mismatch, unknown on-demand features, tools or filter columns, missing commits); `promote` activates a
tuple only when a passing eval of the identical tuple exists, or when forced with a recorded reason.
"""

from __future__ import annotations

from llmfti.config.deployments import DeploymentConfig
from llmfti.errors import ConfigError, IncompatibleError
from llmfti.home import ProjectHome
from llmfti.registry.deployments import DeploymentRecord, DeploymentStore, find_passing_eval, tuple_key


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
        from llmfti.tools import get_tool

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
        if config.retrieval.filters:
            _check_filter_columns(config, fg)
        checks.update(feature_group=fg.key, embedder_fingerprint=actual, commit_requested=str(config.commit))
    return {"checks": checks, "commit": commit}


def _check_filter_columns(config: DeploymentConfig, fg) -> None:
    """Refuse filters on columns the feature group does not have (or that a string cannot be compared
    with): otherwise the first client to use one gets the search engine's error, not an answer."""
    from llmfti.config.deployments import filterable_columns

    available = filterable_columns(fg.table().schema)
    unknown = sorted(set(config.retrieval.filters) - set(available))
    if unknown:
        raise ConfigError(
            f"retrieval.filters names column(s) {unknown} that feature group {fg.key} does not have as a string, "
            f"integer or boolean column; available: {', '.join(sorted(available))}"
        )


def resolved_commit(config: DeploymentConfig, checks: dict, home: ProjectHome) -> str | None:
    """The commit a deployment reads now: the pinned one, or the latest for a `latest` policy."""
    if not config.feature_group:
        return None
    if checks["commit"] != "latest":
        return str(checks["commit"])
    from llmfti.store import FeatureStore

    return str(FeatureStore(home).feature_group(config.feature_group).resolve_commit(None))


def promote(store: DeploymentStore, config: DeploymentConfig, *, force: bool = False, reason: str = "", stage: bool = False,
            suite: str | None = None, suite_version: str | None = None, suites_root=None) -> DeploymentRecord:
    """The gated deploy: check the tuple, then activate it only when, for every gate suite of the
    config (`gate_suites`, plus `suite` when given), a passing eval of the identical tuple exists at
    the suite's current version, and, when another version serves, each of those evals compared the
    tuple with it and found it not significantly worse (champion/challenger). `force` with a `reason`
    (recorded) bypasses the gate. `stage` records a version for evaluation without activating it."""
    if force and not reason.strip():
        raise ConfigError("--force needs --reason: a promotion without a passing eval must say why")
    checks = check_deployment(config, store.home)
    commit = resolved_commit(config, checks, store.home)
    key = tuple_key(config, commit)
    checks["checks"]["tuple_key"] = key
    checks["checks"]["resolved_commit"] = commit
    checks["checks"]["gate_suites"] = list(config.gate_suites)
    if stage:
        return store.deploy(config, checks=checks, stage=True, reason=reason)
    problems, evals, required = _gate(store, config, key, commit, suite, suite_version, suites_root)
    # What serving checks a new `latest` commit against (pipelines.inference.commits): these suite versions.
    checks["checks"]["gate"] = [{"suite": name, "suite_version": version} for name, version in required]
    if evals:
        checks["checks"]["eval"] = evals[0]
        checks["checks"]["evals"] = evals
    if problems and not force:
        raise IncompatibleError(
            f"{config.name} cannot be promoted: " + "; ".join(problems) + f" (model {config.model}, feature group {config.feature_group} "
            f"@ commit {commit}, tuple {key})",
            hint=f"llmfti deploy CONFIG --stage, then llmfti eval SUITE --deployment {config.name} --staged; or --force --reason '...'",
        )
    if problems:
        checks["checks"]["bypassed"] = problems
    return store.deploy(config, checks=checks, force=bool(problems), reason=reason)


def _gate(store: DeploymentStore, config: DeploymentConfig, key: str, commit, suite, suite_version, suites_root):
    """(what stands in the way of promotion, the qualifying evals found, the (suite, version) pairs required)."""
    from llmfti.errors import NotFoundError
    from llmfti.evaluation.suites import load_suite

    required = [(s.name, s.version) for s in (load_suite(n, suites_root) for n in config.gate_suites)]
    if suite is not None:
        required.append((suite, suite_version))
    if not required:
        return ["the deployment names no gate suites (gate_suites in its config)"], [], []
    try:
        champion = store.active(config.name)
    except NotFoundError:
        champion = None
    if champion is not None and champion["checks"].get("tuple_key") == key:
        champion = None  # re-deploying the serving tuple: nothing to compare with
    problems, found_evals = [], []
    for name, version in required:
        found, tried = find_passing_eval(store.home, key, config.model, name, version)
        if found is None:
            seen = "; ".join(f"{e.suite}@{e.suite_version}: {'pass' if e.passed else 'FAIL ' + ','.join(e.failing)}" for e in tried[-3:])
            problems.append(f"no passing eval of suite {name}" + (f"@{version}" if version else "") + (f" (evals of this tuple: {seen})" if seen else ""))
            continue
        comp = found.comparison
        if champion is not None and not (comp and comp.get("champion", {}).get("deployment_version") == champion["version"]):
            problems.append(f"the eval of suite {name} did not compare this tuple with the serving version {champion['version']}")
        elif champion is not None and not comp.get("passed"):
            problems.append(f"suite {name}: significantly worse than the serving version {champion['version']} on {', '.join(comp['worse_on'])}")
        found_evals.append({"suite": found.suite, "suite_version": found.suite_version, "deployment": found.deployment,
                            "deployment_version": found.deployment_version, "recorded_at": str(found.recorded_at), "metrics": found.metrics,
                            "comparison": comp})
    return problems, found_evals, required
