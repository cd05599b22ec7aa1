"""The house rule, checked from the source: imports point down the rooms, and no import cycles.

Ranks: read from the table in docs/ARCHITECTURE.md ("Rooms and who may import whom"). A module may import
its own room, an equal one, or a lower one; never higher. Function-level imports count for direction
(they run too). Cycles: none among module-level imports (the ones that run when a module is first
imported), and none through function-level imports either (a late import hides a cycle, it does not
remove it).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "promedical"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
SKIP = {"tests", ".venv", "data", "configs", "docs", "shared", "runs"}


def ranks_from(text: str) -> dict[str, int]:
    """room -> rank, from the markdown table rows `| room | rank | holds |` of docs/ARCHITECTURE.md."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| (\w+) \| (\d+) \|", text, re.MULTILINE)}


RANKS = ranks_from(ARCHITECTURE.read_text(encoding="utf-8"))


def source_files() -> dict[str, Path]:
    """Dotted module name (promedical.room.module) -> file, for every .py file of the rooms."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP or rel.parts[0].startswith("."):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([PACKAGE, *parts])] = path
    return out


def imported_modules(node: ast.AST, modules: dict[str, Path], here: str) -> list[tuple[int, str]]:
    """(line, module) for one import statement, resolved to modules of this package."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:                                 # relative: resolved against this module's package
            package = here.split(".")[:len(here.split(".")) - node.level + (here in _packages(modules))]
            base = ".".join([*package, base]) if base else ".".join(package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    out = []
    for name in names:
        while name and name not in modules:           # `import a.b.c` of a package-level name: nearest module
            name = name.rpartition(".")[0]
        if name.startswith(PACKAGE + ".") and name != here:
            out.append((node.lineno, name))
    return out


def _packages(modules: dict[str, Path]) -> set[str]:
    return {name for name, path in modules.items() if path.name == "__init__.py"}


def room(module: str) -> str:
    return module.split(".")[1]


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements at any depth that can run: all but those under `if TYPE_CHECKING:`."""
    out: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node):
            out += runtime_imports(ast.Module(body=node.orelse, type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        out += runtime_imports(node)
    return out


def imports(modules: dict[str, Path]) -> tuple[list[tuple[str, int, str]], dict[str, set[str]]]:
    """Every import (module, line, imported) at any depth that can run, and the module-level import graph."""
    every, graph = [], {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in runtime_imports(tree):
            every += [(name, line, target) for line, target in imported_modules(node, modules, name)]

        def top_level(body):
            for node in body:
                if isinstance(node, ast.If) and is_type_checking(node):
                    continue                          # never runs: no cycle
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    graph[name] |= {t for _, t in imported_modules(node, modules, name)}
                elif isinstance(node, (ast.If, ast.Try)):
                    for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []),
                                  *[h.body for h in getattr(node, "handlers", [])]):
                        top_level(block)
        top_level(tree.body)
    return every, graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(every: list[tuple[str, int, str]], modules: dict[str, Path]) -> list[str]:
    out = []
    for name, line, target in every:
        src, dst = room(name), room(target)
        if src in RANKS and dst in RANKS and RANKS[dst] > RANKS[src]:
            out.append(f"{modules[name].relative_to(ROOT)}:{line}: {src} ({RANKS[src]}) imports {target} "
                       f"({dst}, {RANKS[dst]})")
    return out


def late_cycles(every: list[tuple[str, int, str]], graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles through any runnable import, function-level ones included."""
    late = {name: set(targets) for name, targets in graph.items()}
    for name, _, target in every:
        late[name].add(target)
    return cycles(late)


def test_ranks_come_from_the_architecture_doc():
    assert RANKS["deploy"] > RANKS["rollout"] > RANKS["actors"] > RANKS["reward"] > RANKS["errors"] == 0
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert ranks_from(text.replace("| rollout | 6 |", "| rollout | 3 |"))["rollout"] == 3


def test_every_room_has_a_rank():
    rooms = {room(name) for name in source_files() if name.count(".") >= 1}
    assert rooms <= set(RANKS) | {"__init__"}, sorted(rooms - set(RANKS))
    on_disk = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir()
               if (p.is_dir() and any(p.glob("*.py")) or p.suffix == ".py") and p.name not in SKIP
               and not p.name.startswith(".") and p.stem != "__init__"}
    assert set(RANKS) == on_disk, "docs/ARCHITECTURE.md's rooms differ from the folders"


def test_the_readme_tour_names_every_room():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## Architecture tour", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^(\w+)(?:/|\.py) ", tour, re.MULTILINE))
    assert listed == set(RANKS), f"README's architecture tour lists {sorted(listed)}; the rooms are {sorted(RANKS)}"


def test_no_import_points_up():
    modules = source_files()
    every, _ = imports(modules)
    assert upward(every, modules) == []


def test_no_module_level_import_cycle():
    modules = source_files()
    _, graph = imports(modules)
    assert cycles(graph) == []


def test_no_cycle_hidden_by_a_late_import():
    modules = source_files()
    every, graph = imports(modules)
    assert late_cycles(every, graph) == []


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    # a fabricated tree: storage -> deploy inside a function is up; a <-> b is a cycle; c -> a with
    # a -> c only under TYPE_CHECKING is none; d -> e inside a function with e -> d is a late cycle
    names = ["storage.x", "deploy.y", "reward.a", "reward.b", "reward.c", "reward.d", "reward.e"]
    modules = {f"promedical.{n}": tmp_path / f"{n}.py" for n in names}
    text = {"storage.x": "def f():\n    from promedical.deploy.y import g\n",
            "deploy.y": "import os\n",
            "reward.a": "from promedical.reward.b import B\nif TYPE_CHECKING:\n    from promedical.reward.c import C\n",
            "reward.b": "from promedical.reward import a\n",
            "reward.c": "from promedical.reward.a import A\n",
            "reward.d": "def f():\n    from promedical.reward.e import E\n",
            "reward.e": "from promedical.reward.d import D\n"}
    for n in names:
        modules[f"promedical.{n}"].write_text(text[n])
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        every, graph = imports(modules)
        assert [u.split(": ", 1)[1] for u in upward(every, modules)] == [
            "storage (1) imports promedical.deploy.y (deploy, 8)"]
        assert cycles(graph) == [["promedical.reward.a", "promedical.reward.b"]]
        assert late_cycles(every, graph) == [["promedical.reward.a", "promedical.reward.b"],
                                             ["promedical.reward.d", "promedical.reward.e"]]
    finally:
        ROOT = saved
