"""Pretraining: train state, AdamW, the jitted step, the loop (`nepa3d_jax.train.loop.run`)."""
