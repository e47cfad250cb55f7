"""usage: nepa3d-prep TOOL [flags]   (= python -m data_prep TOOL ... = python -m data_prep.TOOL ...)

Tools (each takes --help for its required flags):
  meshes          mesh folder (ModelNet / ShapeNet layout) -> per-shape caches
  scanobjectnn    ScanObjectNN h5 files -> partial-scan caches
  unpaired_split  the CPAC split view of a cache root
  add_fps_order   add the farthest-point order to existing caches
  synthetic       the demo's procedural corpus (configs/demo.py builds it on first use)
  validate        check every cache of a root (keys, shapes, finite values)
  to_tfds         pack a cache root into a TFDS (ArrayRecord) build
Flags follow nepa3d_jax.cli: snake_case (kebab-case accepted), `--out` for what the tool
writes, comma-separated lists. Configs that read the results live in configs/.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Sequence

TOOLS = ("meshes", "scanobjectnn", "unpaired_split", "add_fps_order", "synthetic", "validate",
         "to_tfds")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    tool = argv[0].replace("-", "_")
    if tool not in TOOLS:
        near = difflib.get_close_matches(tool, TOOLS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        print(f"nepa3d-prep: error: unknown tool {argv[0]!r}{hint} (one of: {', '.join(TOOLS)})",
              file=sys.stderr)
        return 2
    return int(importlib.import_module(f"data_prep.{tool}").main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
