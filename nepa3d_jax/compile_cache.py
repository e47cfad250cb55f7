"""JAX's persistent compilation cache: compilation paid once per shape, not once per process.

A run compiles its train step (~10 s on 2 CPU cores even at the study's scale) and each
evaluator its forward. The study repeats the same shapes many times (the random-init arm, the
next seed, the next recipe), a resumed job repeats its own, and so does a rerun evaluator; with
the cache on, those processes load the compiled programs from disk instead of compiling again.
Every entry point turns it on through `enable`: `nepa3d-jax` (pretraining and every evaluator),
`python -m nepa3d_jax.study` and the benches.

Which folder (the first that is set):
  1. `--compilation_cache DIR` on `nepa3d-jax`, `--compilation-cache DIR` on the study;
  2. the environment variable NEPA3D_COMPILATION_CACHE;
  3. `$XDG_CACHE_HOME/nepa3d_jax/jax` (`~/.cache/nepa3d_jax/jax`).
The value `off` (also `0`, `none`, `false`) turns the cache off. JAX keys each entry by the
program, the JAX/XLA versions, the backend and the devices, so one folder serves every run and
machine kind safely; it is never evicted (delete the folder to reclaim the space).
"""

from __future__ import annotations

import logging
import os

ENV = "NEPA3D_COMPILATION_CACHE"
OFF = ("off", "0", "none", "false")
# Cache every program, however fast it compiled. JAX's default (1 s) leaves out most of a small
# CPU model's programs, and any threshold makes the set of entries depend on the machine's load
# (a tiny pretraining run here: 38 small programs of ~0.05 s each, recompiled by every run under
# a 0.05 s threshold). Reading an entry back is cheaper than compiling even the smallest one.
MIN_COMPILE_SECONDS = 0.0

log = logging.getLogger(__name__)


def default_folder() -> str:
    """The per-user cache folder (XDG base directory rule)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nepa3d_jax", "jax")


def resolve(folder: str = "") -> str | None:
    """The folder to cache in (see the module docstring), or None when the cache is off."""
    choice = (folder or os.environ.get(ENV, "") or default_folder()).strip()
    if choice.lower() in OFF:
        return None
    return os.path.abspath(os.path.expanduser(choice))


def enable(folder: str = "") -> str | None:
    """Point JAX's persistent cache at `resolve(folder)` (or turn it off); the folder used.

    Call before the first compilation of the process: JAX decides once, at its first compile,
    whether the cache is in use (a later call resets that decision). A folder that cannot be
    created turns the cache off with a warning instead of failing the run.
    """
    import jax
    from jax._src import compilation_cache

    path = resolve(folder)
    if path is not None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            log.warning("compilation cache off: cannot create %s (%s)", path, err)
            path = None
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # no size floor
    compilation_cache.reset_cache()  # take the new setting even after an earlier compile
    return path
