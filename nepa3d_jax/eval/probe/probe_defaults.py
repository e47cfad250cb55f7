"""Defaults of the `probe` job: frozen-feature probes of a checkpoint against its random init.

Command:  nepa3d-jax --config configs/probe.py --config.ckpt=runs/x --config.cache_root=...
The cache root holds labelled shapes as `<root>/<split>/<class>/<id>.npz`; `train_split` is the
labelled pool the K-shot episodes draw from, `test_split` is scored whole.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.job = "probe"
    c.ckpt = ""                       # our run directory or an original .pt (required)
    c.cache_root = "data/study/labeled"
    c.train_split = "train"
    c.test_split = "test"
    c.out_json = "results/probe.json"
    c.progress = True

    # Tokens: the classification protocol (xyz of the point cloud, no distances, no rays).
    c.backend = "pointcloud_noray"
    c.pt_xyz_key = "pc_xyz"
    c.pt_dist_key = "pt_dist_pool"
    c.ablate_point_dist = 1
    c.n_point = -1                    # -1: the checkpoint's data.n_point
    c.pt_sample_mode = "fps"
    c.pt_rfps_m = 4096                # pt_sample_mode=rfps only
    c.point_order_mode = ""           # "": the checkpoint's data.point_order_mode
    c.is_causal = 1                   # 1: attention as pretrained (causal); 0: bidirectional
    c.eval_seed = 0
    c.batch = 32

    # Readouts and classifiers.
    c.layers = "-1"                   # comma list: -1 = h (after any final norm), 0..L-1
    c.readouts = "mean_pts,mean_pts_ln,mean_max_ln"
    c.headline = "-1:mean_max_ln"     # the readout the summary and the study report
    c.shots = "1,5,10"                # K labelled shapes per class; 0 = the whole pool
    c.episodes = 5                    # fixed episodes per K, shared by every arm
    c.episode_seed = 0
    c.logreg_cs = "0.01,0.1,1,10,100"
    c.cv_folds = 5                    # at most; fewer when a class has fewer shapes
    c.knn_k = "1,5"
    c.random_init_baseline = 1        # also probe the same architecture freshly initialised
    return c
