"""Derived run values, computed in ONE place from the config and the device count.

Everything here is a pure function of (config, num_devices, num_processes): the training code
logs it and saves it in `config.json` under "derived"; `config_diff --run` recomputes it to check
what a run used. Never set these values in a config file.
"""

from __future__ import annotations

import ml_collections


def _schedule_max(schedule: str, fallback: int) -> int:
    """Largest `n` in an original-format schedule "epoch:n,epoch:n" (fallback when empty)."""
    values = [fallback]
    for item in filter(None, (s.strip() for s in str(schedule or "").split(","))):
        _, _, n = item.partition(":")
        values.append(int(n))
    return max(values)


def sequence_length(n_point: int, n_ray: int, qa_tokens: int, add_eos: bool = True) -> int:
    """Tokens of one sequence: Q/A `1 + 2*n_point + 2*n_ray + eos`, legacy `1 + n_point + n_ray + eos`."""
    try:  # The tokenizer owns the formula once it exists; this mirror keeps config usable before.
        from nepa3d_jax.tokenizer import sequence_length as tokenizer_sequence_length
    except ImportError:
        per_item = 2 if int(qa_tokens) else 1
        return 1 + per_item * (int(n_point) + int(n_ray)) + (1 if int(add_eos) else 0)
    return int(tokenizer_sequence_length(int(n_point), int(n_ray), int(qa_tokens), bool(int(add_eos))))


def required_length(data: ml_collections.ConfigDict) -> int:
    """Sequence length the positional table must hold (largest point/ray counts of any schedule)."""
    n_point = _schedule_max(data.get("n_point_schedule", ""), int(data.n_point))
    n_ray = _schedule_max(data.get("n_ray_schedule", ""), int(data.n_ray))
    return sequence_length(n_point, n_ray, data.qa_tokens, data.get("add_eos", 1))


def effective_lr(train: ml_collections.ConfigDict, global_batch: int) -> float:
    """Linear scaling rule `base_lr * global_batch / lr_ref_batch`, or `base_lr` when lr_scale is off."""
    if train.get("lr_scale", False):
        return float(train.base_lr) * global_batch / float(train.lr_ref_batch)
    return float(train.base_lr)


def derive(config: ml_collections.ConfigDict, num_devices: int,
           num_processes: int = 1) -> ml_collections.ConfigDict:
    """Returns the derived block: seq_len, max_len, global_batch, lr, steps, device counts.

    Raises ValueError (ConfigError) when the device count makes the run impossible, e.g. a global
    batch larger than the epoch.
    """
    from nepa3d_jax.config.validation import ConfigError  # local: validation imports this module

    if num_devices <= 0 or num_processes <= 0 or num_devices % num_processes:
        raise ConfigError(f"num_devices={num_devices} must be a positive multiple of "
                          f"num_processes={num_processes}")
    data, train = config.data, config.train
    seq_len = sequence_length(data.n_point, data.n_ray, data.qa_tokens, data.get("add_eos", 1))
    max_len = int(data.max_len)
    global_batch = int(train.batch_per_device) * int(num_devices)
    steps_per_epoch = int(data.mix_num_samples) // global_batch
    if steps_per_epoch <= 0 and int(train.get("num_steps", 0)) <= 0:
        raise ConfigError(f"data.mix_num_samples={data.mix_num_samples} is smaller than the global "
                          f"batch {global_batch} (train.batch_per_device={train.batch_per_device} x "
                          f"{num_devices} devices): an epoch would have no step")
    num_steps = int(train.get("num_steps", 0))
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
