"""The import contract: which package of ours may import which, and no cycles.

The table is `LAYERS` below; the README's architecture section shows the same table and a
test keeps the two equal. Imports are read from the source with `ast` (lazy imports inside
functions count; imports under `if TYPE_CHECKING:` count for the layers but not for cycles,
since they never run).
"""

from __future__ import annotations

import ast
import doctest
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "forewarn"

VOCABULARY = "forewarn"
SURFACE = "forewarn (public API)"
"""`forewarn/__init__.py`: names load lazily from every layer (see its docstring)."""

LAYERS: dict[str, frozenset[str]] = {
    VOCABULARY: frozenset(),
    "forewarn.detectors": frozenset({VOCABULARY}),
    "forewarn.connectors": frozenset({VOCABULARY}),
    "forewarn.outreach": frozenset({VOCABULARY}),
    "forewarn.demo": frozenset({VOCABULARY}),
    "forewarn.reports": frozenset({VOCABULARY, "forewarn.demo"}),
    "forewarn.flows": frozenset({VOCABULARY, "forewarn.detectors", "forewarn.connectors", "forewarn.outreach",
                                 "forewarn.demo", "forewarn.reports"}),
    "forewarn.cli": frozenset({VOCABULARY, "forewarn.detectors", "forewarn.connectors", "forewarn.outreach",
                               "forewarn.demo", "forewarn.reports", "forewarn.flows", "forewarn.web"}),
    "forewarn.web": frozenset({VOCABULARY, "forewarn.detectors", "forewarn.connectors", "forewarn.outreach",
                               "forewarn.demo", "forewarn.reports", "forewarn.flows"}),
}
FOLDERS = {"forewarn.detectors": "detectors", "forewarn.connectors": "connectors", "forewarn.outreach": "outreach",
           "forewarn.demo": "demo", "forewarn.reports": "reports", "forewarn.flows": "flows", "forewarn.cli": "cli",
           "forewarn.web": "web"}
"""Where each layer lives in the repository: the card's folders stay at the top, linked from forewarn/."""

OLD_ROOTS = frozenset({"connectors", "detectors", "outreach", "flows", "demo", "reports", "cli", "web"})

PURE_LAYERS = frozenset({VOCABULARY, "forewarn.detectors", "forewarn.outreach", "forewarn.demo", "forewarn.reports"})
"""Layers that talk to no server: they reach the outside only through the interfaces."""
IO_CLIENTS = frozenset({"bytewax", "redis", "confluent_kafka", "twilio", "smtplib", "aiosmtpd", "jinja2",
                        "socket", "http.client", "urllib.request"})
DOCTEST_SEAM = "forewarn.connectors.memory"
"""Doctests may show a unit with the in-process twins (the documented seam for tests); nothing else crosses."""


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    type_only: bool
    in_doctest: bool = False


def layer_of(module: str) -> str:
    if module == "forewarn":
        return SURFACE
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} is outside forewarn")


def source_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the installed tree, named as Python imports it (links followed)."""
    modules = {}
    for folder, _, files in os.walk(package, followlinks=True):
        parts = Path(folder).relative_to(package.parent).parts
        for name in files:
            if name.endswith(".py"):
                stem = name.removesuffix(".py")
                modules[".".join(parts if stem == "__init__" else (*parts, stem))] = Path(folder) / name
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _dynamic_target(node: ast.Call) -> str | None:
    """The module an `importlib.import_module("...")` or `__import__("...")` call names, if a literal."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return None


def imports_of(module: str, source: str, is_package: bool = False, in_doctest: bool = False) -> Iterator[Import]:
    """Every import of `module`, anywhere in it (also `import_module("...")` calls and the `>>>` examples
    of its docstrings), with absolute target names."""
    tree = ast.parse(source)
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            type_only_lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if hasattr(n, "lineno")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, node.lineno in type_only_lines, in_doctest)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield Import(module, f"{base}.{alias.name}", node.lineno, node.lineno in type_only_lines, in_doctest)
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)) is not None:
            yield Import(module, target, node.lineno, False, in_doctest)
        elif not in_doctest and isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _doctest_imports(module, node)


