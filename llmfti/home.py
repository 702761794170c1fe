"""The project home: one storage location holding the LanceDB database and the artifacts folder.

`LLMFTI_HOME` (default `./.llmfti`) selects it; the CLI's `--home` overrides both.
Layout::

    <home>/db/          LanceDB database (feature groups, metadata, quarantine, runs, ...)
    <home>/artifacts/   model folders, adapters, datasets' side files, reports
    <home>/cache/       copies of small tables, valid while the table is unchanged (llmfti.table_state);
                        safe to delete

A home may also be an object-store URI, `s3://bucket/prefix` (docs/scale-out.md). Then the database
is `s3://bucket/prefix/db` and the artifacts live under `s3://bucket/prefix/artifacts/`, while
`root` is a local cache folder of this host (`$LLMFTI_CACHE_DIR/homes/<hash>`, default
`~/.cache/llmfti/homes/<hash>`): code that writes an artifact writes it under `artifacts` as on a
local home and then calls `publish(path)`; code that reads one calls `fetch(path)` first (a no-op
when the cached copy exists: artifact folders are immutable once published). Version numbers are
claimed with a conditional put (`If-None-Match: *`), the object-store twin of the atomic mkdir.
On a local home `publish` and `fetch` do nothing and `claim_*` is an mkdir, exactly as before.

Storage options (endpoint, region, keys, allow_http) come from the AWS_* environment variables and
`LLMFTI_STORAGE_OPTIONS` (a JSON object, or the path of the home's YAML/JSON config file holding
one); `ProjectHome.at(uri, storage_options=...)` takes them explicitly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Iterable

DEFAULT_HOME = ".llmfti"
HOME_ENV = "LLMFTI_HOME"
CACHE_ENV = "LLMFTI_CACHE_DIR"  # object-store homes: where this host caches artifacts (and buffers)
BUFFER_ENV = "LLMFTI_BUFFER_DIR"  # local disk for the inference-log buffer (default <root>/buffers)
OPTIONS_ENV = "LLMFTI_STORAGE_OPTIONS"
CONSISTENCY_ENV = "LLMFTI_READ_CONSISTENCY_S"
REMOTE_SCHEMES = ("s3://",)  # artifacts are copied with boto3, so S3 (and S3-compatible stores) only
DEFAULT_REMOTE_CONSISTENCY_S = 5.0  # how stale a long-lived table handle may be on an object-store home
CLAIM_MARKER = ".llmfti-claim"  # the object whose conditional put claims a folder on an object store
# Environment variables read into storage options (Lance's names on the right).
_ENV_OPTIONS = (
    (("AWS_ENDPOINT_URL", "AWS_ENDPOINT"), "aws_endpoint"), (("AWS_REGION", "AWS_DEFAULT_REGION"), "aws_region"),
    (("AWS_ACCESS_KEY_ID",), "aws_access_key_id"), (("AWS_SECRET_ACCESS_KEY",), "aws_secret_access_key"),
    (("AWS_SESSION_TOKEN",), "aws_session_token"), (("AWS_ALLOW_HTTP",), "allow_http"),
)


def is_remote(location) -> bool:
    return isinstance(location, str) and location.startswith(REMOTE_SCHEMES)


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The explicit `home`, else `$LLMFTI_HOME`, else `./.llmfti` (a local folder)."""
    chosen = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().absolute()


def storage_options_from_env() -> dict[str, str]:
    """Object-store options: AWS_* variables, then `LLMFTI_STORAGE_OPTIONS` (JSON, or a config file path)."""
    opts: dict[str, str] = {}
    for names, key in _ENV_OPTIONS:
        value = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if value is not None:
            opts[key] = value
    raw = os.environ.get(OPTIONS_ENV, "").strip()
    if raw:
        from llmfti.errors import ConfigError

        try:
            if raw.startswith("{"):
                extra = json.loads(raw)
            else:
                import yaml

                extra = yaml.safe_load(Path(raw).expanduser().read_text(encoding="utf-8"))
                extra = extra.get("storage_options", extra) if isinstance(extra, dict) else extra
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{OPTIONS_ENV}: neither a JSON object nor a readable YAML/JSON file: {exc}") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"{OPTIONS_ENV} must hold a mapping of storage options")
        opts.update({str(k): str(v) for k, v in extra.items()})
    return opts


