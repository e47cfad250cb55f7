"""The study corpus builder the study command calls by reference (`nepa3d_jax.study.corpus`).

TEMPORARY development stand-in: the demo corpus at the requested scale, until the study profile
of data_prep.synthetic lands.
"""

from __future__ import annotations

import os

from data_prep.synthetic import build_synthetic_corpus

_N_PER_CLASS = {"tiny": 4, "small": 12, "full": 24}


def build_study_corpus(out_dir: str, scale: str = "small", workers: int = 2, seed: int = 0,
                       log=print) -> dict:
    paths = build_synthetic_corpus(out_dir, n_per_class=_N_PER_CLASS[scale], seed=seed,
                                   workers=workers, log=log)
    classes = open(os.path.join(out_dir, "classes.txt"), encoding="utf-8").read().split()
    return dict(mesh_root=paths["cache"], pretrain_split="train", scan_root=paths["scan_cache"],
                scan_split="train", labeled_root=paths["cache"], labeled_train="train",
                labeled_test="test", cpac_root=paths["unpaired"], classes=classes)
