"""One dataclass per training stage: its fields are the stage's flags and its model-card
record, so a hyperparameter is declared once.

    @dataclass
    class PriorConfig(StageConfig):
        run: str = option(None, "run folder", required=True)
        steps: int = option(30000, "steps to reach", positive=True)

    PriorConfig.add_arguments(parser)          # --run, --steps …
    cfg = PriorConfig.from_args(parser.parse_args())
    card["config"] = cfg.record()              # every field, as JSON

A field's flag is ``--`` + its name with ``-`` for ``_``; its type comes from ``type`` or the
default's type; a ``bool`` defaulting to False is a switch; a tuple default takes several
values. ``cli=False`` keeps a field out of the command line (set from code only).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["option", "StageConfig", "positive"]


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse type: ``kind(text)`` that must be > 0."""
    def parse(text: str):
        v = kind(text)
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v
    parse.__name__ = kind.__name__
    return parse


def option(default: Any, help: str, *, type: Callable | None = None, required: bool = False,
           choices: Sequence | None = None, metavar: str | None = None, positive: bool = False,
           cli: bool = True, flag: str | None = None, many: bool = False) -> Any:
    """A dataclass field with its command-line description (module docstring); ``flag``
    overrides the flag's name (e.g. ``--hci`` for ``hci_root``); ``many``: the flag takes one or
    more values (a tuple), also when the default is None."""
    meta = dict(help=help, type=type, required=required, choices=choices, metavar=metavar,
                positive=positive, cli=cli, flag=flag, many=many)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class StageConfig:
    """Base of the stage configs (module docstring)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
        """Add one flag per field (``skip``: fields the caller adds itself)."""
        for f in dataclasses.fields(cls):
            m = f.metadata
            if not m.get("cli", True) or f.name in skip:
                continue
            flag = m.get("flag") or "--" + f.name.replace("_", "-")
            default = f.default
            kw: dict[str, Any] = {"help": (m.get("help") or "").replace("%", "%%"),
                                  "dest": f.name}
            if m.get("required"):
                kw["required"] = True
            else:
                kw["default"] = default
                if default not in (None, False):
                    kw["help"] = f"{kw['help']} (default: %(default)s)"
            if isinstance(default, bool) and m.get("type") is None:
                parser.add_argument(flag, action="store_false" if default else "store_true",
                                    **kw)
                continue
            kind = m.get("type") or (type(default[0]) if isinstance(default, tuple) and default
                                     else
                                     type(default) if default is not None else str)
            kw["type"] = positive(kind) if m.get("positive") else kind
            if isinstance(default, tuple) or m.get("many"):
                kw["nargs"] = "+"
            for key in ("choices", "metavar"):
                if m.get(key) is not None:
                    kw[key] = m[key]
            parser.add_argument(flag, **kw)

    @classmethod
    def from_args(cls, ns: argparse.Namespace, **overrides):
        """The config of parsed flags (fields without a flag keep their defaults)."""
        values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)
                  if hasattr(ns, f.name)}
        for f in dataclasses.fields(cls):
            if isinstance(values.get(f.name), list):
                values[f.name] = tuple(values[f.name])
        return cls(**{**values, **overrides})

    def record(self) -> dict:
        """Every field as JSON-ready values (paths as strings, tuples as lists)."""
        def plain(v):
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            return v
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def command_line(self, prefix: str) -> str:
        """``prefix`` and the flags that reproduce this config (required fields and every
        field that differs from its default), shell-quoted."""
        import shlex

        words = prefix.split()
        for f in dataclasses.fields(self):
            m, v = f.metadata, getattr(self, f.name)
            if not m.get("cli", True) or (v == f.default and not m.get("required")):
                continue
            flag = m.get("flag") or "--" + f.name.replace("_", "-")
            if isinstance(v, bool):
                words.append(flag)
            elif isinstance(v, (tuple, list)):
                words += [flag, *map(str, v)]
            else:
                words += [flag, str(v)]
        return shlex.join(words)

    def replace(self, **changes):
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def check(self):
        """Raise a ValueError naming the first inconsistent setting; returns ``self``."""
        return self
