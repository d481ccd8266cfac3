"""The shape of the code, checked: layers import downward only, no import cycles, small files,
and the job record is read by attribute (only ``backend/record.py`` touches it by key).

Imports are read with ``ast`` (nothing is imported). A module-level import is an edge of the import
graph; imports inside functions and under ``TYPE_CHECKING`` are not (they run later, or never), but
they must still respect the layers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
BACKEND = REPO / "backend"
MAX_LINES = 400

# Lower layers never import higher ones. A package not listed is a leaf that imports only leaves.
LAYERS = {
    "backend.errors": 0, "backend.faults": 0, "backend.hashing": 0, "backend.paths": 0, "backend.seeds": 0, "backend.library_logging": 0,
    "backend.record": 1, "backend.spec": 1, "backend.prompting": 1,
    "backend.media": 2, "backend.models": 2, "backend.monitor": 2,
    "backend.work": 3, "backend.memory": 3,
    "backend.stages": 4,
    "backend.jobs": 5,
    "backend.cli": 6, "backend.__main__": 6, "backend.api": 6, "backend.fleet": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best = max((name for name in LAYERS if module == name or module.startswith(name + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return LAYERS[best]


def backend_imports(path: Path, package: str | None = None) -> list[tuple[str, bool]]:
    """(imported backend module, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, bool]] = []
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            elif isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names if a.name.startswith("backend"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                if base.startswith("backend"):
                    for alias in child.names:  # "from backend.stages import motion" imports a module
                        candidate = f"{base}.{alias.name}"
                        is_module = (REPO / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                            REPO / Path(*candidate.split(".")) / "__init__.py").exists()
                        found.append((candidate if is_module else base, top))
            else:
                visit(child, top)

    visit(tree, True)
    return found


SOURCES = sorted(BACKEND.rglob("*.py"))


def test_every_backend_module_is_in_a_layer_and_imports_only_downward() -> None:
    upward = []
    for path in SOURCES:
        here = module_name(path)
        for target, _ in backend_imports(path):
            if target == "backend":
                continue
            if layer(target) > layer(here):
                upward.append(f"{here} (layer {layer(here)}) imports {target} (layer {layer(target)})")
    assert upward == []


def test_no_import_cycles_among_module_level_imports() -> None:
    graph = {module_name(p): {t for t, top in backend_imports(p) if top and t != module_name(p)} for p in SOURCES}
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    for module, targets in graph.items():
        targets.difference_update({t for t in targets if t.startswith(module + ".") and
                                   (BACKEND.parent / Path(*module.split(".")) / "__init__.py").exists()})
    cycles = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                walk(target, stack + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_no_file_is_over_the_size_limit() -> None:
    files = SOURCES + sorted((REPO / "app_pages").glob("*.py")) + [REPO / "app.py"]
    long = [f"{p.relative_to(REPO)}: {len(p.read_text().splitlines())} lines" for p in files
            if len(p.read_text().splitlines()) > MAX_LINES]
    assert long == []


def test_the_job_record_is_read_by_attribute_outside_record_py() -> None:
    by_key = re.compile(r'record\[|record\.get\(|setdefault\("')
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}"
            for p in SOURCES + sorted((REPO / "app_pages").glob("*.py")) if p.name != "record.py" or p.parent != BACKEND
            for n, line in enumerate(p.read_text().splitlines(), 1) if by_key.search(line)]
    assert hits == []


def test_the_checks_see_what_they_must(tmp_path: Path) -> None:
    """The parser finds top-level, lazy and relative imports; the layers rank the job layer above stages."""
    probe = tmp_path / "probe.py"
    probe.write_text("from backend.jobs.orchestrator import VideoGenerator\n"
                     "from . import motion\n"
                     "def later():\n    from backend.cli import common\n")
    assert backend_imports(probe, package="backend.stages") == [
        ("backend.jobs.orchestrator", True), ("backend.stages.motion", True), ("backend.cli.common", False)]
    assert layer("backend.jobs.orchestrator") > layer("backend.stages.motion") > layer("backend.media.clip")
