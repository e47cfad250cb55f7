"""Defaults of the `finetune_cls` job: the seed plan's ScanObjectNN and ModelNet40 protocols.

`configs/cls_scanobjectnn.py` and `configs/cls_modelnet40.py` re-export them; their docstrings
give the commands and the protocol. ModelNet40 differs only in the cache, the `modelnet40`
augmentation preset (scale 0.8-1.25, translation 0.1) and global batch 512.
"""

import ml_collections


def scanobjectnn() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.job = "finetune_cls"
    c.ckpt = ""                       # our run dir or an original .pt; "" = from scratch
    c.cache_root = "data/scanobjectnn_main_split_v2"
    c.backend = "pointcloud_noray"    # sets train and eval backends unless given below
    c.train_backend = ""
    c.eval_backend = ""
    c.out_json = "results/cls_scanobjectnn.json"
    c.log_path = ""                   # "" = out_json with .log
    c.save_dir = ""                   # optional: best classifier params (.npz) go here
    c.progress = True

    c.seed = 0
    c.batch = 384                     # global batch (the original's --batch x processes)
    c.epochs = 100
    c.max_steps_per_epoch = 0         # > 0: cap (smoke tests)
    c.lr = 1e-4
    c.lr_schedule = "constant"        # constant (the original) | cosine (to 0 at the last step)
    c.lr_warmup_epochs = 0            # cosine only: lr rises linearly from 0 over these epochs
    c.weight_decay = 0.05
    c.freeze_backbone = False         # linear probe

    c.n_point = 1024                  # -1: the pretrain value (capped at it unless allow_scale_up)
    c.n_ray = 0
    c.allow_scale_up = 0
    c.max_len = -1                    # -1: max(checkpoint table, required length)
    c.qa_tokens = -1                  # -1: from the checkpoint
    c.qa_layout = "interleave"        # the original fine-tune always builds interleaved Q/A
    c.add_eos = -1                    # -1: from the checkpoint

    c.val_ratio = 0.1
    c.val_seed = 0
    c.fewshot_k = 0
    c.fewshot_seed = 0
    c.fewshot_n_way = 0
    c.fewshot_way_seed = -1           # -1: fewshot_seed

    c.eval_seed = 0
    c.mc_eval_k = 1
    c.mc_eval_k_val = 1
    c.mc_eval_k_test = 10
    c.drop_ray_prob_train = 0.0
    c.force_missing_ray = False

    c.cls_is_causal = 0               # 0: bidirectional attention
    c.cls_pooling = "mean_pts"        # auto | eos | bos | mean | mean_no_special | mean_pts | mean_a
                                      # | mean_q | mean_max (the last two: not the original's)
    c.head_norm = 0                   # 1: LayerNorm (fc_norm) on the pooled vector before the head
    c.full_spec_readout = False       # True: pt_xyz_pool + distances + pretrain n_ray
    c.ablate_point_dist = 1
    c.pt_xyz_key = "pc_xyz"
    c.pt_dist_key = "pt_dist_pool"
    c.pt_sample_mode_train = "fps"
    c.pt_sample_mode_eval = "fps"
    c.pt_fps_key = "auto"
    c.pt_rfps_m = 4096
    c.point_order_mode = "morton"     # the original fine-tune's (fixed) ordering

    c.aug_preset = "scanobjectnn"     # none | scanobjectnn (rotate z) | modelnet40 (scale+shift)
    c.aug_rotate_z = False            # individual fields apply only with aug_preset "none"
    c.aug_scale_min = 1.0
    c.aug_scale_max = 1.0
    c.aug_translate = 0.0
    c.aug_jitter_sigma = 0.0
    c.aug_jitter_clip = 0.0
    c.aug_eval = False
    # Study additions (docs/evaluation.md): fine-tune seeds ("0,1,2"; "" = seed only), the
    # random-init baseline (the checkpoint's config, fresh parameters), TensorBoard folder
    # ("" = beside out_json as <stem>_tb).
    c.seeds = ""
    c.random_init_baseline = 1
    c.random_init = False             # internal to the baseline run; True = re-init the backbone
    c.tb_dir = ""


    s = c.scratch = ml_collections.ConfigDict()   # used only when ckpt is empty
    s.d_model = 384
    s.layers = 8
    s.heads = 6
    s.mlp_ratio = 4.0
    s.attention = "auto"
    return c


def modelnet40() -> ml_collections.ConfigDict:
    c = scanobjectnn()
    c.cache_root = "data/modelnet40_cache_v2"
    c.out_json = "results/cls_modelnet40.json"
    c.batch = 512
    c.aug_preset = "modelnet40"
    return c
