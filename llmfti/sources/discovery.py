"""Discovery: files, directories (recursive, hidden entries skipped) and globs -> (root, file) pairs,
sorted for determinism, or a `QuarantineItem` for what cannot be read.

It walks directories itself instead of `Path.rglob`, which silently skips a directory it cannot
list: with --sync that would delete everything stored from it. An unreadable directory, a broken
symlink, a symlink loop or a FIFO is reported as a quarantine item instead. Symlinks to files are
read; symlinked directories are followed once (by real path, so a loop ends).
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from pathlib import Path
from typing import Iterator

from llmfti.errors import ConfigError
from llmfti.sources.items import QuarantineItem


def discover_files(paths: list[str]) -> list[tuple[Path, Path] | QuarantineItem]:
    """(root, file) pairs for every file under the given paths, globs expanded, sorted for determinism,
    and a QuarantineItem for every entry that cannot be read (unreadable directory, broken symlink,
    symlink loop, FIFO...). A path that does not exist (and matches no glob) is a usage error,
    raised before any work."""
    found: list[tuple[Path, Path] | QuarantineItem] = []
    for raw in paths:
        for match in _expand(raw):
            found.extend(_discover_path(match))
    return found


def _expand(raw: str) -> list[Path]:
    p = Path(raw).expanduser()
    try:
        os.lstat(p)  # lstat: a dangling symlink named on the command line is reported, not "not found"
        return [p]
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read source {raw}: {exc.strerror or exc}") from None
    if any(c in raw for c in "*?["):
        matches = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
        if not matches:
            raise ConfigError(f"no files match {raw!r}")
        return matches
    raise ConfigError(f"source not found: {raw}")


def _classify(path: Path, is_link: bool) -> tuple[str, str]:
    """('dir' | 'file' | a quarantine reason, detail), following symlinks."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ("broken-symlink", "points to a path that does not exist") if is_link else ("unreadable", "vanished while reading")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink-loop", "symlinks point at each other"
        return "unreadable", exc.strerror or str(exc)
    if stat.S_ISDIR(st.st_mode):
        return "dir", ""
    if stat.S_ISREG(st.st_mode):
        return "file", ""
    return "not-a-regular-file", file_type(st.st_mode)


def file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return f"is {name}"
    return "is not a regular file"


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _discover_path(path: Path) -> Iterator[tuple[Path, Path] | QuarantineItem]:
    """One path given on the command line (or matched by a glob): a file, or a directory to walk."""
    kind, detail = _classify(path, _is_link(path))
    if kind == "dir":
        yield from _walk(path, path, (os.path.realpath(path),), set())
    elif kind == "file":
        yield path.parent, path
    else:
        yield _bad_entry(str(path), path.name, kind, detail)


def files_under(root: Path, directory: Path) -> list[Path]:
    """The readable files under `directory` (inside the walked `root`), as a walk of `root` would list
    them: hidden entries skipped, symlinked directories followed once. A watcher uses it for a folder
    that appears whole (renamed, moved in, or linked), whose files raise no events of their own."""
    real_root = os.path.realpath(root)
    ancestors = (real_root, os.path.realpath(directory))
    return [entry[1] for entry in _walk(Path(root), Path(directory), ancestors, set()) if isinstance(entry, tuple)]


def _bad_entry(source: str, rel: str, reason: str, detail: str) -> QuarantineItem:
    # Whatever was stored under this name is kept by --sync: the entry is still there, just unreadable.
    item = QuarantineItem(source, reason, detail, doc_id=rel)
    if rel.lower().endswith(".jsonl"):
        item.file = rel
    if reason == "unreadable":  # it may be a directory we cannot even stat
        item.prefix = rel + "/"
    return item


def _walk(root: Path, directory: Path, ancestors: tuple[str, ...], followed: set[str]) -> Iterator[tuple[Path, Path] | QuarantineItem]:
    """Files under `directory`, depth first in name order, hidden entries skipped. `ancestors` are the
    real paths of the directories above (a symlink to one of them is a loop); `followed` the real paths
    of symlinked directories already read, so each is read once however many links point at it."""
    rel_dir = directory.relative_to(root).as_posix()
    prefix = "" if rel_dir == "." else rel_dir + "/"
    try:
        with os.scandir(directory) as it:
            entries = sorted(((e.name, e.is_symlink()) for e in it))
    except OSError as exc:
        yield QuarantineItem(str(directory), "unreadable", f"cannot list directory: {exc.strerror or exc}", prefix=prefix)
        return
    for name, is_link in entries:
        if name.startswith("."):
            continue
        path, rel = directory / name, prefix + name
        kind, detail = _classify(path, is_link)
        if kind == "file":
            yield root, path
        elif kind != "dir":
            yield _bad_entry(str(path), rel, kind, detail)
        elif not is_link:
            yield from _walk(root, path, ancestors + (os.path.realpath(path),), followed)
        else:
            real = os.path.realpath(path)
            if real in ancestors:
                yield QuarantineItem(str(path), "symlink-loop", f"links to {real}, a directory above it")
            elif real in followed:
                yield QuarantineItem(str(path), "duplicate-dir", f"links to {real}, already read through another link")
            else:
                followed.add(real)
                yield from _walk(root, path, ancestors + (real,), followed)
