"""Package structure rules (DESIGN.md, issue 16): the library stands alone and has no circles.

Static (AST) checks of every module under nepa3d_jax/: none imports the repository's `configs`
or `data_prep`, none touches `sys.path`, and the import graph (function-local imports
included) has no cycle.
"""

import ast
import pathlib
import subprocess
import sys

PKG = pathlib.Path(__file__).resolve().parents[1] / "nepa3d_jax"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


MODULES = _modules()


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        subs = [f"{node.module}.{a.name}" for a in node.names]
        return [s for s in subs if s in MODULES] or [node.module]
    return []


def test_no_module_imports_configs_or_data_prep_or_edits_sys_path():
    bad = []
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            for target in _imported(node):
                if target.split(".")[0] in ("configs", "data_prep"):
                    bad.append(f"{name} imports {target}")
            if (isinstance(node, ast.Attribute) and node.attr == "path"
                    and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                bad.append(f"{name} touches sys.path (line {node.lineno})")
    assert bad == []


def _graph() -> dict[str, set[str]]:
    """Every import, function-local ones included (a lazy import still closes a circle)."""
    return {name: {t for node in ast.walk(tree) for t in _imported(node)
                   if t in MODULES and t != name}
            for name, tree in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    assert _cycle(_graph()) is None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_config_tools_import_no_jax():
    """`nepa3d-config` (check and diff) and the registry stay light: no jax, flax or torch."""
    code = ("import sys; import nepa3d_jax.config, nepa3d_jax.review.diff, nepa3d_jax.jobs, "
            "nepa3d_jax.review.run_check, nepa3d_jax.review.mix_check, nepa3d_jax.config_diff, "
            "nepa3d_jax.tokenizer.modes, nepa3d_jax.config.__main__; "
            "from nepa3d_jax.tokenizer import sequence_length; "
            "bad = [n for n in ('jax', 'flax', 'torch') if n in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent, timeout=120)


def test_config_imports_no_higher_layer():
    """`config` (loading, validation, derived values) sits below the code that uses it: it imports
    no checkpoint, training, evaluation or review module (issue 23: `config/run_check.py`
    reached up into `checkpoint`). Only `nepa3d-config`'s entry point dispatches to `review`."""
    higher = ("nepa3d_jax.checkpoint", "nepa3d_jax.train", "nepa3d_jax.eval", "nepa3d_jax.review")
    graph = _graph()
    bad = [f"{name} imports {target}" for name in graph
           if (name == "nepa3d_jax.config" or name.startswith("nepa3d_jax.config."))
           and name != "nepa3d_jax.config.__main__"
           for target in graph[name] if target.startswith(higher)]
    assert bad == []
    assert graph["nepa3d_jax.config.__main__"] & set(MODULES) >= {"nepa3d_jax.review.diff"}


def test_review_tools_live_in_review_and_aliases_are_gone():
    """The review tools have one home; the old import aliases are gone and the one documented
    command module (`python -m nepa3d_jax.config_diff`) only forwards to it."""
    for gone in ("nepa3d_jax.config.diff", "nepa3d_jax.config.run_check",
                 "nepa3d_jax.config.mix_check", "nepa3d_jax.checkpoint.torch_args"):
        assert gone not in MODULES
    entry = MODULES["nepa3d_jax.config_diff"]
    assert not any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
                   for n in ast.walk(entry))
    assert _graph()["nepa3d_jax.config_diff"] == {"nepa3d_jax.review.diff"}
