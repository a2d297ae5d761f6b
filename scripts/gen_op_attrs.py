"""Write csrc/op_attrs.h: the C++ names of every op's attributes, from the op records.

    python scripts/gen_op_attrs.py           # rewrite csrc/op_attrs.h
    python scripts/gen_op_attrs.py --check   # exit 1 if it is not current

The cpu_eigen kernels read a node's attributes by name (``a.num(attr::elu::alpha)``); the names are
compile-time indices into the attribute tuple, generated here from ``OpDef.attrs`` so that the op
record stays the one place an attribute is declared.  tests/test_cpu_eigen.py fails when the header
is stale, and the backend refuses to load when the module was built from another op table.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEADER = ROOT / "csrc" / "op_attrs.h"

# C++ keywords an attribute or op name could collide with: such a name gets a trailing underscore.
_KEYWORDS = frozenset("""alignas alignof and and_eq asm auto bitand bitor bool break case catch char class compl
const constexpr const_cast continue decltype default delete do double dynamic_cast else enum explicit export
extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr operator
or or_eq private protected public register reinterpret_cast return short signed sizeof static static_assert
static_cast struct switch template this thread_local throw true try typedef typeid typename union unsigned
using virtual void volatile wchar_t while xor xor_eq""".split())


def cxx_name(name: str) -> str:
    """``name`` as a C++ identifier (a keyword gets a trailing underscore)."""
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not usable as a C++ name")
    return name + "_" if name in _KEYWORDS else name


def render(op_list) -> str:
    """The header's text for the op records ``op_list`` (``dynet_api.ops.OP_LIST``)."""
    lines = [
        "// Generated from dynet_api/ops.py by `python scripts/gen_op_attrs.py`: do not edit.",
        "// attr::<op>::<name> is the place of attribute <name> in a node of <op>'s attribute tuple;",
        "// kernels read attributes through these names (Attrs::num, integer, flag, ints, seq in common.h).",
        "#pragma once",
        "",
        '#include "common.h"',
        "",
        "namespace dy {",
        "namespace attr {",
        "",
    ]
    table = []
    for op in op_list:
        if not op.attrs:
            continue
        keys = ", ".join(f'{cxx_name(a)}{{{k}, "{op.name}.{a}"}}' for k, a in enumerate(op.attrs))
        lines.append(f"namespace {cxx_name(op.name)} {{ constexpr AttrKey {keys}; }}")
        table.append(f'    {{"{op.name}", "{",".join(op.attrs)}"}},')
    lines += [
        "",
        "// Every op's attribute names in order (comma-separated), for the check at load time.",
        "struct OpAttrNames {",
        "  const char* op;",
        "  const char* names;",
        "};",
        "inline constexpr OpAttrNames kAll[] = {",
        *table,
        "};",
        "",
        "}  // namespace attr",
        "}  // namespace dy",
        "",
    ]
    return "\n".join(lines)


def write_or_check(header: pathlib.Path, text: str, argv: list[str], script: str) -> int:
    """Write ``text`` to ``header``, or with ``--check`` in ``argv`` return 1 if the file differs."""
    if "--check" in argv:
        if not header.exists() or header.read_text() != text:
            print(f"{header} is stale: run python {script}", file=sys.stderr)
            return 1
        return 0
    header.write_text(text)
    return 0


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from dynet_api.ops import OP_LIST

    return write_or_check(HEADER, render(OP_LIST), argv, "scripts/gen_op_attrs.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
