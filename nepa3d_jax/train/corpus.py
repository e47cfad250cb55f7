"""`config.data.synthetic`: build a procedural corpus before training when it is missing.

Used by `configs/demo.py` so that `make demo` works on a fresh clone with no data. The config
names the builder (`builder = "module:function"`, called as `fn(out_dir, n_per_class=, seed=,
log=)`): the library defines this hook and imports no data-prep code itself; the demo points it
at `data_prep.synthetic:build_synthetic_corpus`, installed beside the package. The builder skips
finished outputs, so a present corpus costs a directory scan.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Callable

import jax
import ml_collections

log = logging.getLogger("nepa3d_jax.train")


def corpus_builder(ref: str, field: str = "config.data.synthetic.builder") -> Callable[..., object]:
    """The function a `module:function` reference names; ValueError naming `field` otherwise."""
    module, sep, attr = str(ref).partition(":")
    if not module or not sep or not attr:
        raise ValueError(f"{field}={ref!r}: expected 'module:function'")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{field}={ref!r}: cannot import it ({err})") from err
    if not callable(fn):
        raise ValueError(f"{field}={ref!r} is not callable")
    return fn


def ensure_synthetic_corpus(config: ml_collections.ConfigDict) -> str | None:
    """Builds `config.data.synthetic.out_dir` if absent; returns it (None when not configured)."""
    spec = config.data.synthetic
    if not spec.out_dir:
        return None
    out_dir = str(spec.out_dir)
    build = corpus_builder(spec.builder)  # checked on every process, before any work
    done = os.path.isfile(os.path.join(out_dir, "unpaired_split.json"))
    if done and jax.process_index() == 0:
        log.info("corpus: %s (built before)", out_dir)
    if not done and jax.process_index() == 0:
        log.info("corpus: building the synthetic corpus in %s (first run only)", out_dir)
        build(out_dir, n_per_class=int(spec.n_per_class), seed=int(spec.seed), log=log.info)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("synthetic corpus ready")
    return out_dir
