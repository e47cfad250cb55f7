"""What a cache file's path says: its class (the folder holding it) and its per-shape seed.

Caches live at `<root>/<split>/<class>/<id>.npz`. Pretraining labels, classification labels and
the per-shape eval seeds of CPAC-UDF and classification all come from these two functions.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence


def label_from_path(path: str) -> str:
    """The class name: the name of the folder holding the file."""
    return os.path.basename(os.path.dirname(path))


def class_label(path: str, classes: Sequence[str]) -> int:
    """Index of the file's class folder in `classes`."""
    return list(classes).index(label_from_path(path))


def path_seed(path: str, seed: int) -> int:
    """The original's per-shape seed: first 8 hex digits of md5(path) plus `seed`, mod 2**32.

    The path string is hashed as spelled (as glob returned it), so relative and absolute
    spellings of one file give different seeds, as in the original.
    """
    digest = hashlib.md5(path.encode("utf-8")).hexdigest()[:8]
    return (int(digest, 16) + int(seed)) & 0xFFFFFFFF
