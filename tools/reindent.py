"""Re-indent Python files to 4 spaces per block level, changing nothing else.

    python tools/reindent.py FILE.py ...      # rewrites the files that need it, names them

Why a script of our own and not a formatter: the project has no formatter dependency, and a
formatter would also rewrap lines and change quotes. This one moves each statement to 4 spaces
per block level and shifts its continuation lines (and docstrings) with it, so hanging and
aligned continuations keep their shape; a comment line follows the statement it sits beside.
Idempotent: a 4-space file is left byte for byte. Before writing, it checks that only leading
spaces changed and that the syntax tree is the same (docstrings compared as `inspect.cleandoc`
sees them), and refuses the file otherwise. `tests/test_structure.py` checks the result.
"""

from __future__ import annotations

import ast
import inspect
import io
import sys
import tokenize

from nepa3d_jax import cli

UNIT = 4
_SKIP = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)


def _docstrings_cleaned(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body[0].value.value = inspect.cleandoc(body[0].value.value)
    return ast.dump(tree)


def reindent(source: str) -> str:
    """`source` with 4 spaces per block level (continuation lines shifted with their statement)."""
    lines = source.splitlines(keepends=True)
    shift: dict[int, int] = {}        # 0-based row -> spaces to add (may be negative)
    frozen: set[int] = set()          # rows inside a multi-line string that is not a docstring
    comments: list[tuple[int, int]] = []  # (row, column) of comment-only rows, in order
    statements: list[tuple[int, int, int]] = []  # (first row, old column, delta)
    depth = 0
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.COMMENT and tok.line[:tok.start[1]].strip() == "":
            comments.append((tok.start[0] - 1, tok.start[1]))
        elif tok.type not in _SKIP and tok.type != tokenize.ENDMARKER:
            # a logical line: from this token to its NEWLINE
            first_row, col = tok.start[0] - 1, tok.start[1]
            delta = UNIT * depth - col
            j = i
            significant = []
            while tokens[j].type != tokenize.NEWLINE and tokens[j].type != tokenize.ENDMARKER:
                if tokens[j].type not in (tokenize.NL, tokenize.COMMENT):
                    significant.append(tokens[j])
                j += 1
            last_row = tokens[j].start[0] - 1
            docstring = all(t.type == tokenize.STRING for t in significant)
            for t in significant:
                if t.type == tokenize.STRING and t.end[0] > t.start[0] and not docstring:
                    frozen.update(range(t.start[0], t.end[0]))  # rows after the opening one
            for row in range(first_row, last_row + 1):
                shift[row] = delta
            statements.append((first_row, col, delta))
            i = j
        i += 1
    # A comment-only row outside a statement follows the next statement when it sits at that
    # statement's column, else the last statement before it at its column (a comment closing a
    # block), else the statement just before it.
    for row, col in comments:
        if row in shift:
            continue  # inside a statement's brackets: shifted with it
        after = [d for r, c, d in statements if r > row and c == col][:1]
        if after and next(c for r, c, d in statements if r > row) != col:
            after = []
        same = [d for r, c, d in statements if r < row and c == col][-1:]
        before = [d for r, c, d in statements if r < row][-1:]
        for choice in (after, same, before, [d for r, c, d in statements if r > row][:1]):
            if choice:
                shift[row] = choice[0]
                break
    out = []
    for row, line in enumerate(lines):
        delta = shift.get(row, 0)
        if row in frozen or delta == 0 or not line.strip():
            out.append(line)
        elif delta > 0:
            out.append(" " * delta + line)
        else:
            lead = len(line) - len(line.lstrip(" "))
            if lead < -delta:
                raise ValueError(f"line {row + 1}: cannot dedent by {-delta}")
            out.append(line[-delta:])
    return "".join(out)


def main(argv: list[str]) -> int:
    ap = cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="Python files; those that need it are rewritten")
    for path in ap.parse_args(argv).files:
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = reindent(old)
        if new == old:
            continue
        same_text = [a.lstrip(" ") for a in old.splitlines()] == [
            b.lstrip(" ") for b in new.splitlines()]
        if not same_text or _docstrings_cleaned(ast.parse(old)) != _docstrings_cleaned(
                ast.parse(new)):
            print(f"{path}: re-indenting would change more than indentation; left as is",
                  file=sys.stderr)
            return 1
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
