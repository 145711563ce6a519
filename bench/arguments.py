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


def int_list(text):
    """'0,1,2' as a list of integers >= 0 (an argparse type: a bad list is one line naming the flag)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return values


def targets(text):
    """'all' or a list of class indices (an argparse type)."""
    return text if text == "all" else int_list(text)
