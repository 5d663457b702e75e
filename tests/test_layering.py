"""The package's layering: every cvlab module sits on one floor, and a module imports only from
its own floor or below (deferred imports inside functions included, type-only imports under
`if TYPE_CHECKING:` not); no module imports itself back through others (no import cycles);
and composing a config loads no training code and no torch.

Floors, bottom up:
    0 foundation  errors, paths, validation, defaults, vocab, progress, images, ext, layers,
                  metrics, gradcheck, data, records (run folders, checkpoints, weights files)
    1 schemas     the config dataclasses (cvlab.config.train, cvlab.config.commands)
    2 engine      cvlab.train: the loop, the Solver, the captioning solver, the torch trainer
    3 families    cvlab.families: how each kind of model trains (plug-ins of the run core)
    4 models      cvlab.models: the model types, their schemas and code, the registry
    5 config      composing and typing configs with Hydra (cvlab.config.typed/compose/store)
    6 run core    cvlab.run: train, resume, evaluate a run folder
    7 commands    cvlab.commands, cvlab.plot, cvlab.checks, cvlab.bench
    8 cli         cvlab.cli, cvlab.__main__
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cvlab

PACKAGE = Path(cvlab.__file__).parent

FLOORS = (  # (floor, module name or prefix ending in "."), the longest match wins
    (0, "cvlab"), (0, "cvlab.errors"), (0, "cvlab.paths"), (0, "cvlab.validation"),
    (0, "cvlab.defaults"), (0, "cvlab.vocab"), (0, "cvlab.progress"), (0, "cvlab.images"),
    (0, "cvlab.ext"), (0, "cvlab.ext."), (0, "cvlab.layers"), (0, "cvlab.layers."),
    (0, "cvlab.metrics"), (0, "cvlab.metrics."), (0, "cvlab.gradcheck"), (0, "cvlab.data"),
    (0, "cvlab.data."), (0, "cvlab.records"), (0, "cvlab.records."),
    (1, "cvlab.config"), (1, "cvlab.config.train"), (1, "cvlab.config.commands"),
    (2, "cvlab.train"), (2, "cvlab.train."),
    (3, "cvlab.families"), (3, "cvlab.families."),
    (4, "cvlab.models"), (4, "cvlab.models."),
    (5, "cvlab.config."),
    (6, "cvlab.run"), (6, "cvlab.run."),
    (7, "cvlab.commands"), (7, "cvlab.commands."), (7, "cvlab.plot"), (7, "cvlab.plot."),
    (7, "cvlab.checks"), (7, "cvlab.checks."), (7, "cvlab.bench"), (7, "cvlab.bench."),
    (7, "cvlab.reproduce"), (7, "cvlab.reproduce."),
    (7, "cvlab.impl"), (7, "cvlab.impl."), (0, "cvlab.impl.wire"), (0, "cvlab.impl.course"),
    (0, "cvlab.impl.child"),
    (8, "cvlab.cli"), (8, "cvlab.cli."), (8, "cvlab.__main__"),
)


def floor_of(module: str) -> int | None:
    """The floor of a module (the longest entry of FLOORS naming it or a package above it)."""
    best: tuple[int, int] | None = None
    for floor, name in FLOORS:
        matches = module == name or (name.endswith(".") and module.startswith(name))
        if matches and (best is None or len(name) > best[0]):
            best = (len(name), floor)
    return None if best is None else best[1]


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The cvlab modules `name` imports anywhere in its file (not under TYPE_CHECKING)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[:len(package) - child.level + 1]
                    base = ".".join([*package, base] if base else package)
                for alias in child.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in known else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    result = set()
    for target in found:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target.startswith("cvlab") and target != name:
            result.add(target)
    return result


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(package)
    return {name: imports(name, path, known) for name, path in known.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) where the imported module sits on a higher floor."""
    return sorted((a, b) for a, targets in edges.items() for b in targets
                  if floor_of(b) is not None and floor_of(a) is not None
                  and floor_of(b) > floor_of(a))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected sets of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_every_module_has_a_floor():
    assert [name for name in modules() if floor_of(name) is None] == []


def test_no_module_imports_from_a_floor_above_its_own():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checker_sees_upward_imports_and_cycles():
    edges = {"cvlab.layers.affine": {"cvlab.cli"}, "cvlab.cli": {"cvlab.layers.affine"}}
    assert upward_imports(edges) == [("cvlab.layers.affine", "cvlab.cli")]
    assert cycles(edges) == [["cvlab.cli", "cvlab.layers.affine"]]


def test_composing_a_config_loads_no_training_code_and_no_torch():
    code = ("import sys; import cvlab.config.compose, cvlab.config.typed, cvlab.models.registry;"
            "from cvlab.models.registry import model_types; model_types();"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "cvlab.models.fc_net" in loaded and "cvlab.families.torch" in loaded  # it did load
    heavy = [name for name in loaded if name == "torch" or name.startswith((
        "torch.", "cvlab.train.core", "cvlab.train.solver", "cvlab.train.caption",
        "cvlab.train.torch", "cvlab.run", "cvlab.plot", "cvlab.cli", "cvlab.commands", "rich"))]
    assert heavy == []
