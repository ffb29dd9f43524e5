"""The layers of the code point one way (docs/architecture.md): no import cycle between the project's
modules, util/ imports nothing of the project, compress/ does no file I/O, models/ and compress/ never
reach up into the stages, the entry points only parse and call one stage function, and a project
import inside a function has a comment that says why it cannot be at the top."""
import ast
import os

import pytest

from tests.conftest import REPO

PACKAGES = ("compress", "data", "metrics", "models", "options", "pipeline", "report", "util")
ENTRY_POINTS = ("train.py", "test.py", "prune.py", "export.py")
SKIP = {".venv", ".git", "tests", "__pycache__", "datasets", "results", "experiments"}


def _modules():
    """{module name: path} of every .py file of the project outside tests/."""
    found = {}
    for base, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(base, name), REPO)
                module = rel[:-3].replace(os.sep, ".")
                found[module[: -len(".__init__")] if module.endswith(".__init__") else module] = rel
    return found


MODULES = _modules()


def _target(name):
    """The project module an imported dotted name lives in, or None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path):
    """[(line, imported project module, inside a function)] of one file."""
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    inner = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            target = _target(name)
            if target:
                found.append((node.lineno, target, id(node) in inner))
    return found


GRAPH = {m: {t for _, t, _ in _imports(p) if t != m} for m, p in MODULES.items()}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_modules_are_found():
    assert {"pipeline.checkpoint", "compress.pruning", "models.families.resnet", "util.errors"} <= set(MODULES)


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_util_imports_nothing_of_the_project():
    reaching = {m: sorted(d for d in deps if not d.startswith("util")) for m, deps in GRAPH.items()
                if m.startswith("util") and any(not d.startswith("util") for d in deps)}
    assert reaching == {}


@pytest.mark.parametrize("lower", ["models", "compress", "data", "metrics", "util"])
def test_lower_layers_never_import_the_stages(lower):
    upward = {m: sorted(d for d in deps if d.split(".")[0] in ("pipeline", "report", "options"))
              for m, deps in GRAPH.items() if m.split(".")[0] == lower}
    assert {m: d for m, d in upward.items() if d} == {}


def test_compress_does_no_file_io():
    io_calls = {"open", "torch.load", "torch.save", "os.remove", "os.makedirs", "shutil.rmtree"}
    found = []
    for module, path in MODULES.items():
        if not module.startswith("compress"):
            continue
        for node in ast.walk(ast.parse(open(os.path.join(REPO, path)).read())):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in io_calls:
                    found.append(f"{path}:{node.lineno} {name}")
    assert found == []


def test_a_project_import_inside_a_function_says_why():
    silent = []
    for module, path in MODULES.items():
        lines = open(os.path.join(REPO, path)).read().splitlines()
        for line, target, inner in _imports(path):
            if not inner:
                continue
            # a comment on the import line or on a line of the function's import block above it
            above = line - 2
            while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                above -= 1
            said = "#" in lines[line - 1] or (above >= 0 and lines[above].strip().startswith("#"))
            if not said:
                silent.append(f"{path}:{line} imports {target}")
    assert silent == []


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_entry_points_parse_and_call_one_stage_function(script):
    tree = ast.parse(open(os.path.join(REPO, script)).read())
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert set(functions) <= {"main", "build_parser"}, functions
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    assert len(main.body) == 1  # run(parse(...)) / return run(build_parser().parse_args(argv))
    assert len(open(os.path.join(REPO, script)).read().splitlines()) <= 60
