"""The project home: one storage location holding the LanceDB database and the artifacts folder.

`LLMFTI_HOME` (default `./.llmfti`) selects it; the CLI's `--home` overrides both.
Layout::

    <home>/db/          LanceDB database (feature groups, metadata, quarantine, runs, ...)
    <home>/artifacts/   model folders, adapters, datasets' side files, reports
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

DEFAULT_HOME = ".llmfti"
HOME_ENV = "LLMFTI_HOME"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The explicit `home`, else `$LLMFTI_HOME`, else `./.llmfti`."""
    chosen = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().absolute()


@dataclass(frozen=True)
class ProjectHome:
    """Paths of one project home; creating the folders is explicit (`ensure`)."""

    root: Path

    @classmethod
    def at(cls, home: str | os.PathLike | None = None) -> "ProjectHome":
        return cls(resolve_home(home))

    @property
    def db_path(self) -> Path:
        return self.root / "db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def models_dir(self) -> Path:
        return self.artifacts / "models"

    def ensure(self) -> "ProjectHome":
        self.db_path.mkdir(parents=True, exist_ok=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self

    def connect(self):
        """Open the LanceDB database (imports lancedb lazily)."""
        # Lance's Rust logger prints deprecation chatter for internal hybrid-search sub-queries (it reads
        # LANCEDB_LOG when lancedb is first imported); keep stderr for our own progress and errors unless
        # the user asked for Lance logs.
        os.environ.setdefault("LANCEDB_LOG", "error")
        os.environ.setdefault("LANCE_LOG", "error")
        import lancedb

        self.ensure()
        return lancedb.connect(str(self.db_path))


def claim_version_dir(root: Path, known: Iterable[int] = ()) -> tuple[int, Path]:
    """Allocate the next version number under `root` by creating `root/N` atomically.

    Exactly one process can create a given folder, so concurrent writers (model versions, training
    datasets) never share a number; a crash after the mkdir leaves a gap, never a duplicate. `known`
    adds numbers recorded elsewhere (e.g. a table) whose folders may be gone.
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
