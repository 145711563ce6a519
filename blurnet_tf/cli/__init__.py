"""The absl binaries: each parses its flags, builds one experiment's settings, runs it and prints.

Bad input of any kind ends in one line, `error: <flag or file>: <what was expected>`, and exit
status 2 (a failed pipeline step or a diverged training: 1); `--verbosity=1` shows the traceback as well.

TensorFlow is imported only when the work needs it (a bad flag or file is reported at once), and quietly:
its C++ lines below TF_CPP_MIN_LOG_LEVEL (default 2: errors only) and the Python warnings of
TensorFlow, Keras and ART ("PyTorch not found") stay hidden. `--verbosity=1` shows them all; a
TF_CPP_MIN_LOG_LEVEL the user set is kept.
"""

import importlib.abc
import importlib.machinery
import logging as pylogging
import os
import re
import signal
import sys
import tempfile
import warnings

# Set before anything can import TensorFlow; taken back in run() when --verbosity >= 1.
_TF_LEVEL_GIVEN = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from blurnet_tf.errors import DataError, SettingError, StepFailed, TrainingDiverged  # noqa: E402,F401  (SettingError: for the binaries)

__all__ = ["run", "flag_values", "float_list", "int_list", "SettingError"]

_ABSL_RECORD = re.compile(r"([IWEF])\d{4} ")  # absl's C++ line prefix: severity, month, day
_ABSL_EARLY = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def run(main):
    """app.run(main), printing bad input as one clear line instead of a traceback."""
    from blurnet_tf.pipeline.step_process import check_thread_settings, die_with_runner

    die_with_runner()  # a pipeline step's process: killed with its runner

    def guarded(argv):
        try:
            check_thread_settings()  # TensorFlow reads them at import and ignores a value it cannot parse
            _quiet_tensorflow()
            signal.signal(signal.SIGTERM, _terminated)
            return main(argv)
        except (DataError, SettingError, app.UsageError, flags.ValidationError) as exc:
            _fail(exc, 2)
        except (StepFailed, TrainingDiverged) as exc:
            _fail(exc, 1)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what finished is kept; the same command resumes
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if logging.get_verbosity() >= 1:
                raise
            terminated = bool(_SIGTERM_SEEN)
            print(
                f"error: stopped by {'SIGTERM' if terminated else 'Ctrl-C'}; finished work is kept, the same "
                "command resumes it",
                file=sys.stderr,
            )
            sys.exit(143 if terminated else 130)

    app.run(guarded, flags_parser=_parse_flags)


# SIGTERM raises a KeyboardInterrupt where the program is, so that its cleanup runs as for Ctrl-C (the one
# exception Ray's wait lets through; it re-raises one of its own, so the signal is remembered here, not in a type).
_SIGTERM_SEEN: list[int] = []


def _terminated(signum, frame):
    _SIGTERM_SEEN.append(signum)
    raise KeyboardInterrupt


def _parse_flags(argv):
    """absl's parsing, with a bad or missing flag reported like every other bad input."""
    try:
        return flags.FLAGS(argv)
    except flags.CantOpenFlagFileError as exc:
        found = re.search(r"\[Errno \d+\] ([^:]+): '(.*)'", str(exc))
        text = f"{found[2]}: cannot read this flagfile ({found[1].lower()})" if found else str(exc)
    except BrokenPipeError:  # --help piped into `head`: the reader left, nothing is wrong
        sys.exit(0)
    except (OSError, UnicodeDecodeError) as exc:  # absl reads a flagfile it could open without a guard
        named = [a.split("=", 1)[1] for a in argv if a.startswith("--flagfile=")] or ["--flagfile"]
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        text = f"{', '.join(named)}: cannot read this flagfile ({problem}: expected UTF-8 text)"
    except flags.Error as exc:
        text = str(exc).splitlines()[0]
        unknown = re.match(r"Unknown command line flag '([\w-]+)'", text)
        if unknown:
            text = f"--{unknown[1]}: unknown flag (see --help)"
        found = re.match(r"flag --([\w-]+)", text)
        if found:
            text = _flag_problem(found[1], text, argv)
    print(f"error: {text}", file=sys.stderr)
    sys.exit(2)


def _flag_problem(name, text, argv):
    """absl's 'flag --name=<value>: <problem>' as '--name: <problem> (got <what the user wrote>)'. The value
    absl shows is the raw argument (a parse error) or the parsed value (a validator), either may hold ': '."""
    given = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    value = given[-1] if given else None
    problem = text.removeprefix(f"flag --{name}")
    parsed = flags.FLAGS[name].value if name in flags.FLAGS else None
    for shown in (value, str(parsed), ",".join(parsed) if isinstance(parsed, list) else None):
        if shown is not None and problem.startswith(f"={shown}: "):
            problem = problem[len(shown) + 3 :]
            break
    else:
        problem = problem.split(": ", 1)[-1]
    if "other than None" in problem:
        return f"--{name}: required, not given"
    problem = re.sub(r"^invalid literal for int\(\) with base \d+: .*", "expected an integer", problem)
    problem = re.sub(r"^could not convert string to float: .*", "expected a number", problem)
    return f"--{name}: {problem}" + (f" (got {value!r})" if value is not None else "")


def _quiet_tensorflow():
    """TensorFlow, once something imports it, with its start-up noise hidden, unless --verbosity >= 1 asks for it."""
    if "tensorflow" in sys.modules:
        return
    if logging.get_verbosity() >= 1:
        if not _TF_LEVEL_GIVEN:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]
        return
    level = os.environ["TF_CPP_MIN_LOG_LEVEL"]
    level = int(level) if level.strip().isdigit() else 0
    if level < 1:
        return
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|art)(\.|$)")
    if not flags.FLAGS["verbosity"].present:  # absl's INFO lines from TensorFlow's Python (a SavedModel's)
        logging.set_verbosity(logging.WARNING)
    pylogging.getLogger("tensorflow").setLevel(pylogging.ERROR)
    if not any(isinstance(f, _FilteredTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FilteredTensorFlowImport(level))


class _FilteredTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow, when something first asks for it, with stderr (fd 2) captured; then writes
    back all but the lines TF_CPP_MIN_LOG_LEVEL hides: TensorFlow logs a few lines (cudart_stub's
    "Could not find cuda drivers") through absl before it reads that variable (tensorflow/tensorflow#100442).
    Its GPU probe's "failed call to cuInit" is hidden only where no NVIDIA driver is loaded. Deferred to the
    first import so that a bad flag or file found before any TensorFlow work costs no TensorFlow start-up."""

    def __init__(self, level):
        self.level = level

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _CapturingLoader(spec.loader, self.level)
        return spec


class _CapturingLoader(importlib.abc.Loader):
    def __init__(self, loader, level):
        self.loader, self.level = loader, level

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        no_driver = not os.path.exists("/proc/driver/nvidia")
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
                module.config.list_physical_devices("GPU")
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                    record = _ABSL_RECORD.match(line)
                    if line.startswith(_ABSL_EARLY) or (record and "IWEF".index(record[1]) < self.level):
                        continue
                    if not (record and no_driver and "failed call to cuInit" in line):
                        sys.stderr.write(line)
                sys.stderr.flush()


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
        got = repr(spec) if spec.strip(" ,") else "an empty value"
        raise SettingError(name, f"expected comma-separated integers, got {got}") from None


def check_model(spec):
    """`--model` checked before TensorFlow loads: 'original', or a .keras archive (rundir.keras_archive)."""
    from blurnet_tf import rundir

    if spec != rundir.ORIGINAL:
        rundir.keras_archive(spec)