def _cache_root(uri: str) -> Path:
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llmfti").expanduser().absolute()
    return base / "homes" / hashlib.sha256(uri.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ProjectHome:
    """Paths of one project home; creating the folders is explicit (`ensure`). For an object-store
    home, `uri` is the bucket location and `root` this host's cache of it."""

    root: Path
    uri: str | None = None
    storage_options: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def at(cls, home=None, *, storage_options: dict | None = None) -> "ProjectHome":
        if isinstance(home, ProjectHome):
            return home
        chosen = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
        if isinstance(chosen, str) and "://" in chosen:
            if not is_remote(chosen):
                from llmfti.errors import ConfigError

                raise ConfigError(f"unsupported home {chosen!r}: a local folder or s3://bucket/prefix")
            uri = chosen.rstrip("/")
            opts = {**storage_options_from_env(), **(storage_options or {})}
            if opts.get("aws_endpoint", "").startswith("http://"):
                opts.setdefault("allow_http", "true")  # an http endpoint (a local MinIO or moto) needs it
            return cls(_cache_root(uri), uri, opts)
        return cls(resolve_home(chosen))

    # -- where things are ----------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return self.uri is not None

    @property
    def location(self) -> str:
        """What users named: the URI of an object-store home, else the folder."""
        return self.uri or str(self.root)

    @property
    def db_path(self) -> Path:
        return self.root / "db"

    @property
    def db_uri(self) -> str:
        return f"{self.uri}/db" if self.remote else str(self.db_path)

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def models_dir(self) -> Path:
        return self.artifacts / "models"

    @property
    def buffers_dir(self) -> Path:
        """Local disk for write-ahead buffers (the inference log): `$LLMFTI_BUFFER_DIR`, else <root>/buffers.
        Never the object store: an fsync there is neither cheap nor durable in the same way."""
        chosen = os.environ.get(BUFFER_ENV)
        return Path(chosen).expanduser().absolute() if chosen else self.root / "buffers"

    def ensure(self) -> "ProjectHome":
        if not self.remote:
            self.db_path.mkdir(parents=True, exist_ok=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self

    def connect(self, *, read_consistency_interval: timedelta | float | None = None):
        """Open the LanceDB database (imports lancedb lazily). On an object-store home, and wherever
        `LLMFTI_READ_CONSISTENCY_S` is set, table handles re-check for new commits at that interval, so
        a serving process sees commits other hosts make."""
        # Lance's Rust logger prints deprecation chatter for internal hybrid-search sub-queries (it reads
        # LANCEDB_LOG when lancedb is first imported); keep stderr for our own progress and errors unless
        # the user asked for Lance logs.
        os.environ.setdefault("LANCEDB_LOG", "error")
        os.environ.setdefault("LANCE_LOG", "error")
        import lancedb

        self.ensure()
        interval = read_consistency_interval
        if interval is None and os.environ.get(CONSISTENCY_ENV):
            interval = float(os.environ[CONSISTENCY_ENV])
        if interval is None and self.remote:
            interval = DEFAULT_REMOTE_CONSISTENCY_S
        kwargs = {}
        if interval is not None:
            kwargs["read_consistency_interval"] = interval if isinstance(interval, timedelta) else timedelta(seconds=float(interval))
        if self.remote:
            kwargs["storage_options"] = dict(self.storage_options)
        return lancedb.connect(self.db_uri, **kwargs)

    def has_table(self, name: str) -> bool:
        """Whether the database lists table `name`, answered without a LanceDB connection: on a local home
        its folder exists (what lancedb lists, before its first commit lands too), elsewhere its manifest."""
        if not self.remote:
            return (self.db_path / f"{name}.lance").is_dir()
        return self.dataset(name) is not None

    def dataset(self, name: str):
        """Table `name` of the database as a pylance dataset at its latest commit, or None when there is
        no such table: the same files `connect().open_table(name)` opens, read without a LanceDB
        connection. `import lancedb` costs ~1 s of every cold start on 2 cores (most of it the REST
        namespace client it loads), `import lance` ~0.4 s, so read-only work that may end without
        writing (a re-ingest that changes nothing) reads this way and connects only to write."""
        os.environ.setdefault("LANCE_LOG", "error")
        import lance

        if not self.remote and not (self.db_path / f"{name}.lance" / "_versions").is_dir():
            return None  # no manifest to read: not a table (lancedb lists the same folders)
        try:
            return lance.dataset(f"{self.db_uri}/{name}.lance", storage_options=dict(self.storage_options) or None)
        except (ValueError, OSError) as exc:
            if "not found" in str(exc).lower():
                return None
            raise

    # -- artifacts on an object store ------------------------------------------------------------------
    def _key(self, path: Path) -> tuple[str, str]:
        """(bucket, key) of a local cache path under `root`."""
        rel = Path(path).absolute().relative_to(self.root).as_posix()
        bucket, _, prefix = self.uri[len("s3://"):].partition("/")
        return bucket, "/".join(p for p in (prefix.strip("/"), rel) if p)

    def artifact_uri(self, path: Path) -> str:
        """Where an artifact lives for other hosts: its s3:// URI, or the local path."""
        if not self.remote:
            return str(path)
        bucket, key = self._key(path)
        return f"s3://{bucket}/{key}"

    def _s3(self):
        return _s3_client(tuple(sorted(self.storage_options.items())))

    def claim_dir(self, path: Path) -> bool:
        """Create folder `path` if nobody has: True for the one caller that created it. Atomic across
        processes and hosts (mkdir; on an object store a conditional put of a marker object)."""
        path = Path(path)
        if not self.remote:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir()
                return True
            except FileExistsError:
                return False
        bucket, key = self._key(path)
        try:
            self._s3().put_object(Bucket=bucket, Key=f"{key}/{CLAIM_MARKER}", Body=b"", IfNoneMatch="*")
        except Exception as exc:
            if _precondition_failed(exc):
                return False
            raise
        if path.exists():  # a cache left from a bucket that was since wiped: the claim is ours now
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return True

    def claim_version_dir(self, root: Path, known: Iterable[int] = ()) -> tuple[int, Path]:
        """`claim_version_dir` on this home: the next free number under `root`, claimed atomically."""
        if not self.remote:
            return claim_version_dir(root, known)
        taken = list(known) + self._remote_children(root)
        if Path(root).is_dir():
            taken += [int(p.name) for p in Path(root).iterdir() if p.name.isdigit()]
        version = max(taken, default=0) + 1
        while not self.claim_dir(Path(root) / str(version)):
            version += 1
        return version, Path(root) / str(version)

    def _remote_children(self, root: Path) -> list[int]:
        bucket, key = self._key(root)
        out = []
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key + "/", Delimiter="/"):
            for p in page.get("CommonPrefixes", []):
                name = p["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if name.isdigit():
                    out.append(int(name))
        return out

    def publish(self, path: Path) -> None:
        """Upload a file, or every file under a folder, from the cache to the object store (local: no-op)."""
        if not self.remote:
            return
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        client = self._s3()
        for f in files:
            bucket, key = self._key(f)
            client.upload_file(str(f), bucket, key)

    def fetch(self, path: Path) -> Path:
        """Make the artifact (file or folder) at `path` present in the cache, downloading it whole (into a
        temporary sibling, then renamed: a half-downloaded folder is never seen). Local: returns `path`."""
        path = Path(path)
        if not self.remote or path.exists():
            return path
        bucket, key = self._key(path)
        client = self._s3()
        objects = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                   for o in page.get("Contents", []) if o["Key"] == key or o["Key"].startswith(key + "/")]
        objects = [k for k in objects if not k.endswith("/" + CLAIM_MARKER)]
        if not objects:
            return path  # nothing there: the caller reports it missing, as on a local home
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=path.parent))
        try:
            staged = tmp / path.name
            for k in objects:
                dest = staged if k == key else staged / k[len(key) + 1:]
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, k, str(dest))
            try:
                staged.rename(path)
            except OSError:  # another thread or process fetched it first: theirs is the same artifact
                if not path.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path


