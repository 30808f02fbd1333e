"""Finding the tailer's files: glob patterns, exclusions, identities, renamed and rotated files.

Files are known by ``(st_dev, st_ino)``, so a rename is not a new file. How the tailer follows
rotations (rename + create, copytruncate, deletion) is described in docs/tailing.md (*Files*).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat as stat_mod
from collections.abc import Iterable, Sequence

from rolesanywhere.ship.positions import FileKey

__all__ = [
    "fd_path",
    "file_keys",
    "find_by_inode",
    "is_excluded",
    "line_start_before",
    "match_files",
]

_TAIL_WINDOW = 1 << 16  # how far back to look for a line start when starting at the end


def is_excluded(path: str, exclude: Sequence[str]) -> bool:
    """Whether ``path`` or its base name matches a shell pattern of ``exclude``.

    Like Fluent Bit's ``Exclude_Path``.
    """
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in exclude)


def match_files(
    patterns: Sequence[str], exclude: Sequence[str], skip: set[FileKey]
) -> dict[FileKey, str]:
    """Regular files matching the glob ``patterns`` (``**`` recurses), by identity.

    A file reached under several names keeps the first (patterns in order, names sorted);
    excluded paths and the identities in ``skip`` are left out.
    """
    found: dict[FileKey, str] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if is_excluded(path, exclude):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if stat_mod.S_ISREG(st.st_mode) and key not in skip and key not in found:
                found[key] = path
    return found


def file_keys(paths: Iterable[str]) -> set[FileKey]:
    """Identities of those of ``paths`` that exist."""
    keys = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        keys.add((st.st_dev, st.st_ino))
    return keys


def fd_path(fd: int) -> str | None:
    """Current name of an open file (Linux ``/proc``), None if unknown or deleted."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if target.endswith(" (deleted)") or not target.startswith("/"):
        return None
    return target


def find_by_inode(path: str, key: FileKey, listings: dict[str, dict[int, str]]) -> str | None:
    """``path`` if it still is file ``key``, else the name of ``key`` in ``path``'s directory.

    ``listings`` caches directory listings (inode -> path) across calls.
    """
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and (st.st_dev, st.st_ino) == key:
        return path
    folder = os.path.dirname(path)
    if folder not in listings:
        try:
            with os.scandir(folder) as entries:
                listings[folder] = {e.inode(): e.path for e in entries}
        except OSError:
            listings[folder] = {}
    return listings[folder].get(key[1])


def line_start_before(fd: int, size: int) -> int:
    """Offset just after the last ``\\n`` near ``size``, so a line being written is whole."""
    window = min(size, _TAIL_WINDOW)
    data = os.pread(fd, window, size - window)
    nl = data.rfind(b"\n")
    if nl >= 0:
        return size - len(data) + nl + 1
    return 0 if window == size else size
