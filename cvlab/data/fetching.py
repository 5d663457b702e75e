"""How `cvlab data fetch` puts downloaded files into a data root without losing anything.

Downloads and extractions happen inside a staging folder of the root (`.cvlab-fetch-*`:
hidden, so no dataset finder looks at it; removed afterwards, whatever happens). Only
verified results are moved out of it. Whatever already sits at a destination is never
overwritten or deleted: it is set aside under the first free `<name>.old`, `<name>.old2`, ...
and the caller says so in one line.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cvlab.errors import UserError

STAGING_PREFIX = ".cvlab-fetch-"


@contextlib.contextmanager
def staging_folder(root: Path, what: str) -> Iterator[Path]:
    """A fresh staging folder inside `root` (created with its parents when missing).

    On exit the staging folder is removed, and so is `root` when this call created it and it
    is still empty (a failed first fetch leaves no trace). An unwritable root is a UserError
    naming `what` (the dataset) and the path.
    """
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    except OSError as err:
        raise UserError(f"cannot write into the {what} folder {root} ({err}); set "
                        "dataset.root or $CVLAB_DATA to a writable folder") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                root.rmdir()  # only when still empty


def set_aside(path: Path) -> Path:
    """Rename `path` to the first free `<name>.old`, `<name>.old2`, ...; return the new path."""
    number, candidate = 1, path.with_name(f"{path.name}.old")
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.name}.old{number}")
    path.rename(candidate)
    return candidate


def move_into_place(source: Path, destination: Path, announce: Callable[[str], None],
                    what_was_there: str = "") -> None:
    """Move `source` (inside the staging folder) to `destination`; anything already at
    `destination` is set aside first and announced in one line (`what_was_there` says what
    it was, e.g. "is not the official archive (md5 ...)")."""
    if destination.exists() or destination.is_symlink():
        aside = set_aside(destination)
        detail = f" {what_was_there}" if what_was_there else " was there"
        announce(f"dataset: {destination}{detail}; it is kept, set aside as {aside.name}")
    source.rename(destination)
