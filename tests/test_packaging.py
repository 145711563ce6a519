"""Packaging: pyproject's dependencies cover every import and the pins of requirements*.txt, the
extras, the version, the files a wheel must carry, each package's __all__, cheap package imports
and binaries that print none of TensorFlow's start-up lines."""

import ast
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import blurnet_tf
from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
DEPENDENCIES = {canonicalize_name(r.name): r for r in map(Requirement, PROJECT["dependencies"])}
TEST_EXTRA = {canonicalize_name(r.name): r for r in map(Requirement, PROJECT["optional-dependencies"]["test"])}
# Packages whose __init__ imports nothing: their __all__ names every submodule.
SUBMODULE_PACKAGES = ("evaluation", "experiments", "pipeline", "reports")
CHEAP_PACKAGES = ("cli", "data") + SUBMODULE_PACKAGES  # importable without TensorFlow or Keras


def _third_party_imports(paths, local=()):
    """{top-level module: first file importing it} of absolute imports outside the stdlib."""
    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "blurnet_tf" and top not in local:
                    found.setdefault(top, path.relative_to(ROOT).as_posix())
    return found


def _pins(name):
    """{canonical name: pinned version} of a requirements file."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{name}: {line} is not pinned exactly"
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_dependencies_cover_every_third_party_import():
    """Every module blurnet_tf imports comes from a runtime dependency; the tests' from one or the test extra."""
    distributions = importlib.metadata.packages_distributions()

    def uncovered(imports, declared):
        return {
            module: where
            for module, where in imports.items()
            if not {canonicalize_name(d) for d in distributions.get(module, ())} & set(declared)
        }

    package = _third_party_imports(sorted((ROOT / "blurnet_tf").rglob("*.py")))
    assert not uncovered(package, DEPENDENCIES), "add to pyproject's dependencies"
    tests = sorted((ROOT / "tests").glob("*.py"))
    test_imports = _third_party_imports(tests, local={p.stem for p in tests})
    assert not uncovered(test_imports, {**DEPENDENCIES, **TEST_EXTRA}), "add to pyproject's test extra"


def test_requirement_pins_are_the_declared_packages_within_their_ranges():
    """./run.sh installs requirements.txt (runtime) and requirements-test.txt (test extra) exactly:
    the same packages as pyproject declares, each pin inside its declared range."""
    for file, declared in (("requirements.txt", DEPENDENCIES), ("requirements-test.txt", TEST_EXTRA)):
        pins = _pins(file)
        assert set(pins) == set(declared), f"{file} and pyproject name different packages"
        outside = {n: f"{pins[n]} not in {declared[n].specifier}" for n in pins if pins[n] not in declared[n].specifier}
        assert not outside, file


def test_gpu_extra_is_tensorflow_with_cuda_in_the_same_range():
    (gpu,) = map(Requirement, PROJECT["optional-dependencies"]["gpu"])
    assert (gpu.name, gpu.extras) == ("tensorflow", {"and-cuda"})
    assert gpu.specifier == DEPENDENCIES["tensorflow"].specifier


def test_version_license_and_package_files():
    assert blurnet_tf.__version__ == PROJECT["version"]  # read from the installed metadata
    assert importlib.metadata.version("blurnet_tf") == PROJECT["version"], "re-install: ./run.sh does"
    assert PROJECT["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    assert f"## [{PROJECT['version']}]" in (ROOT / "CHANGELOG.md").read_text()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["blurnet_tf"]
    assert "py.typed" in package_data
    assert not [p for p in package_data if not list((ROOT / "blurnet_tf").glob(p))], "package-data names a missing file"


def test_every_package_declares_all_and_its_names_exist():
    packages = sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "blurnet_tf")]) if m.ispkg)
    missing = []
    for name in packages:
        package = importlib.import_module(f"blurnet_tf.{name}")
        if not hasattr(package, "__all__"):
            missing.append(name)
            continue
        absent = [
            n
            for n in package.__all__
            if not hasattr(package, n) and importlib.util.find_spec(f"blurnet_tf.{name}.{n}") is None
        ]
        assert not absent, f"blurnet_tf.{name}.__all__ names what does not exist"
        assert len(set(package.__all__)) == len(package.__all__)
        if name in SUBMODULE_PACKAGES:
            submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
            assert set(package.__all__) == submodules, f"blurnet_tf.{name}.__all__ lists its submodules"
    assert not missing, "packages without __all__"


def test_package_imports_stay_free_of_tensorflow():
    """The binaries' flag errors come before TensorFlow is imported: these packages must not pull it in."""
    code = (
        "import sys\n"
        + "".join(f"import blurnet_tf.{p}\n" for p in CHEAP_PACKAGES)
        + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.slow
def test_a_binary_prints_none_of_tensorflows_start_up_lines():
    """At the default verbosity stderr holds the one error line (TensorFlow was imported before it)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-m", "blurnet_tf.cli.evaluate", "--model=/nonexistent/run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: /nonexistent/run: model file not found"), proc.stderr


def test_run_sh_gives_a_leading_flag_to_the_quick_reproduction():
    """The README's `./run.sh --seeds=0,1` reaches the reproduce binary; an unknown job is a usage line."""
    if not (ROOT / ".venv" / ".installed-requirements").is_file():
        pytest.skip("run.sh has not set up .venv here (it would install it)")

    def run(*args):
        return subprocess.run(["bash", "run.sh", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)

    flag = run("--profile=nope")  # refused by reproduce's own flag parser: the flag got there
    assert flag.returncode == 2 and "--profile: value should be one of" in flag.stderr, flag.stderr
    job = run("bogus")
    assert job.returncode == 2 and job.stderr.startswith("usage: ./run.sh"), job.stderr
