"""Number formatting shared by the report sections (public: every report and the README tooling use them):
percentages, numbers, and differences from a paper."""

DISAGREE_POINTS = 10.0  # report a difference from the paper larger than this (percentage points)


def pct(v):
    return "–" if v is None else f"{100 * v:.1f}"


def num(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def diff_from_paper(ours, theirs, disagreements, label):
    """'+x.x' in points; differences over DISAGREE_POINTS are flagged and collected."""
    if ours is None or theirs is None:
        return "–"
    d = 100 * (ours - theirs)
    if abs(d) > DISAGREE_POINTS:
        disagreements.append(f"{label}: ours {100 * ours:.1f}%, paper {100 * theirs:.1f}% ({d:+.1f} pt)")
        return f"**{d:+.1f}**"
    return f"{d:+.1f}"
