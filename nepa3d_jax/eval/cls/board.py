"""TensorBoard curves of a fine-tune: train loss / accuracy and validation accuracy per epoch,
and the hyper-parameters with the final scores (`add_hparams`), as pretraining logs its own.

Event files go to `config.tb_dir`, by default `<out_json without .json>_tb/` (nothing is
written when neither is set).
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

HPARAMS = ("lr", "lr_schedule", "lr_warmup_epochs", "weight_decay", "batch", "epochs", "seed",
           "freeze_backbone", "n_point", "n_ray", "cls_pooling", "head_norm", "aug_preset",
           "random_init", "ckpt")


def board_dir(c) -> str:
    tb = str(c.tb_dir)
    if tb:
        return tb
    out = str(c.out_json)
    return (out[:-5] if out.endswith(".json") else out) + "_tb" if out else ""


class Board:
    def __init__(self, c):
        self.writer = None
        folder = board_dir(c)
        if folder:
            from tensorboardX import SummaryWriter

            os.makedirs(folder, exist_ok=True)
            self.writer = SummaryWriter(folder)

    def epoch(self, row: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        for key in ("train_loss", "train_acc", "val_acc"):
            value = float(row[key])
            if math.isfinite(value):
                self.writer.add_scalar(f"finetune/{key}", value, int(row["epoch"]))

    def close(self, c, final: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        hparams = {}
        for key in HPARAMS:
            value = c[key]
            if isinstance(value, bool):
                value = int(value)
            hparams[key] = value if isinstance(value, (int, float, str)) else str(value)
        metrics = {f"hparam/{k}": float(v) for k, v in final.items()
                   if isinstance(v, (int, float)) and math.isfinite(float(v))}
        self.writer.add_hparams(hparams, metrics, name="hparams")
        self.writer.flush()
        self.writer.close()
        self.writer = None
