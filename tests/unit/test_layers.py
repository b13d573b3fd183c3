"""The layout keeps its rules (README, Layout): read off the import statements of rag/ and ingest/ with ast.

- ingest/ never imports rag/ (rag -> ingest, one way);
- the use cases (rag/services) import ports and one another, never the adapters (rag/components), the server,
  the runtime or the entry points; the adapters import no use case; only the runtime and the entry points
  (cli, evaluation, server's app factory through the runtime) name concrete classes;
- the base (rag.ports, rag.words, rag.settings) imports nothing of rag above it;
- no import cycle between modules, nor between layers;
- no folder holds more than ten modules.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rag", "ingest")
BASE = ("rag.ports", "rag.words", "rag.settings")
# Layer by module prefix, lowest first; a module belongs to the longest prefix that matches it.
LAYERS = {
    "ingest": "ingest",
    "rag.ports": "base",
    "rag.words": "base",
    "rag.settings": "base",
    "rag.components": "components",
    "rag.services": "services",
    "rag.server": "server",
    "rag.runtime": "runtime",
    "rag.evaluation": "entry points",
    "rag.cli": "entry points",
    "rag.sync": "entry points",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every rag/ingest module this file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in PACKAGES:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES}
    return found


def the_graph() -> dict[str, set[str]]:
    return {
        module_name(path): imports_of(path) for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
    }


GRAPH = the_graph()


def layer_of(module: str) -> str:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert prefix is not None, f"{module} is in no layer: add it to LAYERS"
    return LAYERS[prefix]


def offenders(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module == importer or module.startswith(importer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


def test_the_graph_is_read():
    assert "rag.services.answering" in GRAPH and "rag.ports" in GRAPH["rag.services.answering"]
    assert len(GRAPH) > 60


def test_ingest_never_imports_rag():
    assert offenders("ingest", ("rag",)) == []


def test_services_never_import_components_server_or_the_root():
    above = ("rag.components", "rag.server", "rag.runtime", "rag.evaluation", "rag.cli")
    assert offenders("rag.services", above) == []


def test_components_never_import_services_server_or_the_root():
    above = ("rag.services", "rag.server", "rag.runtime", "rag.evaluation", "rag.cli")
    assert offenders("rag.components", above) == []


def test_the_server_reaches_components_only_through_the_runtime():
    assert offenders("rag.server", ("rag.components", "rag.evaluation", "rag.cli")) == []


@pytest.mark.parametrize("module", BASE)
def test_the_base_imports_nothing_of_rag_above_it(module):
    assert offenders(module, ("rag.components", "rag.services", "rag.server", "rag.runtime", "rag.cli")) == []


def test_no_import_cycle_between_modules():
    try:
        TopologicalSorter({m: {t for t in targets if t in GRAPH and t != m} for m, targets in GRAPH.items()}).prepare()
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_no_cycle_between_layers():
    layers: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if module in PACKAGES:  # rag/__init__.py, ingest/__init__.py: empty
            continue
        layers.setdefault(layer_of(module), set()).update(
            layer_of(t) for t in targets if t in GRAPH and layer_of(t) != layer_of(module)
        )
    try:
        TopologicalSorter(layers).prepare()
    except CycleError as exc:
        pytest.fail(f"layers import each other: {' -> '.join(exc.args[1])}")


def test_no_folder_holds_more_than_ten_modules():
    crowded = {}
    for package in PACKAGES:
        for folder in [REPO / package, *(p for p in (REPO / package).rglob("*") if p.is_dir())]:
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            if len(modules) > 10:
                crowded[str(folder.relative_to(REPO))] = len(modules)
    assert crowded == {}


def test_a_back_arrow_is_caught(monkeypatch):
    # The checks read GRAPH: a service importing an adapter must be reported.
    monkeypatch.setitem(GRAPH, "rag.services.answering", {"rag.components.chroma_store"})
    assert offenders("rag.services", ("rag.components",)) == [
        "rag.services.answering imports rag.components.chroma_store"
    ]
