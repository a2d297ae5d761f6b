"""Model files in DyNet's text format, so models move between DyNet 2.x and here.

A file is a sequence of records.  Each record is a header line and one line of
values (a second line of gradients when the header says ``FULL_GRAD``)::

    #Parameter# /W {2,3} 97 ZERO_GRAD
    +1.00000000e+00 -5.00000000e-01 ...
    #LookupParameter# /E {3,10} 481 ZERO_GRAD
    ...

* the name is the parameter's full name (or the save key with the collection's
  prefix replaced); the dim is printed as DyNet prints a ``Dim``, and for a
  lookup table it is the row dims followed by the number of rows;
* the number is the byte count of the lines that follow: 16 characters per
  value (``%+.8e`` and a space) plus the newline, doubled for ``FULL_GRAD``;
* values are in column-major order; a lookup table's rows follow each other,
  each row column-major.

A collection is written with all its Parameters first, then all its
LookupParameters, each in creation order; ``populate`` reads them back in that
order into an identically built collection.  Saving writes a temporary file in
the same folder and renames it over the target, so a failed save never leaves
a half-written model; a load checks the whole file against the collection
before changing any value, so a failed load leaves the model untouched.

``dy.save(basename, objects)`` writes ``basename.data`` (records as above) and
``basename.meta`` (one pickle per object: ``("Parameters", name)``,
``("LookupParameters", name)`` or ``(class, spec, collection name)``), as DyNet does.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass

import numpy as np

from .dim import Dim, truncated

WIDTH = 16  # characters per value: "+1.23456789e+00 "


@dataclass
class Record:
    kind: str  # "#Parameter#" or "#LookupParameter#"
    name: str
    dims: tuple[int, ...]  # as printed: for lookups, row dims then the row count
    values: np.ndarray  # flat, column-major
    grads: np.ndarray | None = None


# ------------------------------------------------------------------ text


def _dim_text(dims: tuple[int, ...]) -> str:
    return "{" + ",".join(str(d) for d in dims) + "}"


def _parse_dim(text: str, where: str) -> tuple[int, ...]:
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"{where}: bad dimension {text!r}")
    body = text[1:-1]
    if "X" in body:
        body, bd = body.split("X", 1)
        if int(bd) != 1:
            raise ValueError(f"{where}: a parameter cannot have a batch ({text})")
    try:
        return tuple(int(x) for x in body.split(",")) if body else (1,)
    except ValueError:
        raise ValueError(f"{where}: bad dimension {text!r}") from None


def _values_line(v: np.ndarray) -> str:
    return "".join("%+.8e " % x for x in v.astype(np.float64)) + "\n"


def format_record(r: Record) -> str:
    n = int(np.prod(r.dims))
    size = n * WIDTH + 1
    if r.grads is None:
        head = f"{r.kind} {r.name} {_dim_text(r.dims)} {size} ZERO_GRAD\n"
        return head + _values_line(r.values)
    head = f"{r.kind} {r.name} {_dim_text(r.dims)} {2 * size} FULL_GRAD\n"
    return head + _values_line(r.values) + _values_line(r.grads)


def read_records(fname: str) -> list[Record]:
    """Parse a whole file; any damage raises ValueError naming the file and the line."""
    try:
        with open(fname) as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise OSError(f"Could not read model from {fname}: {e.strerror or e}") from None
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        where = f"{fname}, line {i + 1}"
        parts = line.split()
        if len(parts) < 4 or parts[0] not in ("#Parameter#", "#LookupParameter#"):
            raise ValueError(f"{where}: Bad parameter specification in model: {line[:80]!r}")
        kind, name, dtext = parts[0], parts[1], parts[2]
        dims = _parse_dim(dtext, where)
        full = len(parts) > 4 and parts[4] == "FULL_GRAD"
        n = int(np.prod(dims))
        vals = []
        for k in range(2 if full else 1):
            if i + 1 + k >= len(lines):
                raise ValueError(f"{where}: the file ends before the values of {name} (truncated?)")
            text = lines[i + 1 + k].split()
            if len(text) != n:
                raise ValueError(f"{where}: {name} {dtext} needs {n} values, the file has {len(text)} "
                                 "(truncated or corrupt?)")
            try:
                vals.append(np.array(text, dtype=np.float64))
            except ValueError:
                raise ValueError(f"{where}: values of {name} are not numbers (corrupt file?)") from None
        out.append(Record(kind, name, dims, vals[0], vals[1] if full else None))
        i += 2 + (1 if full else 0)
    return out


def _temp_file(folder: str) -> tuple[int, str]:
    """A temporary file next to the target, with the mode a plain ``open`` would give (mkstemp's is 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    return fd, tmp


def write_atomic(fname: str, text: str, append: bool = False) -> None:
    """Write (or append to) a file through a temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(fname))
    old = ""
    if append and os.path.exists(fname):
        with open(fname) as f:
            old = f.read()
    fd, tmp = _temp_file(folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(old)
            f.write(text)
        os.replace(tmp, fname)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------ objects <-> records


def _record_of(obj, name: str) -> Record:
    from .params import LookupParameters

    st = obj._st
    host = st.host().astype(np.float64)  # Dim.shape layout: dims + (batch or rows,)
    if isinstance(obj, LookupParameters):
        d = st.dim.d + (st.dim.bd,)
        return Record("#LookupParameter#", name, d, host.reshape(-1, order="F"))
    return Record("#Parameter#", name, st.dim.d, host.reshape(-1, order="F"))


def _expected(obj) -> tuple[str, tuple[int, ...]]:
    from .params import LookupParameters

    st = obj._st
    if isinstance(obj, LookupParameters):
        return "#LookupParameter#", st.dim.d + (st.dim.bd,)
    return "#Parameter#", st.dim.d


def _check_key(key: str, collection: bool) -> None:
    if key and (" " in key or "#" in key or key == "/" or (collection and not key.startswith("/"))):
        raise ValueError(f"Key should start with '/' and could not include ' ' or '#': {key}")


def _ordered(pc) -> list:
    return pc.parameters_list() + pc.lookup_parameters_list()


def save_collection(pc, fname: str, key: str = "", append: bool = False) -> None:
    _check_key(key, True)
    prefix = pc.name()
    k = key if not key or key.endswith("/") else key + "/"
    text = "".join(format_record(_record_of(p, k + p.name()[len(prefix):] if k else p.name())) for p in _ordered(pc))
    write_atomic(fname, text, append)


def save_objects(fname: str, objs: list, key: str = "", append: bool = False) -> None:
    _check_key(key, False)
    write_atomic(fname, "".join(format_record(_record_of(o, key or o.name())) for o in objs), append)


def _dims_match(kind: str, want: tuple, got: tuple) -> bool:
    if kind == "#LookupParameter#":
        return truncated(tuple(want[:-1])) == truncated(tuple(got[:-1])) and want[-1] == got[-1]
    return truncated(tuple(want)) == truncated(tuple(got))


def _assign(obj, r: Record) -> None:
    st = obj._st
    arr = r.values.reshape(st.dim.shape, order="F").astype(st.backend.dtype)
    st.backend.assign(st.value, arr)


def populate_collection(pc, fname: str, key: str = "") -> None:
    """Fill ``pc`` from ``fname`` in order; validate everything before assigning anything."""
    records = read_records(fname)
    if key:
        k = key if key.endswith("/") else key + "/"
        records = [r for r in records if r.name.startswith(k)]
    params = [r for r in records if r.kind == "#Parameter#"]
    lookups = [r for r in records if r.kind == "#LookupParameter#"]
    mine_p, mine_l = pc.parameters_list(), pc.lookup_parameters_list()
    pairs = []
    for recs, objs, what in ((params, mine_p, "parameter"), (lookups, mine_l, "lookup parameter")):
        for j, r in enumerate(recs):
            if j >= len(objs):
                raise ValueError(f"{fname}: Too many {what}s to load in populated model at {r.name}")
            kind, want = _expected(objs[j])
            if not _dims_match(kind, want, r.dims):
                raise ValueError(
                    f"{fname}: Dimensions of {what} {r.name} looked up from file ({Dim(r.dims)}) do not match "
                    f"{what}s to be populated ({objs[j].name()}: {Dim(want)})")
            pairs.append((objs[j], r))
    if len(params) != len(mine_p) or len(lookups) != len(mine_l):
        raise ValueError(
            f"{fname}: Number of parameter/lookup parameter objects loaded from file ({len(params)}/{len(lookups)}) "
            f"did not match number to be populated ({len(mine_p)}/{len(mine_l)})")
    for obj, r in pairs:
        _assign(obj, r)


def _find(fname: str, key: str, kind: str) -> Record:
    if not key:
        raise ValueError(f"{fname}: populate/load of a single parameter requires a non-empty key")
    for r in read_records(fname):
        if r.kind == kind and r.name == key:
            return r
    raise KeyError(f"Could not find key {key} in the model file {fname}")


def populate_object(obj, fname: str, key: str = "") -> None:
    kind, want = _expected(obj)
    r = _find(fname, key or obj.name(), kind)
    if not _dims_match(kind, want, r.dims):
        raise ValueError(f"{fname}: Attempted to populate {obj.name()} where arguments don't match "
                         f"({Dim(want)} != {Dim(r.dims)})")
    _assign(obj, r)


def load_param(pc, fname: str, key: str, lookup: bool):
    kind = "#LookupParameter#" if lookup else "#Parameter#"
    r = _find(fname, key, kind)
    if lookup:
        n, row = r.dims[-1], r.dims[:-1] or (1,)
        table = r.values.reshape(row + (n,), order="F")
        p = pc.lookup_parameters_from_numpy(np.moveaxis(table, -1, 0))
    else:
        p = pc.parameters_from_numpy(r.values.reshape(r.dims, order="F"))
    p._st.name = r.name
    return p


# ------------------------------------------------------------------ dy.save / dy.load


def save(basename: str, objects: list) -> None:
    """Saves parameters and builders to ``basename.data`` and ``basename.meta`` (each written atomically).

    Args:
        basename (str): the path without extension.
        objects (list): Parameters, LookupParameters and savable objects (builders and anything with
            ``spec``, ``from_spec`` and ``param_collection``), restored in this order by :func:`load`.
    """
    from .params import LookupParameters, Parameters

    meta, data = [], []
    for obj in objects:
        if isinstance(obj, Parameters):
            meta.append(("Parameters", obj.name()))
            data.append(format_record(_record_of(obj, obj.name())))
        elif isinstance(obj, LookupParameters):
            meta.append(("LookupParameters", obj.name()))
            data.append(format_record(_record_of(obj, obj.name())))
        else:
            if not hasattr(obj, "spec") or not hasattr(type(obj), "from_spec"):
                raise TypeError(f"save: {type(obj).__name__} is not savable "
                                "(it needs .spec, .from_spec and .param_collection())")
            pc = obj.param_collection()
            meta.append((type(obj), obj.spec, pc.name()))
            data.append("".join(format_record(_record_of(p, p.name())) for p in _ordered(pc)))
    # Pickle first (one pickle per object, as DyNet's successive pickle.dump calls write), then write
    # both temporary files, then rename: a failure anywhere leaves the old .data and .meta as they were.
    meta_bytes = b"".join(pickle.dumps(m) for m in meta)
    folder = os.path.dirname(os.path.abspath(basename + ".meta"))
    tmps: list[str] = []
    try:
        for payload, mode in (("".join(data), "w"), (meta_bytes, "wb")):
            fd, tmp = _temp_file(folder)
            tmps.append(tmp)
            with os.fdopen(fd, mode) as fh:
                fh.write(payload)
        os.replace(tmps[0], basename + ".data")
        os.replace(tmps[1], basename + ".meta")
    except BaseException:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def load_generator(basename: str, pc):
    """Yields the objects saved by :func:`save`, one at a time, created in ``pc``.

    Args:
        basename (str): the path given to :func:`save`.
        pc (ParameterCollection): the collection the objects are created in.
    """
    datafname = basename + ".data"
    read_records(datafname)  # fail early on a damaged data file
    with open(basename + ".meta", "rb") as fh:
        while True:
            try:
                o = pickle.load(fh)
            except EOFError:
                return
            if o[0] == "Parameters":
                yield pc.load_param(datafname, o[1])
            elif o[0] == "LookupParameters":
                yield pc.load_lookup_param(datafname, o[1])
            else:
                cls, spec, name = o
                obj = cls.from_spec(spec, pc)
                obj.param_collection().populate(datafname, name)
                yield obj


def load(basename: str, pc) -> list:
    """The objects saved by :func:`save`, in their order, created in ``pc``.

    Args:
        basename (str): the path given to :func:`save`.
        pc (ParameterCollection): the collection the objects are created in.
    """
    return list(load_generator(basename, pc))
