"""The package's layers, as the README's architecture section lists them: every import (module level or inside a
function) goes to the importing module's own package or to a lower layer, and no two packages import each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import CONTAINER, ROOT

PACKAGE = CONTAINER / "byoa"


def readme_layers() -> dict[str, int]:
    """Top-level name under byoa (package or module) -> its layer number, from the README's layer table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- layers:start -->")[1].split("<!-- layers:end -->")[0]
    layers = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for name in re.findall(r"`([\w.]+)`", cells[1]):
                layers[name.removesuffix("/").removesuffix(".py")] = int(cells[0])
    return layers


def imports(path: Path) -> set[str]:
    """Absolute byoa.* names imported anywhere in the file."""
    module = ".".join(path.relative_to(CONTAINER).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("byoa"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("byoa"))
    return found


def top(name: str) -> str:
    """'byoa.data.blocks' -> 'data'; 'byoa' or 'byoa.__version__' -> '__init__' (the package itself, the lowest layer)."""
    parts = name.split(".")
    if len(parts) > 1 and ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").exists()):
        return parts[1]
    return "__init__"


def test_every_module_belongs_to_a_listed_layer():
    layers = readme_layers()
    names = {top(".".join(p.relative_to(CONTAINER).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    names.discard("__init__")
    assert names - set(layers) == set(), "add these to the README's layer table"


def test_no_import_climbs_a_layer_or_crosses_to_a_package_of_the_same_layer():
    layers = {**readme_layers(), "__init__": 0}
    edges = set()
    problems = []
    for path in PACKAGE.rglob("*.py"):
        source = top(".".join(path.relative_to(CONTAINER).with_suffix("").parts))
        for target in imports(path):
            to = top(target)
            if to == source:
                continue
            edges.add((source, to))
            same_core = layers[source] == layers[to] == min(layers.values()) + 1
            if layers[to] > layers[source] or (layers[to] == layers[source] and not same_core):
                problems.append(f"{path.relative_to(CONTAINER)} imports {target} (layer {layers[to]} from layer {layers[source]})")
    assert problems == []
    cycles = [(a, b) for a, b in edges if (b, a) in edges]
    assert cycles == []


def test_the_check_sees_imports_inside_functions():
    found = imports(PACKAGE / "serving" / "app.py")
    assert "byoa.algorithms" in found or "byoa.algorithms.model_from_artifacts" in found  # imported in load_model()
