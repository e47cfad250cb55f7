"""Alias of `nepa3d_jax.config.torch_args` (an original run's args as our config), kept so
existing imports keep working."""

from nepa3d_jax.config.torch_args import *  # noqa: F401,F403
from nepa3d_jax.config.torch_args import (  # noqa: F401
    UnsupportedTorchArgs, config_from_torch_args, resolved_max_len, unsupported_args)
