"""`config.data.synthetic`: build a procedural corpus before training when it is missing.

Used by `configs/demo.py` so that `make demo` works on a fresh clone with no data. The builder
(`data_prep.synthetic`) skips finished outputs, so a present corpus costs a directory scan.
"""

from __future__ import annotations

import logging
import os

import jax
import ml_collections

log = logging.getLogger("nepa3d_jax.train")


def ensure_synthetic_corpus(config: ml_collections.ConfigDict) -> str | None:
    """Builds `config.data.synthetic.out_dir` if absent; returns it (None when not configured)."""
    spec = config.data.get("synthetic")
    if not spec or not spec.get("out_dir"):
        return None
    out_dir = str(spec.out_dir)
    done = os.path.isfile(os.path.join(out_dir, "unpaired_split.json"))
    if not done and jax.process_index() == 0:
        from data_prep.synthetic import build_synthetic_corpus

        log.info("building the synthetic corpus in %s (first run only)", out_dir)
        build_synthetic_corpus(out_dir, n_per_class=int(spec.get("n_per_class", 4)),
                               seed=int(spec.get("seed", 0)), log=log.info)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("synthetic corpus ready")
    return out_dir
