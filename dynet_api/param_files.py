"""DyNet's save and load of parameters, collections and builders, over the model-file format (io).

A collection is written with all its Parameters first, then all its
LookupParameters, each in creation order; ``populate`` reads them back in that
order into an identically built collection, as DyNet does, and warns about
each pair whose names differ (``strict=True`` raises instead).  A load checks
the whole file against the collection before changing any value, so a failed
load leaves the model untouched.

``dy.save(basename, objects)`` writes ``basename.data`` (records as in :mod:`dynet_api.io`) and
``basename.meta`` (one pickle per object: ``("Parameters", name)``,
``("LookupParameters", name)`` or ``(class, spec, collection name)``), as DyNet
does; a basename ending in ``.safetensors`` writes the data to that file and
the pickles to ``basename.meta``.

This module sits below :mod:`dynet_api.params` (whose ``save``/``populate`` methods call it), so
it reads parameters through what they all have: ``name()`` and their storage ``_st`` (``dim``,
``lookup``, ``host()``, ``backend``, ``value``), and collections through their list methods.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np

from .dim import Dim
from .io import (
    LOOKUP,
    PARAM,
    Entry,
    ModelFileError,
    Record,
    check_key,
    data_file,
    dims_match,
    find_record,
    iter_meta,
    read_records,
    write_records,
    write_records_and_meta,
)


def _kind(obj) -> str:
    return LOOKUP if obj._st.lookup else PARAM


def _dims(obj) -> tuple[int, ...]:
    """The printed dims of a parameter: its dims, and for a lookup table the row dims then the row count."""
    st = obj._st
    return st.dim.d + (st.dim.bd,) if st.lookup else st.dim.d


def _entry(obj, name: str) -> Entry:
    return (_kind(obj), name, _dims(obj), obj._st.host)


def _ordered(pc) -> list:
    return pc.parameters_list() + pc.lookup_parameters_list()


def _collection_entries(pc, key: str = "") -> list[Entry]:
    prefix = pc.name()
    k = key if not key or key.endswith("/") else key + "/"
    return [_entry(p, k + p.name()[len(prefix):] if k else p.name()) for p in _ordered(pc)]


def save_collection(pc, fname: str, key: str = "", append: bool = False) -> None:
    """``ParameterCollection.save``: every parameter of ``pc``, names prefixed by ``key`` if given."""
    check_key(key, True)
    write_records(fname, _collection_entries(pc, key), append)


def save_objects(fname: str, objs: list, key: str = "", append: bool = False) -> None:
    """``Parameters.save``: each parameter under ``key`` (default: its own name)."""
    check_key(key, False)
    write_records(fname, [_entry(o, key or o.name()) for o in objs], append)


def _assign(obj, r: Record) -> None:
    st = obj._st
    st.set_host(r.values.reshape(st.dim.shape, order="F"))  # the weights (divided by the decay factor)


def _relative(names: list[str], prefix: str | None = None) -> list[str]:
    """Names without their collection's prefix: ``prefix`` when known, else the common folder."""
    if prefix is None:
        common = os.path.commonprefix(names) if names else ""
        prefix = common[:common.rfind("/") + 1] if "/" in common else ""
    return [n[len(prefix):] if n.startswith(prefix) else n for n in names]


def _check_names(fname: str, pairs: list, key: str, prefix: str, strict: bool) -> None:
    """Loading is by position, as in DyNet; differing names are reported (warning, or error if strict)."""
    file_names = _relative([r.name for _, r in pairs], key if key else None)
    mine = _relative([o.name() for o, _ in pairs], None if not key else prefix)
    diffs = [(a, b) for a, b in zip(file_names, mine) if a != b]
    if not diffs:
        return
    shown = "; ".join(f"{a!r} in the file -> {b!r} in the model" for a, b in diffs[:10])
    more = f" (and {len(diffs) - 10} more)" if len(diffs) > 10 else ""
    if strict:
        raise ModelFileError(f"{fname}: {len(diffs)} parameter name(s) differ from the model's: {shown}{more}; "
                             "nothing was loaded (strict=True)")
    warnings.warn(f"{fname}: loaded by position as DyNet does, but {len(diffs)} parameter name(s) differ: "
                  f"{shown}{more} (populate(..., strict=True) raises instead)", UserWarning, stacklevel=4)


