"""Run configuration: loading (as `--config`), validation, derived values, start-up guards."""

from nepa3d_jax.config.derived import derive, effective_lr, required_length, sequence_length
from nepa3d_jax.config.guards import guard_warnings
from nepa3d_jax.config.loading import load_config
from nepa3d_jax.config.record import from_run_json, to_run_json
from nepa3d_jax.config.validation import ConfigError, validate

__all__ = [
    "ConfigError", "derive", "effective_lr", "from_run_json", "guard_warnings", "load_config",
    "required_length", "sequence_length", "to_run_json", "validate",
]
