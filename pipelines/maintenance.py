"""Maintenance with a retention policy: which commits are pinned, then compact, index and prune.

    from llmfti.pipelines.maintenance import maintain, protected_commits
    reports = maintain(home, ["docs:1"], keep_within="7d")          # llmfti fg maintain docs:1 --keep-within 7d
    protected_commits(home, FeatureStore(home).feature_group("docs:1"))   # {3: ["deployment docs-qa:2"], ...}

The store prunes only the versions it is told it may (`llmfti.store.maintenance`); this pipeline
decides which it may not, because that needs the registry as well as the store. A commit of a
feature group is protected when any of these names it:

- a tag of the feature group (Lance keeps tagged versions too);
- a deployment version, active or not (so every rollback target): its pinned `commit`, and the
  `resolved_commit` it was checked against;
- an eval record (`EvalRecord.commit`): under `commit: latest` the service serves the newest commit
  with a passing eval, so these are the commits a `latest` deployment served or may serve;
- a training dataset's lineage: its records and contexts commits, and the documents commit the
  records were synthesised from;
- being younger than the retention window (measured from when it stopped being the latest).

System tables (ingest runs, quarantine, deployment events, the maintenance log itself...) are
compacted and pruned with the same window; nothing pins their old versions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from llmfti.logs import get_logger
from llmfti.store.maintenance import DEFAULT_KEEP_WITHIN, MaintenanceReport, RetentionPolicy, maintain_table, parse_duration
from llmfti.store.names import parse_ref

logger = get_logger(__name__)
# Feature-group tables compact towards Lance's default fragment size; system tables are small.
SYSTEM_TARGET_ROWS = 256 * 1024


def _matches(ref: str | None, fg) -> bool:
    """Whether a recorded feature-group reference names `fg` ('docs' without a version matches every
    version of docs: protecting too much is safe, too little is not)."""
    if not ref:
        return False
    try:
        name, version = parse_ref(str(ref))
    except Exception:
        return False
    return name == fg.name and (version is None or version == fg.version)


def _commit_number(fg, value, tags: dict[str, int]) -> int | None:
    if value is None or str(value) in ("latest", "None", ""):
        return None
    value = str(value)
    if value.isdigit():
        return int(value)
    return tags.get(value)  # a tag pin: protected as a tag anyway


def protected_commits(home, fg) -> dict[int, list[str]]:
    """commit -> why it must be kept, from tags, deployments, eval records and training datasets."""
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.registry.evals import EvalStore

    out: dict[int, list[str]] = {}

    def add(commit, why: str) -> None:
        if commit is not None:
            out.setdefault(int(commit), []).append(why)

    tags = fg.tags() if fg.has_data() else {}
    for name, commit in tags.items():
        add(commit, f"tag {name}")
    deployments = DeploymentStore(home)
    for record in deployments.deployments.rows() if deployments.deployments.exists() else []:
        checks = record.checks or {}
        if not (_matches(checks.get("feature_group"), fg) or _matches(record.feature_group, fg)):
            continue
        add(_commit_number(fg, record.commit, tags), f"deployment {record.key} (pinned commit)")
        add(_commit_number(fg, checks.get("resolved_commit"), tags), f"deployment {record.key} (checked at this commit)")
    evals = EvalStore(home)
    for row in evals.table.rows() if evals.table.exists() else []:
        result = row.result or {}
        if _matches(result.get("feature_group"), fg):
            add(_commit_number(fg, result.get("commit"), tags), f"eval {result.get('suite')} of {row.key}")
    for ds in fg.store.training_datasets.list():
        lin = ds.lineage
        for role in ("records", "contexts"):
            src = lin.get(role) or {}
            if _matches(src.get("feature_group"), fg):
                add(src.get("commit"), f"training dataset {ds.ref} ({role})")
        docs = ((lin.get("records_lineage") or {}).get("documents")) or {}
        if _matches(docs.get("feature_group"), fg):
            add(docs.get("commit"), f"training dataset {ds.ref} (records synthesised from it)")
    return out


def maintain(home, refs: list[str] | None = None, *, keep_within: str | timedelta = DEFAULT_KEEP_WITHIN, dry_run: bool = False,
             do_compact: bool = True, system_tables: bool | None = None, now: datetime | None = None, progress=None) -> list[MaintenanceReport]:
    """Maintain the named feature groups (every version of every group when `refs` is empty), and
    the store's system tables when `system_tables` (default: when no refs are given). `progress(label)`
    is called before each table."""
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import LOG_TABLE, LOG_TARGET_ROWS
    from llmfti.store.maintenance import MaintenanceLog

    store = FeatureStore(home)
    window = parse_duration(keep_within)
    now = now or datetime.now(timezone.utc)
    groups = [store.feature_group(r) for r in refs] if refs else [store.feature_group(g["name"], g["version"]) for g in store.list_groups()]
    reports = []
    for fg in groups:
        if not fg.has_data():
            continue
        if progress:
            progress(fg.key)
        policy = RetentionPolicy(keep_within=window, protected=protected_commits(store.home, fg))
        reports.append(fg.maintain(policy, dry_run=dry_run, do_compact=do_compact, now=now))
    if system_tables if system_tables is not None else not refs:
        log = MaintenanceLog(store.home, db=store.db)
        for name in _system_tables(store):
            if progress:
                progress(name)
            tbl = store.db.open_table(name)
            target = LOG_TARGET_ROWS if name == LOG_TABLE else SYSTEM_TARGET_ROWS
            reports.append(maintain_table(tbl, name, RetentionPolicy(keep_within=window), now=now, target_rows=target,
                                          do_compact=do_compact, dry_run=dry_run, log=log))
    return reports


def _system_tables(store) -> list[str]:
    """The store's own tables (names starting with '_'), the maintenance log last so it records the others first."""
    from llmfti.store.maintenance import MAINTENANCE
    from llmfti.tables import table_names

    names = sorted(n for n in table_names(store.db) if n.startswith("_") and n != MAINTENANCE)
    return names + ([MAINTENANCE] if MAINTENANCE in table_names(store.db) else [])