def _doctest_imports(module: str, node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                     ) -> Iterator[Import]:
    docstring = ast.get_docstring(node, clean=False)
    if not docstring:
        return
    for example in doctest.DocTestParser().get_examples(docstring):
        try:
            found = list(imports_of(module, example.source, in_doctest=True))
        except SyntaxError:
            continue
        for imp in found:
            yield Import(module, imp.target, (getattr(node, "lineno", 1)) + example.lineno, False, True)


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module of ours an import names (`from a.b import c` is module a.b.c or name c of a.b)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def read_graph(modules: dict[str, Path]) -> list[Import]:
    edges = []
    for module, path in sorted(modules.items()):
        for imp in imports_of(module, path.read_text(), path.name == "__init__.py"):
            root = imp.target.split(".")[0]
            if root in OLD_ROOTS:
                edges.append(imp)  # reported by test_every_import_goes_through_forewarn
            target = resolve(imp.target, modules)
            if target is None:
                edges.append(imp)  # another package's: see io_violations
            elif target != module:
                edges.append(Import(module, target, imp.line, imp.type_only, imp.in_doctest))
    return edges


def violations(edges: list[Import]) -> list[str]:
    """Each import that crosses the table the wrong way, as `importer:line -> target (layer -> layer)`."""
    found = []
    for e in edges:
        if e.target.split(".")[0] != "forewarn":
            continue
        source, target = layer_of(e.importer), layer_of(e.target)
        if source in (SURFACE, target) or (e.in_doctest and e.target == DOCTEST_SEAM):
            continue
        if target == SURFACE or target not in LAYERS[source]:
            found.append(f"{e.importer}:{e.line} -> {e.target} ({source} may not import {target})")
    return found


def io_violations(edges: list[Import]) -> list[str]:
    """Each import of a server client (Bytewax, Redis, Kafka, Twilio, SMTP, ...) from a layer that must not talk
    to servers."""
    found = []
    for e in edges:
        if e.target.split(".")[0] == "forewarn" or e.in_doctest:
            continue
        layer = layer_of(e.importer)
        if layer in PURE_LAYERS and any(e.target == c or e.target.startswith(c + ".") for c in IO_CLIENTS):
            found.append(f"{e.importer}:{e.line} -> {e.target} ({layer} talks to no server)")
    return found


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected groups of modules (Tarjan), over the imports that run."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if not e.type_only and not e.in_doctest and e.target.split(".")[0] == "forewarn":
            graph.setdefault(e.importer, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return source_modules()


@pytest.fixture(scope="module")
def edges(modules: dict[str, Path]) -> list[Import]:
    return read_graph(modules)


def test_every_layer_is_a_folder_at_the_top_linked_from_forewarn(modules: dict[str, Path]) -> None:
    for layer, folder in FOLDERS.items():
        link = PACKAGE / layer.removeprefix("forewarn.")
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), f"{link} should link to ../{folder}"
        assert layer in modules, f"{folder}/__init__.py is missing"
    assert {layer_of(m) for m in modules} == {SURFACE, *LAYERS}


def test_every_import_goes_through_forewarn(edges: list[Import]) -> None:
    bare = [f"{e.importer}:{e.line} imports {e.target}" for e in edges if e.target.split(".")[0] in OLD_ROOTS]
    assert not bare, "import these as forewarn.<folder>: " + "; ".join(bare)


def test_imports_follow_the_table(edges: list[Import]) -> None:
    assert edges, "no imports were read"
    assert any(e.in_doctest for e in edges), "no doctest imports were read"
    assert not violations(edges), "\n".join(violations(edges))


def test_pure_layers_import_no_server_client(edges: list[Import]) -> None:
    assert not io_violations(edges), "\n".join(io_violations(edges))


def test_tests_and_benchmarks_import_through_forewarn() -> None:
    bare = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for imp in imports_of(path.stem, path.read_text()):
                if imp.target.split(".")[0] in OLD_ROOTS:
                    bare.append(f"{path.relative_to(ROOT)}:{imp.line} imports {imp.target}")
    assert not bare, "import these as forewarn.<folder> (a bare name loads a second copy): " + "; ".join(bare)


