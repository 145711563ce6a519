"""argparse types the bench scripts share: a bad count is refused in one line, naming the flag.
The scripts import it as a sibling, so they run as files (`python bench/<script>.py`), not with -m."""

import argparse


def _integer(low, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive = _integer(1, "an integer >= 1")
non_negative = _integer(0, "an integer >= 0")
