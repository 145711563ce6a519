"""Helpers for the absl binaries (no flags are defined or read here)."""

import sys

from absl import app

from blurnet_tf.errors import DataError, StepFailed


def run(main):
    """app.run(main), printing bad input as one clear line instead of a traceback."""

    def guarded(argv):
        try:
            return main(argv)
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except StepFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded)


def flag_values(flags_module, names):
    """{name: value} of the binary's own flags, stored with its results."""
    return {n: flags_module.FLAGS[n].value for n in names}