def shortest_loop(group: list[str], edges: list[Import]) -> list[str]:
    """The shortest chain of runtime imports from the group's first module back to itself."""
    members = set(group)
    graph: dict[str, set[str]] = {}
    for e in edges:
        if not e.type_only and e.importer in members and e.target in members:
            graph.setdefault(e.importer, set()).add(e.target)
    start = group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return group


def test_no_import_cycles(edges: list[Import]) -> None:
    found = cycles(edges)
    assert not found, "import cycles: " + "; ".join(" -> ".join(shortest_loop(g, edges)) for g in found)


def test_the_checks_fail_on_a_back_edge_and_a_cycle() -> None:
    back = Import("forewarn.records", "forewarn.flows.wiring", 1, False)
    assert violations([back]) == [
        "forewarn.records:1 -> forewarn.flows.wiring (forewarn may not import forewarn.flows)"]
    side = Import("forewarn.detectors.topic", "forewarn.outreach.incidents", 7, False)
    assert violations([side]) == [
        "forewarn.detectors.topic:7 -> forewarn.outreach.incidents (forewarn.detectors may not import "
        "forewarn.outreach)"]
    loop = [Import("forewarn.flows.a", "forewarn.flows.b", 1, False), Import("forewarn.flows.b", "forewarn.flows.a",
                                                                              1, False)]
    assert cycles(loop) == [["forewarn.flows.a", "forewarn.flows.b"]]
    assert shortest_loop(["forewarn.flows.a", "forewarn.flows.b"], loop) == [
        "forewarn.flows.a", "forewarn.flows.b", "forewarn.flows.a"]
    assert cycles([Import(e.importer, e.target, e.line, True) for e in loop]) == [], "type-only imports never run"


def test_lazy_relative_dynamic_and_doctest_imports_are_read_and_judged() -> None:
    source = ('"""Doc.\n\n>>> from forewarn.outreach import planner\n"""\n'
              "def f():\n    from forewarn.flows import wiring\nfrom . import stats\nfrom .records import Case\n"
              "importlib.import_module('forewarn.connectors.redis_index')\nimport redis\n")
    modules = {m: Path() for m in ("forewarn.settings", "forewarn.stats", "forewarn.records", "forewarn.flows.wiring",
                                   "forewarn.outreach.planner", "forewarn.connectors.redis_index")}
    found = [imp for imp in imports_of("forewarn.settings", source)]
    assert {(i.target, i.line, i.in_doctest) for i in found} == {
        ("forewarn.outreach.planner", 3, True), ("forewarn.flows.wiring", 6, False), ("forewarn.stats", 7, False),
        ("forewarn.records.Case", 8, False), ("forewarn.connectors.redis_index", 9, False), ("redis", 10, False)}
    edges = [Import(i.importer, resolve(i.target, modules) or i.target, i.line, i.type_only, i.in_doctest)
             for i in found]
    assert violations(edges) == [
        "forewarn.settings:3 -> forewarn.outreach.planner (forewarn may not import forewarn.outreach)",
        "forewarn.settings:6 -> forewarn.flows.wiring (forewarn may not import forewarn.flows)",
        "forewarn.settings:9 -> forewarn.connectors.redis_index (forewarn may not import forewarn.connectors)"]
    assert io_violations(edges) == ["forewarn.settings:10 -> redis (forewarn talks to no server)"]


def readme_table() -> dict[str, frozenset[str]]:
    """The "may import" table of the README's architecture section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    table = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`forewarn[a-z.]*`", cells[0]):
            table[cells[0].strip("`")] = frozenset(re.findall(r"`(forewarn[a-z.]*)`", cells[-1]))
    return table


def test_the_readme_shows_the_table_as_the_code_holds_it() -> None:
    assert readme_table() == LAYERS


def test_the_public_api_loads_lazily_and_completely() -> None:
    code = ("import sys, forewarn\n"
            "assert 'bytewax' not in sys.modules and 'forewarn.records' not in sys.modules\n"
            "assert set(forewarn.__all__) == {'__version__', *forewarn._EXPORTS}\n"
            "missing = [n for n in forewarn.__all__ if getattr(forewarn, n, None) is None]\n"
            "assert not missing, missing\n"
            "print(forewarn.__version__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", done.stdout)
