"""The absl binaries: each parses its flags, builds one experiment's settings, runs it and prints.

Bad input of any kind ends in one line, `error: <flag or file>: <what was expected>`, and exit
status 2 (a failed pipeline step: 1); `--verbosity=1` shows the traceback as well.
"""

import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines only when asked for

from absl import app, flags, logging  # noqa: E402

from blurnet_tf.errors import DataError, SettingError, StepFailed  # noqa: E402,F401  (SettingError: for the binaries)


def run(main):
    """app.run(main), printing bad input as one clear line instead of a traceback."""

    def guarded(argv):
        try:
            return main(argv)
        except (DataError, SettingError, app.UsageError, flags.ValidationError) as exc:
            _fail(exc, 2)
        except StepFailed as exc:
            _fail(exc, 1)

    app.run(guarded, flags_parser=_parse_flags)


def _parse_flags(argv):
    """absl's parsing, with a bad or missing flag reported like every other bad input."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as exc:
        text = str(exc).splitlines()[0]
        found = re.match(r"flag --([\w-]+)(?:=([^:\s]*))?:?\s*(.*)", text)
        if found:
            name, value, problem = found.groups()
            if "other than None" in problem:
                problem, value = "required, not given", None
            text = f"--{name}: {problem}" + (f" (got {value!r})" if value else "")
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)


def _fail(exc, status):
    if logging.get_verbosity() >= 1:
        raise exc
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(status)


def flag_values(flags_module, names):
    """{name: value} of the binary's own flags."""
    return {n: flags_module.FLAGS[n].value for n in names}


def float_list(name, values):
    """A list flag's values as floats, or a SettingError naming the flag."""
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise SettingError(name, f"expected comma-separated numbers, got {','.join(values)!r}") from None


def int_list(name, spec):
    """'a,b,c' as a tuple of ints, or a SettingError naming the flag."""
    try:
        return tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise SettingError(name, f"expected comma-separated integers, got {spec!r}") from None
