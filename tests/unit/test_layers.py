"""The packages depend one way (DESIGN.md): ``sim`` uses ``channels``, ``codec`` and
``benchmark``; ``training`` uses ``codec`` and ``benchmark``; ``benchmark`` uses ``codec``; the
codec runtime imports none of them and ``channels`` none but itself; no library module imports
``experiments``; Sionna is ``channels``' business only. The imports are read from the source (every ``import`` statement,
deferred ones inside functions included), so a violation fails here before it runs."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = {"codec", "benchmark", "training", "channels", "sim"}
RULES = {  # package -> top-level modules it must not import
    "codec": {"benchmark", "training", "sim", "channels", "experiments", "sionna"},
    "benchmark": {"training", "sim", "channels", "experiments", "sionna"},
    "training": {"sim", "channels", "experiments", "sionna"},
    "channels": LIBRARY - {"channels"} | {"experiments"},
    "sim": {"training", "experiments", "sionna"},
}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports excluded)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(RULES))
def test_packages_depend_one_way(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        hit = imported_modules(path) & RULES[package]
        if hit:
            bad[str(path.relative_to(ROOT))] = sorted(hit)
    assert not bad, f"forbidden imports: {bad}"


def test_the_rule_reader_sees_deferred_imports(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    import sionna.sys\n    from experiments.x import y\n"
                 "from . import z\n")
    assert imported_modules(p) == {"sionna", "experiments"}
