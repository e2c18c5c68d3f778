"""The packages of capas import only packages below them (docs/CORE.md), and never in a cycle.

Every ``import`` in ``capas/`` counts: at module level, inside functions, under
``TYPE_CHECKING``. A new top-level module or package must be given its rank here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "capas"

#: bottom to top, as in docs/CORE.md; packages on one line share a rank and import neither each other
LAYERS = [
    ("errors", "defaults"),
    ("limits",),
    ("rng",),
    ("objectives",),
    ("data",),
    ("augment",),
    ("layers",),
    ("notation",),
    ("models",),
    ("backprop",),
    ("fast",),
    ("train",),
    ("tasks",),
    ("diagnostics",),
    ("api",),
    ("playground", "sklearn"),
    ("cli",),
]
RANK = {f"capas.{name}": rank for rank, names in enumerate(LAYERS) for name in names}
#: the package's front door (lazy re-exports, checked by tests/test_api.py)
EXEMPT = {"capas/__init__.py"}


def package_of(module: str) -> str:
    """``capas.train.loop`` -> ``capas.train``; the root ``capas`` stays ``capas``."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) of every capas import in ``path``, a module of ``package`` (relative
    imports resolve against it); ``from capas import x`` names ``capas.x`` when x is a
    submodule, else the root ``capas``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source == "capas":
                for alias in node.names:
                    sub = ROOT / alias.name
                    named = sub.is_dir() or sub.with_suffix(".py").is_file()
                    found.append((node.lineno, f"capas.{alias.name}" if named else "capas"))
            else:
                found.append((node.lineno, source))
    return [(line, name) for line, name in found if name == "capas" or name.startswith("capas.")]


def package_imports() -> dict[str, list[tuple[str, int, str]]]:
    """package -> [(file, line, imported package)] for every other capas package imported."""
    edges: dict[str, list[tuple[str, int, str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).as_posix()
        if relative in EXEMPT:
            continue
        name = module_name(path)
        source = package_of(name)
        for line, module in imported_modules(path, name if path.name == "__init__.py" else name.rpartition(".")[0]):
            target = package_of(module)
            if target != source:
                edges.setdefault(source, []).append((relative, line, target))
    return edges


def test_every_module_belongs_to_a_ranked_package():
    unranked = sorted(
        {package_of(module_name(p)) for p in ROOT.rglob("*.py") if p.relative_to(ROOT.parent).as_posix() not in EXEMPT}
        - set(RANK)
    )
    assert unranked == [], f"give these packages a rank in LAYERS (and docs/CORE.md): {unranked}"


def test_no_package_imports_a_package_above_it():
    upward = [
        f"{file}:{line}: {source} imports {target}"
        for source, imports in package_imports().items()
        for file, line, target in imports
        if RANK.get(target, len(LAYERS)) >= RANK.get(source, -1)
    ]
    assert upward == [], "imports against the layering:\n" + "\n".join(upward)


def test_no_import_cycles_between_packages():
    graph = {source: {target for _, _, target in imports} for source, imports in package_imports().items()}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == [], "import cycles between packages:\n" + "\n".join(sorted(set(cycles)))


def test_the_checker_sees_function_level_relative_and_root_imports(tmp_path):
    probe = ROOT / "train" / "loop.py"
    lines = {name for _, name in imported_modules(probe, "capas.train")}
    assert "capas.train.config" in lines and "capas.rng" in lines
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from capas.api import fit\n\nfrom capas import defaults, fit\n"
        "from . import rundir\nfrom ..models import build\n"
    )
    assert sorted(name for _, name in imported_modules(source, "capas.train")) == [
        "capas",
        "capas.api",
        "capas.defaults",
        "capas.models",
        "capas.train",
    ]
