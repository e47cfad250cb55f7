"""Alias of `nepa3d_jax.config.diff` (`python -m nepa3d_jax.config diff ...`), kept so existing
commands (`python -m nepa3d_jax.config_diff ...`) and imports keep working."""

import sys

from nepa3d_jax.config.diff import *  # noqa: F401,F403
from nepa3d_jax.config.diff import main

if __name__ == "__main__":
    sys.exit(main())
