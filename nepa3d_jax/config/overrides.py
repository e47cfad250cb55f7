"""`--config.a.b=v` overrides as a user types them: kebab-case accepted, typos named in one line.

Both `nepa3d-jax` and `nepa3d-config` check overrides here before anything else parses them:
absl's own failure for an unknown field is a 50-line traceback, and `load_config`'s is the
KeyError's repr.
"""

from __future__ import annotations

import difflib
from typing import Sequence

from nepa3d_jax.config.loading import load_config


def snake_override(arg: str) -> str:
    """`--config.train.num-steps=5` -> `--config.train.num_steps=5` (the value is kept as is)."""
    head, eq, value = arg.partition("=")
    if head.startswith(("--config.", "config.")):
        head = head.replace("-", "_").replace("__config.", "--config.", 1)
    return head + eq + value


def override_error(path: str, overrides: Sequence[str]) -> str | None:
    """One line naming the config file or a bad `a.b=v` override (with the closest field for a
    typo), or None when the file loads with every override."""
    try:
        base = load_config(path)
    except ValueError as err:
        return str(err).splitlines()[0]
    for override in overrides:
        dotted = override.split("=", 1)[0].removeprefix("--").removeprefix("config.")
        node, walked = base, []
        for part in dotted.split("."):
            if not hasattr(node, "keys") or part not in node:
                known = sorted(node.keys()) if hasattr(node, "keys") else []
                near = difflib.get_close_matches(part, known, n=1)
                where = ".".join(walked) or "the config"
                hint = f"; did you mean --config.{'.'.join(walked + near)}?" if near else ""
                return f"--config.{dotted}: {where} has no field {part!r}{hint}"
            node = node[part]
            walked.append(part)
    try:
        load_config(path, overrides)
    except ValueError as err:
        line = str(err).splitlines()[0]
        at = line.find("flag --config.")  # absl's "flag --config.a.b=v: why" names the field
        return line[at + len("flag "):] if at >= 0 else line
    return None


