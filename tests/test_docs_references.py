"""Every module, attribute, file and flag that README.md and docs/ name exists, and every binary they
show answers --help: the docs cannot keep pointing at code or files that moved (issue #30)."""

import importlib
import re

import pytest

from blurnet_tf.reports.readme_sync import documents
from conftest import ROOT, run_python

TEXT = "\n".join(p.read_text() for p in documents())
COMMAND = re.compile(r"python -m (blurnet_tf(?:\.\w+)+)((?:[ \t]+(?:\\\n)?[^\s`|]+)*)")
DOTTED = re.compile(r"\bblurnet_tf(?:\.\w+)+")
PATH = re.compile(r"`((?:blurnet_tf|flags|bench|tests|results)/[^`\s]*)`")
ABSL = {
    "flagfile",
    "help",
    "helpfull",
    "helpshort",
    "helpxml",
    "verbosity",
    "v",
    "logtostderr",
    "alsologtostderr",
    "only_check_args",
    "pdb",
    "pdb_post_mortem",
    "run_with_pdb",
    "run_with_profiling",
    "use_cprofile_for_profiling",
}


def commands():
    """(module, [flag names]) of every `python -m blurnet_tf...` command line in the docs."""
    return [(m[1], re.findall(r"--(\w+)", m[2])) for m in COMMAND.finditer(TEXT)]


def defined_flags(module):
    """The flags a binary defines (absl DEFINE_* or argparse add_argument), read from its source."""
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)) | set(
        re.findall(r"add_argument\(\s*\"--(\w+)\"", source)
    )


def test_every_documented_command_names_a_module_and_flags_that_exist():
    found = commands()
    assert len({m for m, _ in found}) >= 8
    for module, used in found:
        assert importlib.util.find_spec(module) is not None, f"docs run {module}, which does not exist"
        unknown = set(used) - defined_flags(module) - ABSL
        assert not unknown, f"docs pass {module} flags it does not define: {sorted(unknown)}"


def _is_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module (its parent is not a package)
        return False


def test_every_dotted_name_in_the_docs_imports():
    for name in sorted(set(DOTTED.findall(TEXT))):
        parts = name.split(".")
        cut = max(i for i in range(1, len(parts) + 1) if _is_module(".".join(parts[:i])))
        if cut == len(parts):
            continue  # a module (binaries are not imported: each defines its flags globally)
        obj = importlib.import_module(".".join(parts[:cut]))
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"the docs name {name}: {'.'.join(parts[:cut])} has no {attr}"
            obj = getattr(obj, attr)


def test_every_repository_path_in_the_docs_exists():
    for path in sorted(set(PATH.findall(TEXT))):
        if "<" in path or "{" in path:  # a pattern (results/<profile>/REPORT.md): its folder must exist
            path = path.split("<")[0].split("{")[0].rsplit("/", 1)[0]
        assert list(ROOT.glob(path.rstrip("/"))), f"the docs name {path}, which the repository does not have"


@pytest.mark.slow
def test_every_documented_binary_answers_help():
    for module in sorted({m for m, _ in commands() if ".cli." in m}):
        proc = run_python("-m", module, "--help", check=False, timeout=120)  # absl's --help exits 1
        assert proc.returncode in (0, 1) and "Try --helpfull" in proc.stdout and not proc.stderr, (
            f"{module} --help: {proc.stderr[-500:]}"
        )
