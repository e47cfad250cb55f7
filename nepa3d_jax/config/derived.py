"""Derived run values, computed in ONE place from the config and the device count.

Everything here is a pure function of (config, num_devices, num_processes): the training code
logs it and saves it in `config.json` under "derived"; `config_diff --run` recomputes it to check
what a run used. Never set these values in a config file.
"""

from __future__ import annotations

import ml_collections

from nepa3d_jax.config.errors import ConfigError
from nepa3d_jax.config.schedule import schedule_max
from nepa3d_jax.tokenizer.types import sequence_length

__all__ = ["derive", "effective_lr", "required_length", "sequence_length"]


def required_length(data: ml_collections.ConfigDict) -> int:
    """Sequence length the positional table must hold (largest point/ray counts of any schedule)."""
    n_point = schedule_max(data.n_point_schedule, int(data.n_point),
                           "data.n_point_schedule")
    n_ray = schedule_max(data.n_ray_schedule, int(data.n_ray), "data.n_ray_schedule")
    return sequence_length(n_point, n_ray, int(data.qa_tokens), bool(int(data.add_eos)))


def effective_lr(train: ml_collections.ConfigDict, global_batch: int) -> float:
    """Linear scaling rule `base_lr * global_batch / lr_ref_batch`, or `base_lr` when lr_scale is off."""
    if train.lr_scale:
        return float(train.base_lr) * global_batch / float(train.lr_ref_batch)
    return float(train.base_lr)


def derive(config: ml_collections.ConfigDict, num_devices: int,
           num_processes: int = 1) -> ml_collections.ConfigDict:
    """Returns the derived block: seq_len, max_len, global_batch, lr, steps, device counts.

    Raises ValueError (ConfigError) when the device count makes the run impossible, e.g. a global
    batch larger than the epoch.
    """
    if num_devices <= 0 or num_processes <= 0 or num_devices % num_processes:
        raise ConfigError(f"num_devices={num_devices} must be a positive multiple of "
                          f"num_processes={num_processes}")
    data, train = config.data, config.train
    seq_len = sequence_length(int(data.n_point), int(data.n_ray), int(data.qa_tokens),
                              bool(int(data.add_eos)))
    max_len = int(data.max_len)
    global_batch = int(train.batch_per_device) * int(num_devices)
    steps_per_epoch = int(data.mix_num_samples) // global_batch
    if steps_per_epoch <= 0 and int(train.num_steps) <= 0:
        raise ConfigError(f"data.mix_num_samples={data.mix_num_samples} is smaller than the global "
                          f"batch {global_batch} (train.batch_per_device={train.batch_per_device} x "
                          f"{num_devices} devices): an epoch would have no step")
    num_steps = int(train.num_steps)
    total_steps = num_steps if num_steps > 0 else int(train.epochs) * steps_per_epoch
    return ml_collections.ConfigDict(dict(
        seq_len=seq_len,
        max_len=required_length(data) if max_len == -1 else max_len,
        num_devices=int(num_devices),
        num_processes=int(num_processes),
        global_batch=global_batch,
        lr=effective_lr(train, global_batch),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    ))
