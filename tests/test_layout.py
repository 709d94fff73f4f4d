"""The package layout (DESIGN.md, "Packages"): who may import whom, read from the source with ast.

Every import counts, those inside functions too: a lazy import is still a dependency, and it still
closes a cycle. Only ``if TYPE_CHECKING:`` blocks are left out, since they never run. Today's
violations are listed in ALLOW and ALLOW_CYCLES, each with what would remove it; later work only
shrinks them, and an entry that is no longer needed fails the test, so the lists cannot go stale.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import tcpstates

PACKAGE = Path(tcpstates.__file__).parent
ROOT = "tcpstates"

SHARED = frozenset({"model", "sources", "render"})
FEATURES = frozenset(
    {
        "listing",
        "summary",
        "explain",
        "watch",
        "trace",
        "doctor",
        "export",
        "manual",
        "kill",
        "counters",
        "top",
    }
)
# The other packages and top-level modules -> what each may import besides itself. cli/ may import
# anything; a feature's rule needs more than a set of packages (see broken_rule).
MAY_IMPORT = {
    "model": frozenset({"model"}),
    "sources": frozenset({"model"}),
    "render": frozenset({"model"}),
    # The light front end builds the click command's values and hands them to the same library
    # code, the listing's and the summary's (listing/run.py, summary/run.py): never a second
    # way to list or count.
    "_fastpath": SHARED | {"listing", "summary"},
    "__main__": frozenset({"_fastpath", "cli"}),  # the entry: the fast path or the click group
}
# The cli/ modules a feature's command.py may use: the typed option values and their parsing, and
# the SIGTERM handling of commands that run until stopped; never cli.root, which imports them all.
CLI_FOR_COMMANDS = frozenset(
    f"{ROOT}.cli.{name}" for name in ("options", "dispatch", "requests", "table")
)
RULES = {
    "model": "model imports only model",
    "sources": "sources imports only model and sources",
    "render": "render imports only model and render",
    "_fastpath": "_fastpath imports only model, sources, render, listing, summary and _fastpath",
    "__main__": "__main__ imports only _fastpath and cli",
    "feature": "a feature imports only model, sources, render, itself and other features",
    "command": "nobody but cli/ and its own feature imports a feature's command module",
    "cli": (
        "a feature imports nothing of cli/ but, in its command.py, cli."
        + ", cli.".join(sorted(name.rpartition(".")[2] for name in CLI_FOR_COMMANDS))
    ),
    "click": "only cli/ and the features' command.py import click",
    "cycle": "no import cycle (every strongly connected component has one module)",
    "empty": "a package's __init__.py holds nothing but its docstring",
}

# Today's violations: (importer, imported) -> what removes it, and who. Only ever shrinks.
ALLOW: dict[tuple[str, str], str] = {}
# Today's cycles, by their modules -> what removes it, and who. Only ever shrinks.
ALLOW_CYCLES: dict[frozenset[str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


@functools.cache
def modules() -> Mapping[str, Path]:
    """Every module of the package by dotted name; a package by its own name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: all of the tree but the body of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for other in node.orelse:
                yield other
                yield from runtime_nodes(other)
            continue
        yield node
        yield from runtime_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def imports_in(name: str, is_package: bool, text: str, known: Mapping[str, object]) -> list[Import]:
    """The modules one module's source loads when it runs, with the line of each import.

    ``from a import b`` loads ``a.b`` when that is a module, and ``a`` itself for anything else.
    """
    found = []
    for node in runtime_nodes(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            names = submodules if len(submodules) == len(node.names) else [base, *submodules]
            found += [Import(name, target, node.lineno) for target in names]
    return found


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    anchor = name if is_package else name.rpartition(".")[0]
    anchor = anchor.rsplit(".", node.level - 1)[0] if node.level > 1 else anchor
    return f"{anchor}.{node.module}" if node.module else anchor


@functools.cache
def imports() -> tuple[Import, ...]:
    known = modules()
    found: list[Import] = []
    for name, path in known.items():
        text = path.read_text(encoding="utf-8")
        found += imports_in(name, path.name == "__init__.py", text, known)
    return tuple(found)


def package(name: str) -> str:
    """The package a module belongs to: ``tcpstates.doctor.checks`` -> ``doctor``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def is_command(name: str) -> bool:
    return package(name) in FEATURES and name.endswith(".command")


def broken_rule(imp: Import) -> str | None:
    """The rule (a key of RULES) this import breaks, or None."""
    source, target = package(imp.importer), package(imp.imported)
    if imp.imported.split(".")[0] == "click":
        return None if source == "cli" or is_command(imp.importer) else "click"
    if imp.imported.split(".")[0] != ROOT or target == ROOT or source in ("cli", target):
        return None  # not ours, the root's __version__, cli/ itself, or within one package
    if is_command(imp.imported):
        return "command"
    if source in FEATURES and target == "cli":
        return None if is_command(imp.importer) and imp.imported in CLI_FOR_COMMANDS else "cli"
    if source in FEATURES:
        return None if target in SHARED | FEATURES else "feature"
    if source not in MAY_IMPORT:
        raise AssertionError(f"{imp.importer}: no rule for package {source!r} in MAY_IMPORT")
    return None if target in MAY_IMPORT[source] else source


@functools.cache
def violations() -> Mapping[tuple[str, str], str]:
    """(importer, imported) -> one line naming the module, the import and the rule it breaks."""
    found: dict[tuple[str, str], str] = {}
    for imp in imports():
        rule = broken_rule(imp)
        if rule is not None and (imp.importer, imp.imported) not in found:
            where = modules()[imp.importer].relative_to(PACKAGE.parent)
            found[imp.importer, imp.imported] = (
                f"{imp.importer} ({where}:{imp.line}) imports {imp.imported}: {RULES[rule]}"
            )
    return found


def strongly_connected(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so that no graph depth meets the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    cut = stack.index(node)
                    found.append(set(stack[cut:]))
                    del stack[cut:]
            elif nxt not in index:
                index[nxt] = low[nxt] = len(index)
                stack.append(nxt)
                work.append((nxt, iter(sorted(graph[nxt]))))
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
    return found


def cycles_in(found: tuple[Import, ...], names: Iterator[str]) -> Mapping[frozenset[str], str]:
    """Each cycle (a strongly connected component of more than one module) -> its imports."""
    graph: dict[str, set[str]] = {name: set() for name in names}
    lines: dict[tuple[str, str], int] = {}
    for imp in found:
        if imp.imported in graph and imp.imported != imp.importer:
            graph[imp.importer].add(imp.imported)
            lines.setdefault((imp.importer, imp.imported), imp.line)
    cycles = {}
    for part in strongly_connected(graph):
        if len(part) > 1:
            edges = sorted(f"{a}:{lines[a, b]} imports {b}" for a in part for b in graph[a] & part)
            cycles[frozenset(part)] = f"{RULES['cycle']}: " + "; ".join(edges)
    return cycles


@functools.cache
def cycles() -> Mapping[frozenset[str], str]:
    return cycles_in(imports(), iter(modules()))


def test_imports_follow_the_layers() -> None:
    broken = [line for key, line in sorted(violations().items()) if key not in ALLOW]
    assert not broken, "\n".join(broken)


def test_no_import_cycle() -> None:
    broken = sorted(line for key, line in cycles().items() if key not in ALLOW_CYCLES)
    assert not broken, "\n".join(broken)


def test_allow_lists_hold_only_what_is_still_needed() -> None:
    stale = [f"ALLOW {key}: fixed; remove the entry" for key in ALLOW.keys() - violations().keys()]
    stale += [
        f"ALLOW_CYCLES {sorted(key)}: gone; remove the entry"
        for key in ALLOW_CYCLES.keys() - cycles().keys()
    ]
    assert not stale, "\n".join(sorted(stale))


def test_package_inits_are_empty() -> None:
    """Importing any module runs its package's __init__ first: empty, it costs nothing."""
    for name, path in modules().items():
        if path.name != "__init__.py":
            continue
        body = ast.parse(path.read_text(encoding="utf-8")).body
        code = body[1:] if body and isinstance(body[0], ast.Expr) else body
        if name == ROOT:  # the version, read by --version and by the wheel's build
            code = [node for node in code if not _is_version(node)]
        assert not code, f"{name} ({path.name}:{code[0].lineno}) has code: {RULES['empty']}"


def _is_version(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    )


# The checker itself, on small sources: each of these is a way the rules above could go blind.

KNOWN = dict.fromkeys(["t", "t.a", "t.a.b", "t.a.c", "t.d"])
SAMPLE = """
from typing import TYPE_CHECKING
import os
from . import c
from .c import thing
from .. import d
if TYPE_CHECKING:
    from t.d import Hidden
else:
    import t.d
def later():
    from t.a.b import x
    if True:
        import t.a.c as cc
"""


def test_imports_in_sees_lazy_and_relative_imports_and_skips_type_checking() -> None:
    found = imports_in("t.a.b", False, SAMPLE, KNOWN)
    assert [(imp.imported, imp.line) for imp in found] == [
        ("typing", 2),
        ("os", 3),
        ("t.a.c", 4),
        ("t.a.c", 5),
        ("t.d", 6),
        ("t.d", 10),
        ("t.a.b", 12),
        ("t.a.c", 14),
    ]


def test_relative_import_in_a_package_init_starts_from_that_package() -> None:
    found = imports_in("t.a", True, "from . import b\nfrom .b import x, y\n", KNOWN)
    assert [imp.imported for imp in found] == ["t.a.b", "t.a.b"]


@pytest.mark.parametrize(
    ("importer", "imported", "rule"),
    [
        ("tcpstates.model.tunables", "tcpstates.sources.kernel", "model"),
        ("tcpstates.model.states", "tcpstates.model.i18n", None),
        ("tcpstates.sources.netlink", "tcpstates.render.safe", "sources"),
        ("tcpstates.render.table", "tcpstates.doctor.checks", "render"),
        ("tcpstates.doctor.checks", "tcpstates.render.columns", None),
        ("tcpstates.doctor.checks", "tcpstates.explain.sockets", None),
        ("tcpstates.doctor.checks", "tcpstates.explain.command", "command"),
        ("tcpstates.doctor.command", "tcpstates.doctor.command", None),
        ("tcpstates.doctor.checks", "tcpstates.doctor.command", None),
        ("tcpstates.doctor.checks", "tcpstates._fastpath.run", "feature"),
        ("tcpstates.doctor.command", "tcpstates.cli.options", None),
        ("tcpstates.doctor.command", "tcpstates.cli.root", "cli"),
        ("tcpstates.doctor.checks", "tcpstates.cli.options", "cli"),
        ("tcpstates.cli.root", "tcpstates.explain.command", None),
        ("tcpstates._fastpath.run", "tcpstates.summary.run", None),
        ("tcpstates._fastpath.run", "tcpstates.doctor.run", "_fastpath"),
        ("tcpstates._fastpath.parse", "tcpstates.sources.place", None),
        ("tcpstates.__main__", "tcpstates.cli.root", None),
        ("tcpstates.__main__", "tcpstates.model.states", "__main__"),
        ("tcpstates.cli.root", "tcpstates", None),
        ("tcpstates.cli.options", "click", None),
        ("tcpstates.export.command", "click", None),
        ("tcpstates.export.render", "click", "click"),
        ("tcpstates.render.table", "click", "click"),
    ],
)
def test_rules(importer: str, imported: str, rule: str | None) -> None:
    assert broken_rule(Import(importer, imported, 1)) == rule


def test_a_module_outside_every_rule_fails() -> None:
    with pytest.raises(AssertionError, match="no rule for package 'newthing'"):
        broken_rule(Import("tcpstates.newthing.x", "tcpstates.model.states", 1))


def test_cycles_are_found_through_lazy_imports_and_named_with_their_lines() -> None:
    edges = (Import("a", "b", 3), Import("b", "c", 7), Import("c", "a", 9), Import("c", "d", 1))
    found = cycles_in(edges, iter("abcd"))
    assert found == {
        frozenset("abc"): f"{RULES['cycle']}: a:3 imports b; b:7 imports c; c:9 imports a"
    }
    assert cycles_in(edges[:2], iter("abcd")) == {}
