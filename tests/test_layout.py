"""The package's shape: no import cycles, imports only go down the floors, no module over 600 lines, and no
reaching into the server's private members.

Floors, lowest first (a module imports from its own floor or lower ones, never from a higher one):

0  errors, version, params, ring/, seal/         numbers, rings, SEAL's formats, parameter sets
1  protocols/                                    one module per multiparty protocol
2  wire, network, keystore, keystore_crypto      messages, transport, storage
3  roles/                                        generic multiparty nodes: node, hospital, server, researcher
4  data, tabular, plain/                         loading, splitting, everything in the clear
5  training/, evaluation/, stats/                encrypted training, secure evaluation, pooled statistics
                                                 (stats' estimator is on floor 6: it makes a Federation;
                                                 its cli, deploy and report (notebooks 02, 07) on floor 7)
6  spec, pipeline, manifest, federation,        what assembles a study (the manifest counts training and evaluation;
   upload_mode                                   upload_mode counts their uploads)
7  cli, notebooks/, workshop, app/, deploy/,       front ends (workshop serves notebook 90, app/ the Voilà
   the package                                   pages of notebooks/app/)

Every import counts, function-level ones included (an import moved into a function to dodge a cycle is
still that import). Implicit imports of parent packages do not count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mpclr"

FLOORS = [
    ("mpclr.errors", 0), ("mpclr.version", 0), ("mpclr.params", 0), ("mpclr.ring", 0), ("mpclr.seal", 0),
    ("mpclr.protocols", 1),
    ("mpclr.wire", 2), ("mpclr.network", 2), ("mpclr.keystore", 2), ("mpclr.keystore_crypto", 2),
    ("mpclr.roles", 3),
    ("mpclr.data", 4), ("mpclr.tabular", 4), ("mpclr.plain", 4),
    ("mpclr.training", 5), ("mpclr.evaluation", 5), ("mpclr.stats", 5),
    ("mpclr.spec", 6), ("mpclr.pipeline", 6), ("mpclr.manifest", 6), ("mpclr.federation", 6),
    ("mpclr.upload_mode", 6),
    ("mpclr.stats.estimator", 6),
    ("mpclr.cli", 7), ("mpclr.workshop", 7), ("mpclr.notebooks", 7), ("mpclr.app", 7), ("mpclr.deploy", 7),
    ("mpclr", 7),
    ("mpclr.stats.cli", 7), ("mpclr.stats.deploy", 7), ("mpclr.stats.report", 7),
]
MAX_LINES = 600


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in its body)."""

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    def extension(name: str) -> bool:  # a compiled module (ring/_kernels): a leaf, not its package
        *pkg, last = name.split(".")
        return Path(PACKAGE.parent, *pkg, last + ".c").exists() or any(Path(PACKAGE.parent, *pkg).glob(f"{last}.*.so"))

    graph = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                full = [f"{origin}.{a.name}" for a in node.names]
                targets = [f if f in mods else origin for f in full if not extension(f)]
            else:
                continue
            for t in targets:
                if t == "mpclr" or t.startswith("mpclr."):
                    k = known(t)
                    if k and k != mod:
                        found.add(k)
        graph[mod] = found
    return graph


# a package whose __init__ re-exports from a higher floor than its modules
PACKAGE_FLOORS = {"mpclr.stats": 6}  # mpclr.stats re-exports glm and PooledGLM (stats.estimator, floor 6)


def floor(mod: str) -> int:
    if mod in PACKAGE_FLOORS:
        return PACKAGE_FLOORS[mod]
    best = max((p for p, _ in FLOORS if mod == p or mod.startswith(p + ".")), key=len)
    return dict(FLOORS)[best]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(imports(modules())) == []


def test_imports_go_down_the_floors():
    graph = imports(modules())
    upward = sorted(f"{m} (floor {floor(m)}) imports {t} (floor {floor(t)})"
                    for m, ts in graph.items() for t in ts if floor(t) > floor(m))
    assert upward == []


def test_every_module_has_one_floor():
    names = [p for p, _ in FLOORS]
    assert len(names) == len(set(names))
    assert all(isinstance(floor(m), int) for m in modules())


def test_the_checker_sees_function_level_imports_and_cycles():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    mods = imports(modules())
    # a function-level import in the package is an edge (the CLI's commands import the study when run)
    assert "mpclr.pipeline" in mods["mpclr.cli"]


def test_no_module_over_600_lines():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_nothing_reaches_into_the_server_or_its_pyfhel_handle():
    """Training and evaluation use the server's public evaluator, not its private members."""
    pattern = re.compile(r"server\._[a-z]|\._he\b")
    own = {PACKAGE / "roles" / "server.py", PACKAGE / "roles" / "evaluator.py", PACKAGE / "roles" / "hospital.py",
           PACKAGE / "roles" / "refresh_coordinator.py", PACKAGE / "roles" / "ceremony.py"}
    found = [f"{p.relative_to(PACKAGE.parent)}:{i}: {line.strip()}"
             for p in PACKAGE.rglob("*.py") if p not in own
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