def populate_collection(pc, fname: str, key: str = "", strict: bool = False) -> None:
    """Fill ``pc`` from ``fname`` in order; validate everything before assigning anything."""
    records = read_records(fname)
    if key:
        k = key if key.endswith("/") else key + "/"
        records = [r for r in records if r.name.startswith(k)]
    params = [r for r in records if r.kind == PARAM]
    lookups = [r for r in records if r.kind == LOOKUP]
    mine_p, mine_l = pc.parameters_list(), pc.lookup_parameters_list()
    pairs = []
    for recs, objs, what in ((params, mine_p, "parameter"), (lookups, mine_l, "lookup parameter")):
        for j, r in enumerate(recs):
            if j >= len(objs):
                raise ModelFileError(f"{fname}: Too many {what}s to load in populated model at {r.name}")
            kind, want = _kind(objs[j]), _dims(objs[j])
            if not dims_match(kind, want, r.dims):
                raise ModelFileError(
                    f"{fname}: Dimensions of {what} {r.name} looked up from file ({Dim(r.dims)}) do not match "
                    f"{what}s to be populated ({objs[j].name()}: {Dim(want)})")
            pairs.append((objs[j], r))
    if len(params) != len(mine_p) or len(lookups) != len(mine_l):
        raise ModelFileError(
            f"{fname}: Number of parameter/lookup parameter objects loaded from file ({len(params)}/{len(lookups)}) "
            f"did not match number to be populated ({len(mine_p)}/{len(mine_l)})")
    _check_names(fname, pairs, (key if key.endswith("/") else key + "/") if key else "", pc.name(), strict)
    for obj, r in pairs:
        _assign(obj, r)


def populate_object(obj, fname: str, key: str = "") -> None:
    """``Parameters.populate``: the record named ``key`` (default: the parameter's name) into ``obj``."""
    kind, want = _kind(obj), _dims(obj)
    r = find_record(fname, key or obj.name(), kind)
    if not dims_match(kind, want, r.dims):
        raise ModelFileError(f"{fname}: Attempted to populate {obj.name()} where arguments don't match "
                             f"({Dim(want)} != {Dim(r.dims)})")
    _assign(obj, r)


def load_param(pc, fname: str, key: str, lookup: bool):
    """A new parameter (or lookup table) of ``pc`` made from the record named ``key``."""
    r = find_record(fname, key, LOOKUP if lookup else PARAM)
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
    """Saves parameters and builders to a data file and ``basename.meta``; both are renamed into
    place only when both are written.

    Args:
        basename (str): the path without extension (data in ``basename.data``, DyNet's text format),
            or a path ending in ``.safetensors`` (data in that file, in safetensors format).
        objects (list): Parameters, LookupParameters and savable objects (builders and anything with
            ``spec``, ``from_spec`` and ``param_collection``), restored in this order by :func:`load`.
    """
    meta: list[tuple] = []
    entries: list[Entry] = []
    for obj in objects:
        if hasattr(obj, "_st"):
            meta.append(("LookupParameters" if obj._st.lookup else "Parameters", obj.name()))
            entries.append(_entry(obj, obj.name()))
        else:
            if not hasattr(obj, "spec") or not hasattr(type(obj), "from_spec"):
                raise TypeError(f"save: {type(obj).__name__} is not savable "
                                "(it needs .spec, .from_spec and .param_collection())")
            pc = obj.param_collection()
            meta.append((type(obj), obj.spec, pc.name()))
            entries.extend(_entry(p, p.name()) for p in _ordered(pc))
    meta_bytes = b"".join(pickle.dumps(m) for m in meta)  # one pickle per object, as DyNet writes them
    write_records_and_meta(data_file(basename), entries, basename + ".meta", meta_bytes)


def load_generator(basename: str, pc):
    """Yields the objects saved by :func:`save`, one at a time, created in ``pc``.

    Args:
        basename (str): the path given to :func:`save`.
        pc (ParameterCollection): the collection the objects are created in.
    """
    datafname = data_file(basename)
    read_records(datafname)  # fail early on a damaged data file
    for o in iter_meta(basename + ".meta"):
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
