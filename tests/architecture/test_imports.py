"""The import contract: front-end -> engine -> {udfs -> planner}; never back, no cycles.

Read from the source with ``ast`` (no import-time side effects, and
function-level imports count too), so a back edge hidden inside a function
fails here as surely as one at the top of a module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: package folder -> import name
PACKAGES = {"rdl_sql": "rdl_sql", "planner": "rdl_sql.planner", "udfs": "rdl_sql.udfs"}
#: a layer may import only the layers listed for it (and itself)
ALLOWED = {
    "frontend": {"frontend", "engine", "planner", "datasets"},
    "datasets": {"datasets", "planner"},
    "engine": {"engine", "udfs", "planner"},
    "udfs": {"udfs", "planner"},
    "planner": {"planner"},
}
#: modules the engine must never import, even though they are front-end (the parser)
PARSER = ("rdl_sql.dialect", "rdl_sql.bind", "rdl_sql.session", "rdl_sql.statements")
HEAVY = ("torch", "torch_geometric", "lightgbm")


def layer(module: str) -> str | None:
    if not (module == "rdl_sql" or module.startswith("rdl_sql.")):
        return None
    for prefix, name in (("rdl_sql.engine", "engine"), ("rdl_sql.planner", "planner"), ("rdl_sql.udfs", "udfs"),
                         ("rdl_sql.datasets", "datasets"), ("rdl_sql.sql_examples", "frontend")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    return "frontend"


def modules() -> dict[str, Path]:
    out = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


def imports(module: str, path: Path) -> list[tuple[str, int, bool, str]]:
    """``(imported module, line, inside a function?, the line's text)`` for every import in ``path``."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    found.append((a.name, child.lineno, in_function, lines[child.lineno - 1]))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if child.module is None or child.level:
                    for a in child.names:  # `from . import gnn` imports a submodule
                        found.append((f"{target}.{a.name}" if f"{target}.{a.name}" in ALL else target,
                                      child.lineno, in_function, lines[child.lineno - 1]))
                else:
                    for a in child.names:
                        sub = f"{target}.{a.name}"
                        found.append((sub if sub in ALL else target, child.lineno, in_function,
                                      lines[child.lineno - 1]))
            visit(child, inner)

    visit(tree, False)
    return found


ALL = modules()


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Back edges between layers, and engine -> parser edges, in ``graph`` (module -> imported modules)."""
    out = []
    for src, targets in graph.items():
        for dst in targets:
            a, b = layer(src), layer(dst)
            if a is None or b is None:
                continue
            if b not in ALLOWED[a]:
                out.append(f"{src} ({a}) imports {dst} ({b})")
            if a == "engine" and dst.startswith(PARSER):
                out.append(f"{src} (engine) imports the parser: {dst}")
    return sorted(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def project_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in ALL.items():
        graph[module] = {m for m, *_ in imports(module, path) if layer(m) is not None and m != module
                         and not (module.startswith(m + ".") and path.name == "__init__.py")}
    return graph


def test_no_layer_imports_a_layer_above_it():
    assert violations(project_graph()) == []


def test_no_import_cycles():
    graph = project_graph()
    # a package's __init__ re-exporting its own modules is not a cycle of meaning
    graph = {m: {t for t in ts if not (t.startswith(m + ".") and ALL[m].name == "__init__.py")}
             for m, ts in graph.items()}
    assert cycles(graph) == []


def test_planner_never_imports_torch_or_lightgbm():
    bad = [f"{m}:{line}" for m, p in ALL.items() if layer(m) == "planner"
           for target, line, _, _ in imports(m, p) if target.split(".")[0] in HEAVY]
    assert bad == []


def test_function_level_imports_say_that_they_keep_torch_or_lightgbm_out():
    """An import inside a function is allowed only to keep torch / LightGBM out of parsing, EXPLAIN and
    DESCRIBE, and its line says so."""
    bad = []
    for m, p in ALL.items():
        for _, line, in_function, text in imports(m, p):
            if in_function and not any(w in text.lower() for w in ("torch", "lightgbm")):
                bad.append(f"{p.relative_to(ROOT)}:{line}: {text.strip()}")
    assert bad == []


@pytest.mark.parametrize("edge, expected", [
    (("rdl_sql.planner.task", "rdl_sql.udfs.train"),
     "rdl_sql.planner.task (planner) imports rdl_sql.udfs.train (udfs)"),
    (("rdl_sql.udfs.train", "rdl_sql.engine.gnn"), "rdl_sql.udfs.train (udfs) imports rdl_sql.engine.gnn (engine)"),
    (("rdl_sql.engine.runner", "rdl_sql.session"), "rdl_sql.engine.runner (engine) imports rdl_sql.session (frontend)"),
    (("rdl_sql.engine.runner", "rdl_sql.bind"), "rdl_sql.engine.runner (engine) imports the parser: rdl_sql.bind"),
])
def test_the_contract_fails_on_a_planted_back_edge(edge, expected):
    graph = project_graph()
    graph[edge[0]] = graph[edge[0]] | {edge[1]}
    assert expected in violations(graph)


def test_the_cycle_check_fails_on_a_planted_cycle():
    graph = project_graph()
    graph["rdl_sql.planner.sql"] = graph["rdl_sql.planner.sql"] | {"rdl_sql.planner.task"}
    assert any("rdl_sql.planner.sql" in group and "rdl_sql.planner.task" in group for group in cycles(graph))


def test_every_module_is_seen():
    assert {"rdl_sql.session", "rdl_sql.engine.runner", "rdl_sql.planner.task", "rdl_sql.udfs.train"} <= set(ALL)


def test_parsing_explain_and_describe_never_load_torch_or_lightgbm():
    """The promise behind every lazy import: these statements answer without the model stack."""
    import subprocess
    import sys
    code = (
        "import sys, rdl_sql\n"
        "con = rdl_sql.connect()\n"
        "con.execute('CREATE TABLE c (id INT PRIMARY KEY, seen TIMESTAMP)')\n"
        "con.execute('CREATE TABLE o (id INT PRIMARY KEY, cid INT REFERENCES c(id), ts TIMESTAMP)')\n"
        "con.execute(\"INSERT INTO c SELECT i, TIMESTAMP '2024-01-01' FROM range(20) t(i)\")\n"
        "con.execute(\"INSERT INTO o SELECT i, i % 20, TIMESTAMP '2024-01-01' + INTERVAL (i) DAY \"\n"
        "            \"FROM range(400) t(i)\")\n"
        "con.execute('DESCRIBE GRAPH').fetchall()\n"
        "con.execute('EXPLAIN PREDICT COUNT(o.*, 0, 7, DAYS) > 0 FOR EACH c.id').fetchall()\n"
        "con.execute('SHOW MODELS').fetchall()\n"
        "print(sorted(m for m in ('torch', 'lightgbm', 'torch_geometric') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_no_two_test_modules_share_a_name():
    """pytest imports test modules by basename (no packages under tests/): a second one of a name fails
    collection of the whole suite."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
