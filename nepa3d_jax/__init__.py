"""nepa3d_jax: JAX/Flax NEPA-3D."""
