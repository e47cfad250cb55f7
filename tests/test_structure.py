"""Package structure rules (DESIGN.md, issue 16): the library stands alone and has no circles.

Static (AST) checks of every module under nepa3d_jax/: none imports the repository's `configs`
or `data_prep`, none touches `sys.path`, and the import graph (function-local imports
included) has no cycle.
"""

import ast
import importlib.util
import io
import pathlib
import subprocess
import sys
import tokenize

REPO = pathlib.Path(__file__).resolve().parents[1]
PKG = REPO / "nepa3d_jax"


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


def test_module_names_say_what_they_hold():
    """Issue 23: no look-alike module names (three `sampling`, four `defaults`, two `workers`
    were renamed to what each holds), and no shim left under an old name."""
    vague = ("sampling", "defaults", "workers")
    assert [m for m in MODULES if m.rsplit(".", 1)[-1] in vague] == []
    renamed = {"nepa3d_jax.process_pool", "nepa3d_jax.data.loader_workers",
               "nepa3d_jax.tokenizer.pool_sampling", "nepa3d_jax.eval.cpac.shape_sampling",
               "nepa3d_jax.train.pretrain_defaults", "nepa3d_jax.eval.cls.cls_defaults",
               "nepa3d_jax.eval.cpac.cpac_defaults", "nepa3d_jax.eval.probe.probe_defaults"}
    assert renamed <= set(MODULES)


def _reindent_tool():
    spec = importlib.util.spec_from_file_location("reindent", REPO / "tools" / "reindent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bad_indents(source: str) -> list[int]:
    """Rows whose block indent is not its enclosing block's plus 4 spaces."""
    stack, bad = [0], []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.INDENT:
            if len(tok.string) != stack[-1] + 4:
                bad.append(tok.start[0])
            stack.append(len(tok.string))
        elif tok.type == tokenize.DEDENT:
            stack.pop()
    return bad


SOURCE_FOLDERS = ("nepa3d_jax", "configs", "data_prep", "tests", "bench", "tools")


def test_every_python_file_indents_by_4_spaces():
    """One indentation style (issue 23). A file that fails: `python tools/reindent.py FILE`."""
    files = sorted(p.relative_to(REPO).as_posix() for folder in SOURCE_FOLDERS
                   for p in (REPO / folder).rglob("*.py"))
    assert len(files) > 100
    bad = {f: rows for f in files if (rows := _bad_indents((REPO / f).read_text()))}
    assert bad == {}, "re-indent with: python tools/reindent.py " + " ".join(bad)


def test_reindent_tool_changes_only_leading_spaces():
    tool = _reindent_tool()
    two = ('def f(a,\n      b):\n  """Doc.\n\n  More.\n  """\n  # about x\n'
           '  x = dict(k=1,\n           j=2)\n  s = """\n  kept\n"""\n  if a:\n'
           '    return [x,  # trailing\n      s]\n  # end of f\n')
    four = ('def f(a,\n      b):\n    """Doc.\n\n    More.\n    """\n    # about x\n'
            '    x = dict(k=1,\n             j=2)\n    s = """\n  kept\n"""\n    if a:\n'
            '        return [x,  # trailing\n          s]\n    # end of f\n')
    assert _bad_indents(two) == [3, 14] and _bad_indents(four) == []  # the check can fail
    assert tool.reindent(two) == four
    assert tool.reindent(four) == four  # idempotent: a 4-space file is left as is
