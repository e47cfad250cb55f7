"""The one way this package opens a PyTorch `.pt` file: weights-only, on the CPU.

A `.pt` is a pickle; loaded with `weights_only=False` its `__reduce__` entries run arbitrary
code. Checkpoints come from colleagues and downloads, so every entry point (`import_torch`,
`load_pretrained` for the evaluators, `config_diff --run`) reads them through `load_torch_file`,
which only admits tensors, containers and primitive types, plus `argparse.Namespace` (scripts
that saved `args` itself instead of `vars(args)`).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any


class CheckpointError(ValueError):
    """A checkpoint that cannot be imported; the message names the file and the key."""


def load_torch_file(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` with `argparse.Namespace` allowed; clear errors.

    Raises FileNotFoundError for a missing file, ImportError without torch, and CheckpointError
    (naming the file) for anything that is not a weights-only checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"reading {path} needs torch (pip install 'nepa3d_jax[torch]')") from err
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad or non-weights-only files
        raise CheckpointError(f"{path}: cannot load as a weights-only torch checkpoint "
                              f"({type(err).__name__}: {_reason(err)}); a file that needs "
                              "other pickled objects is refused, since loading it runs code"
                              ) from err


def _reason(err: Exception) -> str:
    """The forbidden global the file names ("Unsupported global posix.system (...)"), else
    torch's one useful line; never its advice to re-run with weights_only=False (that would
    run the code)."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        blocked = re.search(r"whose module ([\w.]+) is blocked", text)
        why = f"module {blocked.group(1)} is blocked" if blocked else "not an allowed global"
        return f"Unsupported global {found.group(1)} ({why})"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported" in ln:
            return ln.split("Please use")[0].strip()
    useful = [ln for ln in lines if "weights_only" not in ln]
    return useful[0] if useful else type(err).__name__
