"""The study: does pretraining help, and does recipe A beat recipe B? (docs/evaluation.md)

`python -m nepa3d_jax.study --preset small` builds the study corpus when missing, pretrains
every recipe over several pretraining seeds, scores each run and its own random init (same
config, same seed) with frozen-feature probes and CPAC, and writes a table, plots and a
headline under results/study/<preset>/. The pretraining seed is the unit of every interval.
"""
