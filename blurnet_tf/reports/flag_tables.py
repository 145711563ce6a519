"""A flag table per binary, generated from its absl definitions (readme_sync renders them into
docs/binaries.md), so the documented flags are exactly the defined ones. Each binary's flags are read
in a fresh process: every binary defines its flags in absl's one global registry."""

import functools
import json
import subprocess
import sys

BINARIES = ("train", "attack", "mnist_attacks", "evaluate", "export", "benchmark", "reproduce")
_READ = """
import importlib, json, sys
from absl import flags
module = "blurnet_tf.cli." + sys.argv[1]
importlib.import_module(module)
print(json.dumps([{"name": f.name, "type": f.flag_type(), "default": f.default, "help": f.help,
                   "choices": sorted(getattr(f.parser, "enum_values", None) or [])}
                  for f in flags.FLAGS.get_flags_for_module(module)], default=str))
"""


@functools.lru_cache(maxsize=None)
def definitions(binary):
    """[{name, type, default, help, choices}] of `python -m blurnet_tf.cli.<binary>`, in definition order."""
    proc = subprocess.run(
        [sys.executable, "-c", _READ, binary], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(proc.stdout)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(binary):
    lines = ["| flag | type | default | what it sets |", "|---|---|---|---|"]
    for f in definitions(binary):
        kind = f"one of {', '.join(f['choices'])}" if f["choices"] else f["type"]
        default = "–" if f["default"] is None else f"`{_cell(f['default'])}`"
        lines.append(f"| `--{f['name']}` | {_cell(kind)} | {default} | {_cell(f['help'])} |")
    return "\n".join(lines)


def tables():
    """{"flags-<binary>": table} for every binary."""
    return {f"flags-{b}": table(b) for b in BINARIES}
