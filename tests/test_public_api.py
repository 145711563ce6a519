"""The public API's contract (issue #30): every name the packages export is typed and carries a NumPy-style
docstring whose Parameters section names every parameter of its signature (array parameters with a
shape) and whose Returns section says what comes back. A renamed or added parameter without its line
in the docstring fails here."""

import importlib
import inspect
import re
import types

import pytest

PACKAGES = ("attacks", "defences", "models", "data", "registry")
LAZY = {"evaluation": ("benchmark", "strength_checks")}
SKIP = {"self", "args", "kwargs"}


def public():
    out = []
    for name in PACKAGES:
        package = importlib.import_module(f"blurnet_tf.{name}")
        out += [(f"{name}.{n}", getattr(package, n)) for n in package.__all__]
    for name, names in LAZY.items():
        package = importlib.import_module(f"blurnet_tf.{name}")
        out += [(f"{name}.{n}", getattr(package, n)) for n in names]
    return [(n, o) for n, o in out if inspect.isfunction(o) or inspect.isclass(o)]


def sections(doc):
    """{heading: body} of a NumPy-style docstring (a heading is a line underlined with dashes)."""
    parts = re.split(r"^(\w[\w ]*)\n-{3,}\n", doc, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def parameters(obj):
    signature = inspect.signature(obj)
    return [
        p
        for p in signature.parameters.values()
        if p.name not in SKIP and not p.name.startswith("_") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def entries(body):
    """{name: description} of a Parameters / Attributes section ("name : type" lines, text indented below)."""
    found, current = {}, None
    for line in body.splitlines():
        m = re.match(r"^(\w+(?:, \w+)*)\s*:", line)
        if m:
            current = m[1].split(", ")
            for n in current:
                found[n] = ""
        elif current:
            for n in current:
                found[n] += line + "\n"
    return found


@pytest.mark.parametrize("name,obj", public(), ids=[n for n, _ in public()])
def test_every_public_name_is_typed_and_documented_numpy_style(name, obj):
    doc = inspect.getdoc(obj) or ""
    found = sections(doc)
    assert doc.split("\n", 1)[0].strip(), f"{name}: no summary line"
    params = parameters(obj)
    if params:
        listed = entries(found.get("Parameters", "") + found.get("Attributes", ""))
        missing = [p.name for p in params if p.name not in listed]
        assert not missing, f"{name}: Parameters section lacks {missing}"
        untyped = [p.name for p in params if p.annotation is inspect.Parameter.empty]
        assert not untyped, f"{name}: parameters without a type hint: {untyped}"
        arrays = [
            p.name
            for p in params
            if re.search(r"ndarray|Tensor", str(p.annotation))
            and not re.search(r"\[[^\]]*\]|shape|scalar", listed[p.name])
        ]
        assert not arrays, f"{name}: array parameters without a shape: {arrays}"
    if inspect.isfunction(obj):
        returns = inspect.signature(obj).return_annotation
        assert returns is not inspect.Signature.empty, f"{name}: no return type hint"
        if returns not in (None, "None"):
            assert "Returns" in found or "Yields" in found, f"{name}: no Returns section"


def test_the_lazy_exports_are_the_modules_functions():
    from blurnet_tf.evaluation import attack_strength, benchmark, robustness_benchmark, strength_checks

    assert benchmark is robustness_benchmark.benchmark and strength_checks is attack_strength.strength_checks
    from blurnet_tf.defences import PixelDeflection
    from blurnet_tf.defences.pixel_deflection import PixelDeflection as direct

    assert PixelDeflection is direct and isinstance(importlib.import_module("blurnet_tf.defences"), types.ModuleType)
