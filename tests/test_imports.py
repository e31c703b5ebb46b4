"""gansweep's modules import one another without a circle, in functions or not: a circle
bridged by an import inside a function is still a circle."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gansweep"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The gansweep modules `path` imports anywhere in it (function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_search_finds_a_circle_where_there_is_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_gansweeps_modules_import_one_another_without_a_circle():
    edges = graph()
    assert "gansweep.job" in edges and "gansweep.training.capacity" in edges["gansweep.job"]
    assert cycle(edges) is None, " -> ".join(cycle(edges))


# --- The layering: each folder is one role, and a role uses only those below it ------------

# folder -> the gansweep modules (and folders) its modules may import; `__main__` modules
# are entry points, which may import anything
MAY_IMPORT = {
    "method": {"method"},  # pure torch: no training, no files, no run
    "nets": {"method", "nets"},
    "data": {"data", "errors"},
    "quality": {"quality", "errors", "cli"},  # sample quality: extractors, FID/KID, its check
    "rundir": {"rundir", "errors", "method.losses"},  # losses: a record's loss by default
    "training": {"training", "method", "quality", "rundir", "errors", "validate"},
    # the report reads runs only through the records (and names them as runs are named)
    "report": {"report", "rundir.records", "rundir.names", "errors", "cli"},
}
# what no module of the method may import, beyond gansweep's own
THIRD_PARTY_OUTSIDE_THE_METHOD = ("lightning", "pytorch_lightning", "hydra", "omegaconf",
                                  "wandb")


def allowed(target: str, folders: set[str]) -> bool:
    """Whether module `target` (gansweep.x.y) is within one of `folders` (x or x.y); the
    package of a folder itself (`from gansweep.rundir import records` names it) is nothing."""
    name = target.removeprefix("gansweep.")
    if name in MAY_IMPORT or name == "gansweep":
        return True
    return any(name == f or name.startswith(f"{f}.") for f in folders)


def layering_breaches(edges: dict[str, set[str]]) -> list[str]:
    breaches = []
    for module, targets in sorted(edges.items()):
        parts = module.split(".")
        if len(parts) < 3 or parts[1] not in MAY_IMPORT or parts[-1] == "__main__":
            continue
        breaches += [f"{module} imports {t}" for t in sorted(targets)
                     if not allowed(t, MAY_IMPORT[parts[1]])]
    return breaches


def test_the_layering_check_finds_a_breach_where_there_is_one():
    edges = {"gansweep.method.norms": {"gansweep.training.gan"},
             "gansweep.report.table": {"gansweep.rundir.records", "gansweep.rundir.durable"},
             "gansweep.nets.__main__": {"gansweep.rundir.names"}}
    assert layering_breaches(edges) == [
        "gansweep.method.norms imports gansweep.training.gan",
        "gansweep.report.table imports gansweep.rundir.durable"]


def test_each_folder_imports_only_the_roles_below_it():
    edges = graph()
    assert {"gansweep.method.norms", "gansweep.report.table"} <= set(edges)
    assert layering_breaches(edges) == []


def test_the_method_is_pure_torch():
    for path in (PACKAGE / "method").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                assert name.split(".")[0] not in THIRD_PARTY_OUTSIDE_THE_METHOD, \
                    f"{path.name} imports {name}"