@lru_cache(maxsize=8)
def _s3_client(options: tuple):
    """A boto3 S3 client from Lance-style storage options (one per option set; clients are thread-safe)."""
    try:
        import boto3
    except ImportError:
        from llmfti.errors import ConfigError

        raise ConfigError("an s3:// home needs boto3 for its artifacts", hint="pip install 'llmfti[s3]'") from None
    opts = dict(options)
    kwargs = {
        "endpoint_url": opts.get("aws_endpoint") or opts.get("endpoint"),
        "region_name": opts.get("aws_region") or opts.get("region"),
        "aws_access_key_id": opts.get("aws_access_key_id") or opts.get("access_key_id"),
        "aws_secret_access_key": opts.get("aws_secret_access_key") or opts.get("secret_access_key"),
        "aws_session_token": opts.get("aws_session_token") or opts.get("session_token"),
    }
    return boto3.client("s3", **{k: v for k, v in kwargs.items() if v})


def _precondition_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def claim_version_dir(root: Path, known: Iterable[int] = ()) -> tuple[int, Path]:
    """Allocate the next version number under `root` by creating `root/N` atomically.

    Exactly one process can create a given folder, so concurrent writers (model versions, training
    datasets) never share a number; a crash after the mkdir leaves a gap, never a duplicate. `known`
    adds numbers recorded elsewhere (e.g. a table) whose folders may be gone. On an object-store home
    use `ProjectHome.claim_version_dir`, which claims on the bucket.
    """
    root.mkdir(parents=True, exist_ok=True)
    taken = list(known) + [int(p.name) for p in root.iterdir() if p.name.isdigit()]
    version = max(taken, default=0) + 1
    while True:
        try:
            (root / str(version)).mkdir()
            return version, root / str(version)
        except FileExistsError:
            version += 1
