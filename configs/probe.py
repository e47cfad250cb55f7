"""Frozen-feature probes of one checkpoint against its random init (the study's readout).

  nepa3d-jax --config configs/probe.py --config.ckpt=runs/x --config.cache_root=data/study/labeled

Writes results/probe.json: per-episode test accuracies of a logistic probe (C chosen by
cross-validation on the episode) and cosine k-NN, for K = 1, 5, 10 labelled shapes per class,
for the pretrained model and the same architecture freshly initialised (docs/evaluation.md).
"""

from nepa3d_jax.eval.probe.probe_defaults import get_config

__all__ = ["get_config"]
