"""`python -m nepa3d_jax.config_diff ...`: the command name the README documents for
`nepa3d-config diff` (the tools live in `nepa3d_jax.review.diff`)."""

import sys

from nepa3d_jax.review.diff import main

if __name__ == "__main__":
    sys.exit(main())
