"""Every public name of ``dynet_api`` documents itself (issue 16, "help() that helps").

The walk: ``dir(dynet_api)``'s public callables and classes defined in the package, and
each class's public methods and properties defined in the package.  A name falls short
when its docstring is missing or not its own (a class's docstring inherited from a base,
a C callable showing its internal class's docstring, a method without a docstring whose
base method has one), or when a parameter of its signature is not named in it.
``python tests/test_docstrings.py`` prints the shortfalls and the counts.
"""

from __future__ import annotations

import inspect
import re
import types

import dynet_api as dy


def _own_doc(obj) -> str | None:
    """The docstring ``obj`` carries itself, never one found through its type or a base class."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__")
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
        return obj.__doc__
    if isinstance(obj, property):
        return obj.__doc__
    # A callable object (the C-accelerated op functions): only a docstring set on the instance.
    return getattr(obj, "__dict__", {}).get("__doc__")


def _in_package(obj) -> bool:
    mod = getattr(obj, "__module__", None) or type(obj).__module__
    return isinstance(mod, str) and mod.split(".")[0] == "dynet_api"


def public_names() -> list[tuple[str, object]]:
    """(name, object) for each public callable or class of ``dynet_api``."""
    out = []
    for name in sorted(dir(dy)):
        if name.startswith("_"):
            continue
        obj = getattr(dy, name)
        if isinstance(obj, types.ModuleType) or not callable(obj) or not _in_package(obj):
            continue
        out.append((name, obj))
    return out


def public_methods() -> list[tuple[str, object]]:
    """("Class.method", function or property) for the public methods of the public classes,
    each once: under the class that defines it (inherited ones are checked where defined)."""
    seen: set[tuple[type, str]] = set()
    out = []
    for _, cls in public_names():
        if not inspect.isclass(cls):
            continue
        for m in sorted(dir(cls)):
            if m.startswith("_"):
                continue
            owner = next((k for k in cls.__mro__ if m in k.__dict__), None)
            if owner is None or not owner.__module__.startswith("dynet_api") or (owner, m) in seen:
                continue
            if owner.__module__ == "dynet_api._fastgraph":
                # The C accelerator's graph primitives (ComputationGraph.add...): internal, and
                # documented in their pure-Python twins (graph._PyGraphOps), which this walk checks
                # where the accelerator is not built.
                continue
            raw = owner.__dict__[m]
            if isinstance(raw, (staticmethod, classmethod)):
                raw = raw.__func__
            if not (callable(raw) or isinstance(raw, property)):
                continue
            seen.add((owner, m))
            out.append((f"{owner.__name__}.{m}", raw))
    return out


def _params(obj) -> list[str]:
    target = obj.fget if isinstance(obj, property) else obj
    sig = inspect.signature(target)
    # Private parameters (``_name``) are internal plumbing, not part of DyNet's API.
    return [p for p in sig.parameters if p not in ("self", "cls") and not p.startswith("_")]


def shortfall(name: str, obj) -> str | None:
    """Why ``obj``'s docstring falls short, or None."""
    doc = _own_doc(obj) or ""
    if inspect.isclass(obj):
        init = obj.__dict__.get("__init__")
        if init is not None and init.__doc__:
            doc += "\n" + init.__doc__
        if not obj.__dict__.get("__doc__"):
            return "no docstring of its own"
    elif not doc.strip():
        return "no docstring of its own"
    try:
        params = _params(obj)
    except (TypeError, ValueError):
        if inspect.isclass(obj):
            return None  # made by the package (Expression), never constructed with arguments
        return "no signature"
    missing = [p for p in params if not re.search(rf"(?<![\w.]){re.escape(p)}(?!\w)", doc)]
    if missing:
        return "does not name " + ", ".join(missing)
    return None


def shortfalls() -> dict[str, str]:
    out = {}
    for name, obj in public_names() + public_methods():
        why = shortfall(name, obj)
        if why:
            out[name] = why
    return out


def test_the_walk_finds_the_api():
    names = dict(public_names())
    methods = dict(public_methods())
    # Functions, C-accelerated op functions, classes, methods and properties are all walked.
    for n in ("tanh", "pickneglogsoftmax", "lookup", "AdamTrainer", "ParameterCollection", "LSTMBuilder"):
        assert n in names
    for m in ("Expression.npvalue", "ParameterCollection.add_parameters", "Trainer.update"):
        assert m in methods
    assert "Sequence" not in names and "np" not in names  # names imported from elsewhere are not the API
    assert len(names) > 200 and len(methods) > 100


def test_shortfall_sees_inherited_and_internal_docstrings():
    class Base:
        """Base's sentence."""

        def f(self, a):
            """Uses a."""

    class Sub(Base):
        def f(self, a):
            pass

    assert shortfall("Sub", Sub) == "no docstring of its own"
    assert shortfall("Sub.f", Sub.__dict__["f"]) == "no docstring of its own"
    assert shortfall("Base.f", Base.__dict__["f"]) is None

    def g(x, dims=0):
        """Uses x only; the dimensions are not named."""

    assert shortfall("g", g) == "does not name dims"


def test_every_public_name_has_its_own_docstring_naming_its_arguments():
    bad = shortfalls()
    assert not bad, f"{len(bad)} public names fall short:\n" + "\n".join(f"  {k}: {v}" for k, v in bad.items())


def test_op_functions_show_their_documentation_and_signature():
    import pydoc

    for f, args in ((dy.tanh, ["x"]), (dy.pickneglogsoftmax, ["x", "v"]), (dy.concatenate, ["xs", "d"]),
                    (dy.lookup, ["p", "index", "update"]), (dy.cmult, ["x", "y"]), (dy.sin, ["x"])):
        assert f.__name__ in ("tanh", "pickneglogsoftmax", "concatenate", "lookup", "cmult", "sin")
        assert list(inspect.signature(f).parameters) == args
        text = pydoc.render_doc(f, renderer=pydoc.plaintext)
        # help() shows the function's own text, never the internal callable class's documentation
        # (pydoc may still name that class in its title line for a C callable).
        internal = type(f).__doc__
        if internal and not inspect.isfunction(f):
            assert internal.splitlines()[0] not in text, text
        assert f.__doc__.splitlines()[0] in text
        for a in args:
            assert a in f.__doc__
    # An op function's text is its op record's doc.
    from dynet_api.ops import OPS

    assert dy.tanh.__doc__.startswith(OPS["tanh"].doc) and dy.acosh.__doc__.startswith(OPS["acosh"].doc)


def test_the_api_reference_lists_every_public_name():
    """docs/api.rst names each public callable, so the Sphinx build documents the whole API."""
    import pathlib

    rst = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.rst"
    text = rst.read_text()
    missing = [n for n, _ in public_names() if not re.search(rf"::\s+dynet_api\.{re.escape(n)}\s*$", text, re.M)]
    assert not missing, f"add to docs/api.rst: {missing}"


def test_the_package_is_marked_typed():
    """py.typed ships with the package (PEP 561), so type checkers read its hints."""
    from importlib.resources import files

    assert files("dynet_api").joinpath("py.typed").is_file()


if __name__ == "__main__":
    every = public_names() + public_methods()
    bad = shortfalls()
    for k, v in bad.items():
        print(f"{k}: {v}")
    tops = [n for n, _ in public_names()]
    print(f"public callables: {len(tops)}, without their own docstring: "
          f"{sum(1 for n, o in public_names() if not (_own_doc(o) or '').strip())}")
    print(f"all walked (callables + methods): {len(every)}, short: {len(bad)}")
