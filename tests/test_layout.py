"""The architecture the design promises: no import cycles, nothing owned that should be used.

Reads the source (``ast``), so it checks what the code says, not what happens to be
imported first at run time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "smsgate"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """smsgate modules imported at run time: at module level or in functions, not under ``if TYPE_CHECKING``."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With, ast.For,
                                 ast.While)):
                visit(node.body)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("smsgate"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
                if base.startswith("smsgate"):
                    found.add(base)
                    found.update(f"{base}.{a.name}" for a in node.names)

    visit(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            # a submodule import runs its packages' __init__ too, but for the root package's and
            # for packages the importer is inside of (they are being initialised already)
            parts = imported.split(".")
            for i in range(2, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    targets.add(candidate)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_kernel_depends_on_no_driver_nor_feature_package() -> None:
    edges = graph()
    for module, targets in edges.items():
        if module.startswith("smsgate.core"):
            bad = {t for t in targets if t.startswith(("smsgate.gateway", "smsgate.campaigns", "smsgate.cli",
                                                       "smsgate.webhooks", "smsgate.contacts"))}
            assert not bad, f"{module} imports {bad}"


def test_no_private_modules_or_attributes_of_httpx() -> None:
    pattern = re.compile(r"httpx\._|from httpx\._")
    offenders = [str(p.relative_to(ROOT)) for p in [*SRC.rglob("*.py"), *(ROOT / "providers").rglob("src/**/*.py")]
                 if pattern.search(p.read_text())]
    assert offenders == []


def test_no_runtime_code_under_testing() -> None:
    """``smsgate.testing`` is for tests; nothing else in the library, nor a provider's runtime code
    (its adapter and the emulator ``smsgate sandbox`` serves), imports it."""
    edges = graph()
    users = {m for m, targets in edges.items() if any(t.startswith("smsgate.testing") for t in targets)
             and not m.startswith("smsgate.testing")}
    assert users == set()
    plugin_code = [p for p in (ROOT / "providers").glob("*/src/**/*.py")]
    assert plugin_code and not [str(p) for p in plugin_code if "smsgate.testing" in p.read_text()]
