"""The package's shape: a core that imports only JAX, no import cycles, no private names used from outside,
dependencies that are what the code imports, and an installed wheel that works from any directory."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from support import ROOT

APP_ONLY = ("yaml", "matplotlib", "orbax", "tqdm", "pydantic", "flax", "torch", "tensorboardX")


def test_import_jaxrnn_loads_only_jax_numpy_and_optax():
    """Every public name loaded (``import jaxrnn`` alone loads them on first use)."""
    code = "import sys, jaxrnn; [getattr(jaxrnn, n) for n in jaxrnn.__all__]; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            timeout=120).stdout.split()
    found = [m for m in loaded if m.split(".")[0] in APP_ONLY or m.startswith(("jaxrnn.experiment", "jaxrnn.configs"))]
    assert not found, f"import jaxrnn loaded {found}"


def modules() -> dict[str, Path]:
    """Every module of the package as it is installed (``experiments/`` is ``jaxrnn.experiments``)."""
    found = {}
    for root, package in ((ROOT / "jaxrnn", "jaxrnn"), (ROOT / "experiments", "jaxrnn.experiments")):
        for path in root.rglob("*.py"):
            parts = [*package.split("."), *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(path: Path, name: str) -> list[tuple[str, list[str], bool]]:
    """``(module, names, top_level)`` for each import in the file of module ``name``."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names], id(node) in top))
    return found


# Modules of the package that `import jaxrnn` never loads, each with the extra that holds what it imports.
OPTIONAL = {"jaxrnn.nnx": "nnx"}


def test_the_core_imports_only_jax_numpy_optax_and_the_standard_library():
    allowed = {"jax", "jaxlib", "numpy", "optax", "jaxrnn", "__future__"} | set(sys.stdlib_module_names)
    for name, path in modules().items():
        if name.startswith(("jaxrnn.experiment", "jaxrnn.configs")) or name == "jaxrnn.__main__":
            continue
        if name in OPTIONAL:  # its own extra's imports, nothing of the app
            assert not any(m.startswith("jaxrnn.experiment") for m, _, _ in imports(path, name)), name
            continue
        for module, _, _ in imports(path, name):
            assert module.split(".")[0] in allowed, f"{name} imports {module}"
            assert not module.startswith("jaxrnn.experiment"), f"{name} (the library) imports the app: {module}"


def test_no_import_cycles():
    mods = modules()
    graph = {name: set() for name in mods}
    for name, path in mods.items():
        for module, names, top in imports(path, name):
            if not top:
                continue  # a deferred import runs after its module is loaded
            for target in [module, *(f"{module}.{n}" for n in names)]:
                if target in mods and target != name:
                    graph[name].add(target)
    # A package's __init__ importing its own submodules is not a cycle; a submodule importing its package is.
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if name_is_parent(node, nxt):
                continue
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    def name_is_parent(child, parent):
        return child.startswith(parent + ".")

    for node in graph:
        if node not in state:
            visit(node)


# The core's tests import the core alone (the library, JAX, the test helpers), so that they test it as a user
# of ``import jaxrnn`` has it; the app's tests (config, cli, experiments, ...) are the others.
CORE_TESTS = ("test_cells", "test_scan", "test_combinators", "test_paths", "test_parallel", "test_edges", "test_errors",
              "test_sequence_models", "test_language", "test_gradient_flow", "test_interop", "test_training",
              "test_minimal_reference")
APP_HELPERS = {"TINY", "cli"}  # support's names that write configs or run the app


def test_the_core_tests_import_only_the_core():
    for stem in CORE_TESTS:
        path = ROOT / "tests" / f"{stem}.py"
        for module, names, _ in imports(path, stem):
            assert module.split(".")[0] not in ("yaml", "matplotlib", "orbax", "tqdm", "pydantic", "experiments",
                                                "conftest"), f"{path.name} imports {module}"
            assert not module.startswith("jaxrnn.experiment"), f"{path.name} (a core test) imports the app: {module}"
            if module == "support":
                assert not APP_HELPERS & set(names), f"{path.name} imports the app's helpers {APP_HELPERS & set(names)}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and "write_config" in [a.arg for a in node.args.args]:
                raise AssertionError(f"{path.name}: {node.name} writes a config (an app test)")


def test_nothing_imports_private_names_of_another_module():
    files = [*modules().items()]
    files += [(f"benchmarks.{p.stem}", p) for p in (ROOT / "benchmarks").rglob("*.py")]
    files += [(f"tests.{p.stem}", p) for p in (ROOT / "tests").rglob("*.py")]
    for name, path in files:
        for module, names, _ in imports(path, name):
            if module.split(".")[0] not in ("jaxrnn", "benchmarks"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in module.split(".") if p.startswith("_") and not p.startswith("__")]
            assert not private, f"{path.relative_to(ROOT)} imports private {private} from {module}"
        text = path.read_text()
        for match in re.finditer(r"\bjaxrnn(?:\.\w+)+", text):
            parts = match.group(0).split(".")
            assert not any(p.startswith("_") and not p.startswith("__") for p in parts[1:]), \
                f"{path.relative_to(ROOT)} uses {match.group(0)}"
        for alias, attribute in module_attributes(path, name):
            assert not (attribute.startswith("_") and not attribute.startswith("__")), \
                f"{path.relative_to(ROOT)} uses {alias}.{attribute}, a private name of another module"


