"""The command-line convention of every tool (package, data_prep, bench):

- flags are snake_case (`--cache_root`); the kebab-case spelling (`--cache-root`) is accepted as
  an alias, and the reverse for flags declared in kebab-case;
- `--out` is where a tool writes its result (a file or a folder); older names stay aliases;
- a list flag takes comma-separated values (`--splits train,test`); space-separated values
  (`--splits train test`) are accepted too.
`ArgumentParser` below applies the first rule to every flag it is given; `add_list` the third.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence


def _aliases(names: Sequence[str]) -> tuple[str, ...]:
    out = list(names)
    for name in names:
        if name.startswith("--"):
            for alt in (name.replace("_", "-"), "--" + name[2:].replace("-", "_")):
                if alt not in out:
                    out.append(alt)
    return tuple(out)


class _AliasGroup(argparse._ArgumentGroup):
    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        return super().add_argument(*_aliases(names), **kwargs)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with snake_case flags and their kebab-case aliases (help shows both)."""

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        return super().add_argument(*_aliases(names), **kwargs)

    def add_argument_group(self, *args: Any, **kwargs: Any) -> argparse._ArgumentGroup:
        group = _AliasGroup(self, *args, **kwargs)
        self._action_groups.append(group)
        return group

    def add_mutually_exclusive_group(self, **kwargs: Any) -> argparse._MutuallyExclusiveGroup:
        group = super().add_mutually_exclusive_group(**kwargs)
        original = group.add_argument
        group.add_argument = lambda *names, **kw: original(*_aliases(names), **kw)  # type: ignore
        return group


class _ListAction(argparse.Action):
    def __init__(self, *args: Any, item_type: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.item_type = item_type

    def __call__(self, parser, namespace, values, option_string=None):
        items = split_list(values)
        try:
            setattr(namespace, self.dest, [self.item_type(v) if self.item_type else v
                                           for v in items])
        except ValueError as err:
            parser.error(f"argument {option_string}: {err}")


def add_list(parser: argparse.ArgumentParser, *names: str, default: Sequence[Any] = (),
             item_type: Any = None, help: str = "", **kwargs: Any) -> argparse.Action:
    """A list flag: `--x a,b` (or `--x a b`); the value is always a list."""
    text = f"{help} (comma-separated)" if help else "comma-separated"
    return parser.add_argument(*names, nargs="+", action=_ListAction, item_type=item_type,
                               default=list(default), help=text, **kwargs)


def split_list(value: str | Sequence[str]) -> list[str]:
    """A list flag's value as a list, whether it came as 'a,b' or ['a', 'b'] or ['a,b']."""
    values = [value] if isinstance(value, str) else list(value)
    return [v for item in values for v in str(item).split(",") if v]
