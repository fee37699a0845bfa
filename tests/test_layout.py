"""The package's shape: imports point one way along the flow, without cycles; one error root; one settings reader.

The flow is load -> chunk -> embed -> store -> ingest / retrieve -> answer -> the Assistant facade -> what presents it
(CLI, web, evaluation, calibration). A module may import its own layer or an earlier one, never a later one; lazy
imports inside functions count too (only imports under ``if TYPE_CHECKING:`` do not).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "assistant"

# top-level module or sub-package of assistant -> its layer in the flow
LAYERS = {
    "errors": 0, "settings": 0, "types": 0,
    "normalize": 1,
    "loaders": 2,
    "chunk": 3,
    "embed": 4,
    "store": 5,
    "ingest": 6, "ingest_shared": 6,
    "retrieval": 7,
    "answering": 8, "conversation": 8,
    "assistant": 9,
    "cli": 10, "__main__": 10, "web": 10, "evaluation": 10, "calibration": 10, "__init__": 10, "terminal": 10,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that ``path`` imports (at any depth, TYPE_CHECKING blocks excluded)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "assistant":
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "assistant":
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py")]
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    assert key in LAYERS, f"{module}: place it in a layer of tests/test_layout.py"
    return LAYERS[key]


def test_no_module_imports_a_later_step_of_the_flow():
    bad = []
    for module, imported in _graph().items():
        for target in imported:
            if _layer(target) > _layer(module):
                bad.append(f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_above_can_fail(tmp_path, monkeypatch):
    """A later-layer import and a cycle, planted in a copy of the package, are both reported."""
    import shutil

    copy = tmp_path / "assistant"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "chunk.py").write_text((copy / "chunk.py").read_text(encoding="utf-8")
                                   + "\n\ndef _late():\n    from .retrieval import hybrid  # noqa\n", encoding="utf-8")
    (copy / "normalize.py").write_text((copy / "normalize.py").read_text(encoding="utf-8")
                                       + "\nfrom . import loaders  # noqa\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    with pytest.raises(AssertionError, match=r"assistant.chunk \(layer 3\) imports assistant.retrieval.hybrid"):
        test_no_module_imports_a_later_step_of_the_flow()
    (copy / "loaders.py").write_text((copy / "loaders.py").read_text(encoding="utf-8")
                                     .replace("from .normalize import", "from .normalize import normalize  # noqa\n"
                                              "from .normalize import"), encoding="utf-8")
    with pytest.raises(AssertionError, match="assistant.normalize -> assistant.loaders -> assistant.normalize"):
        test_no_import_cycles()


def test_every_exception_class_of_the_package_derives_from_assistant_error():
    import importlib

    from assistant.errors import AssistantError

    classes = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if any(b.endswith(("Error", "Exception", "Skipped")) for b in bases):
                    classes.append((_module_name(path), node.name))
    assert len(classes) >= 10
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, AssistantError), f"{module}.{name}"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "assistant", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ingest" in out.stdout and "backends" in out.stdout