def module_attributes(path: Path, name: str) -> list[tuple[str, str]]:
    """``(alias, attribute)`` for each ``alias.attribute`` in the file where ``alias`` names a jaxrnn or
    benchmarks module it imported (``from jaxrnn.experiment import config as config_lib``)."""
    known = set(modules()) | {f"benchmarks.{p.stem}" for p in (ROOT / "benchmarks").rglob("*.py")}
    tree = ast.parse(path.read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return [(node.value.id, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases]


def top_level_imports(only: set[str] | None = None) -> set[str]:
    """What the package's modules import (those in ``only``, or all but the optional ones), outside itself."""
    found = set()
    for name, path in modules().items():
        if (name in only) if only is not None else (name not in OPTIONAL):
            found |= {module.split(".")[0] for module, _, _ in imports(path, name)}
    return found - set(sys.stdlib_module_names) - {"jaxrnn", "__future__"}


# import name -> the distribution that provides it
DISTRIBUTIONS = {"jax": "jax", "numpy": "numpy", "optax": "optax", "orbax": "orbax-checkpoint", "pydantic": "pydantic",
                 "pydantic_core": "pydantic", "yaml": "PyYAML", "tqdm": "tqdm", "matplotlib": "matplotlib",
                 "tensorboardX": "tensorboardX"}


def test_dependencies_are_what_the_code_imports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ \[]", d)[0] for d in project["dependencies"]}
    needed = {DISTRIBUTIONS[m] for m in top_level_imports()}
    # jaxlib: imported as jax; onednn-cpu-gomp: a C library (libdnnl.so.3) that jaxrnn.onednn loads
    assert needed | {"jaxlib", "onednn-cpu-gomp"} == declared, (sorted(needed), sorted(declared))
    for module, extra in OPTIONAL.items():  # an optional module's imports beyond the core's are its extra
        wanted = {{"flax": "flax"}.get(m, DISTRIBUTIONS.get(m)) for m in top_level_imports({module})} - declared
        held = {re.split(r"[<>=!~ \[]", d)[0] for d in project["optional-dependencies"][extra]}
        assert wanted == held, (module, sorted(wanted), sorted(held))
    test_extra = {re.split(r"[<>=!~ \[]", d)[0] for d in project["optional-dependencies"]["test"]}
    test_imports = set()
    for path in (ROOT / "tests").rglob("*.py"):
        test_imports |= {m.split(".")[0] for m, _, _ in imports(path, "tests." + path.stem)}
    assert {"pytest", "hypothesis", "flax"} <= test_extra and "chex" not in test_extra | declared
    assert "chex" not in test_imports


@pytest.mark.slow
def test_the_installed_wheel_works_from_anywhere(tmp_path):
    """Built and installed (not editable), jaxrnn lists every shipped config and runs one by name from a
    directory outside the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for item in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "jaxrnn", "experiments", "configs"):
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copy
        copy(ROOT / item, source / item, **({"ignore": shutil.ignore_patterns("__pycache__", "_onednn*.so")}
                                             if (ROOT / item).is_dir() else {}))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("jaxrnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("jaxrnn/configs/") and n.endswith(".yaml")) == configs
    for experiment in (ROOT / "experiments").glob("*.py"):
        assert f"jaxrnn/experiments/{experiment.name}" in names
    for package in (ROOT / "jaxrnn").rglob("__init__.py"):
        assert package.relative_to(ROOT).as_posix() in names, f"{package} is not in the wheel"
    assert "jaxrnn/data/sunspots_yearly.csv" in names

    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}

    def jaxrnn_command(*args):
        return subprocess.run([sys.executable, "-m", "jaxrnn", *args], capture_output=True, text=True, cwd=elsewhere,
                              env=env, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import jaxrnn.experiments as e; print(e.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, check=True).stdout
    assert where.startswith(str(target)), where
    listed = jaxrnn_command("list")
    assert listed.returncode == 0 and sorted(line.split()[0] for line in listed.stdout.splitlines()) == \
        [c[:-5] for c in configs], listed
    ran = jaxrnn_command("run", "adding_t50_lstm", "--set", "train.steps=2", "--set", "train.eval_batches=1")
    assert ran.returncode == 0, ran.stderr
    assert (elsewhere / "runs" / "adding_t50_lstm" / "summary.json").exists()


def test_the_linter_passes():
    """``ruff check`` with the settings in pyproject.toml (line length, imports, pyflakes): every ``noqa`` names
    a rule that is checked."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is in the test extra; not installed here")
    found = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", str(ROOT)], capture_output=True,
                           text=True, timeout=120)
    assert found.returncode == 0, found.stdout + found.stderr


def test_the_public_modules_list_their_names():
    """Each public module names its public functions in ``__all__``, sorted and every one defined (the rest of
    the module is implementation); the top level lists the parts, ``scan`` and the modules, and none of the
    names kept only for a release."""
    import types

    import jaxrnn

    kept_for_a_release = {"ACTIVATIONS", "Cell", "Layer", "TrainState", "Vocabulary", "carried_step", "train_step",
                          "truncated_bptt_step"}
    assert jaxrnn.__all__ == sorted(jaxrnn.__all__) and not set(jaxrnn.__all__) & kept_for_a_release
    modules = [name for name in jaxrnn.__all__ if isinstance(getattr(jaxrnn, name), types.ModuleType)]
    assert {"models", "training", "language", "split"} <= set(modules)
    for name in (*modules, "loop", "parts"):
        module = __import__(f"jaxrnn.{name}", fromlist=["_"])
        names = getattr(module, "__all__", None)
        if name == "tasks":  # a package whose modules are the tasks (jaxrnn.tasks.adding, ...)
            continue
        assert names is not None, f"jaxrnn.{name} has no __all__"
        assert names == sorted(names), f"jaxrnn.{name}.__all__ is not sorted"
        assert all(not n.startswith("_") and hasattr(module, n) for n in names), name
