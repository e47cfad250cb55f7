"""`nepa3d-prep <tool> [flags]`, the same as `python -m data_prep <tool> ...` and
`python -m data_prep.<tool> ...`.

Tools: meshes, scanobjectnn, unpaired_split, add_fps_order, synthetic (--profile demo|study),
validate, study_baseline; each takes `--help`. Flags follow nepa3d_jax.cli: snake_case (kebab-case accepted), `--out` for what the
tool writes, comma-separated lists.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

TOOLS = ("meshes", "scanobjectnn", "unpaired_split", "add_fps_order", "synthetic", "validate",
         "study_baseline")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    tool = argv[0].replace("-", "_")
    if tool not in TOOLS:
        print(f"nepa3d-prep: unknown tool {argv[0]!r}; one of: {', '.join(TOOLS)}",
              file=sys.stderr)
        return 2
    return int(importlib.import_module(f"data_prep.{tool}").main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
