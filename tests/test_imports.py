"""The import graph of nerve's packages: no cycle, and no module importing a layer above its own.

Every `import` counts, those inside functions too (a lazy import is still an arrow). The layers
are read from the table in docs/design.md ("Layers"), so the document and this check cannot drift:
a module belongs to the most specific prefix listed, and may import its own layer and those below.
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("configs", "nerve_core", "pipeline", "jobs")


def layer_table() -> dict[str, int]:
    """Module prefix -> layer number, from docs/design.md's layer table."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, modules in re.findall(r"^\| (\d+) \| ([^|]+) \|", section, flags=re.M):
        for prefix in re.findall(r"`([\w.]+)`", modules):
            layers[prefix] = int(number)
    return layers


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph(found: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of PACKAGES it imports (a name is resolved to its longest module prefix)."""
    def resolve(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in found.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                source = ".".join(p for p in (base, node.module) if p)
                names = [source, *(f"{source}.{alias.name}" for alias in node.names)]
            else:
                continue
            targets.update(t for t in map(resolve, names) if t and t != module)
        graph[module] = targets
    return graph


def layer_of(module: str, layers: dict[str, int]) -> int:
    prefixes = [p for p in layers if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} is in no layer of docs/design.md"
    return layers[max(prefixes, key=len)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = counter[0]
                    counter[0] += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_a_layer_above_its_own():
    layers, graph = layer_table(), import_graph(modules())
    assert len(set(layers.values())) >= 5, "docs/design.md's layer table was not found"
    upward = sorted(f"{m} (layer {layer_of(m, layers)}) imports {t} (layer {layer_of(t, layers)})"
                    for m, targets in graph.items() for t in targets if layer_of(t, layers) > layer_of(m, layers))
    assert upward == []


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph(modules())) == []


def test_the_checks_catch_a_cycle_and_an_arrow_up():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    layers = {"pipeline": 2, "pipeline.run": 5, "nerve_core": 0}
    assert layer_of("pipeline.run.pool", layers) == 5 and layer_of("pipeline.read.reader", layers) == 2
    graph = import_graph(modules())
    assert "pipeline.run.pool" in graph["pipeline.run.pending"]  # a module-level import
    assert "pipeline.run.labeler" in graph["pipeline.run.actors"]  # one inside a function counts too
