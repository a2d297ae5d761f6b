"""Model files: DyNet's text format, so models move between DyNet 2.x and here, and safetensors.

A text file is a sequence of records.  Each record is a header line and one
line of values (a second line of gradients when the header says ``FULL_GRAD``)::

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

A file name ending in ``.safetensors`` holds the same records in the
safetensors format (binary float32, one tensor per record, the record order
and kinds in its metadata): it saves and loads an order of magnitude faster.

Records are written and read one at a time, so the extra memory is about one
record's text.  Saving writes a temporary file in the same folder, named after the
target and the process (``.NAME.tmp-HOST-PID-XXXX``), and renames it over the
target, so a failed save never leaves a half-written model; leftovers of a
process that no longer exists are removed by the next save of that target.
A target that is not a regular file, or is write-protected, is refused.

This is the format layer: it reads and writes named arrays and knows nothing of
parameters; :mod:`dynet_api.param_files` maps parameters, collections and
``dy.save``'s objects to records.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import secrets
import socket
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .accelerator import fastgraph
from .dim import truncated

try:  # a dependency of the project; without it only the .safetensors files fail, with a clear error
    import safetensors
    import safetensors.numpy
except ImportError:  # pragma: no cover
    safetensors = None  # type: ignore[assignment]

# the C accelerator formats values 2x faster than Python (csrc/fastgraph.c)
_format_values_c = fastgraph.format_values if fastgraph is not None else None

WIDTH = 16  # characters per value: "+1.23456789e+00 "
PARAM, LOOKUP = "#Parameter#", "#LookupParameter#"


Entry = tuple[str, str, tuple[int, ...], Callable[[], np.ndarray]]
"""A record to write: kind (PARAM or LOOKUP), name, printed dims, and a function giving the values as an
array of those dims (called when the record is written, so one record's values are in memory at a time)."""


@dataclass
class Record:
    kind: str  # PARAM or LOOKUP
    name: str
    dims: tuple[int, ...]  # as printed: for lookups, row dims then the row count
    values: np.ndarray  # flat, column-major
    grads: np.ndarray | None = None


class ModelFileError(ValueError):
    """A file that is not a model this toolkit can read, or does not fit the model."""


def is_safetensors(fname: str) -> bool:
    return str(fname).endswith(".safetensors")


# ------------------------------------------------------------------ text


def _dim_text(dims: tuple[int, ...]) -> str:
    return "{" + ",".join(str(d) for d in dims) + "}"


def _parse_dim(text: str, where: str) -> tuple[int, ...]:
    if not (text.startswith("{") and text.endswith("}")):
        raise ModelFileError(f"{where}: bad dimension {text!r}")
    body = text[1:-1]
    if "X" in body:
        body, bd = body.split("X", 1)
        if bd != "1":
            raise ModelFileError(f"{where}: a parameter cannot have a batch ({text})")
    try:
        dims = tuple(int(x) for x in body.split(",")) if body else (1,)
    except ValueError:
        raise ModelFileError(f"{where}: bad dimension {text!r}") from None
    if any(d <= 0 for d in dims):
        raise ModelFileError(f"{where}: bad dimension {text!r}")
    return dims


CHUNK = 1 << 18  # values formatted at a time: the text in memory is at most ~4 MB beyond the parameter


def _values_chunks(v: np.ndarray) -> Iterator[bytes]:
    """One values line, ``%+.8e `` per value and a newline as DyNet writes it, in bounded chunks."""
    v = np.asarray(v).reshape(-1)
    n = v.size
    for lo in range(0, max(n, 1), CHUNK):
        part = np.ascontiguousarray(v[lo:lo + CHUNK], dtype=np.float64)
        last = lo + CHUNK >= n
        if _format_values_c is not None:
            text = _format_values_c(part)  # ends with the newline
            yield text if last else text[:-1]
        else:
            yield (("%+.8e " * part.size) % tuple(part.tolist()) + ("\n" if last else "")).encode()


def _record_bytes(kind: str, name: str, dims: tuple[int, ...], values: np.ndarray,
                  grads: np.ndarray | None = None) -> Iterator[bytes]:
    size = int(np.prod(dims)) * WIDTH + 1
    if grads is None:
        yield f"{kind} {name} {_dim_text(dims)} {size} ZERO_GRAD\n".encode()
        yield from _values_chunks(values)
    else:
        yield f"{kind} {name} {_dim_text(dims)} {2 * size} FULL_GRAD\n".encode()
        yield from _values_chunks(values)
        yield from _values_chunks(grads)


def format_record(r: Record) -> str:
    return b"".join(_record_bytes(r.kind, r.name, r.dims, r.values, r.grads)).decode()


def _not_a_model(fname: str, why: str) -> ModelFileError:
    return ModelFileError(f"{fname}: not a DyNet-format model file ({why})")


READ_BYTES = 1 << 22  # the values line is parsed in pieces of this size: the text is never all in memory


def _parse_piece(text: bytes) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fromstring's partial-parse notice
        try:
            v = np.fromstring(text, dtype=np.float64, sep=" ")
        except ValueError:
            return None
    return v if v.size == len(text.split()) else None


def _read_values(f, n: int, name: str, dtext: str, where: str) -> np.ndarray:
    """The next line of ``n`` values, parsed piece by piece into float32."""
    out = np.empty(n, np.float32)
    filled, rest, seen = 0, b"", False
    while True:
        piece = f.readline(READ_BYTES)
        if not piece:
            if not seen:
                raise ModelFileError(f"{where}: the file ends before the values of {name} (truncated?)")
            break
        seen = True
        text = rest + piece
        end = piece.endswith(b"\n")
        cut = len(text) if end else max(text.rfind(b" "), text.rfind(b"\t")) + 1
        head, rest = text[:cut], text[cut:]
        v = _parse_piece(head)
        if v is None:
            raise ModelFileError(f"{where}: values of {name} are not numbers (corrupt file?)")
        if filled + v.size > n:
            raise ModelFileError(f"{where}: {name} {dtext} needs {n} values, the file has more (corrupt?)")
        out[filled:filled + v.size] = v
        filled += v.size
        if end:
            break
    if filled != n:
        raise ModelFileError(f"{where}: {name} {dtext} needs {n} values, the file has {filled} "
                             "(truncated or corrupt?)")
    return out



def _iter_text_records(fname: str) -> Iterator[Record]:
    """Records one at a time; any damage raises ModelFileError naming the file and the line."""
    try:
        f = open(fname, "rb")
    except OSError as e:
        raise OSError(e.errno, f"Could not read model from {fname}: {e.strerror or e}") from None
    with f:
        lineno = 0
        while True:
            raw = f.readline()
            lineno += 1
            if not raw:
                return
            if not raw.strip():
                continue
            where = f"{fname}, line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_a_model(fname, f"line {lineno} is not text") from None
            parts = line.split()
            if len(parts) < 4 or parts[0] not in (PARAM, LOOKUP):
                if lineno == 1:
                    raise _not_a_model(fname, f"it starts with {line[:40]!r}, not a #Parameter# or "
                                              "#LookupParameter# record")
                raise ModelFileError(f"{where}: Bad parameter specification in model: {line[:80]!r}")
            kind, name, dtext = parts[0], parts[1], parts[2]
            dims = _parse_dim(dtext, where)
            full = len(parts) > 4 and parts[4] == "FULL_GRAD"
            n = int(np.prod(dims))
            vals = []
            for _ in range(2 if full else 1):
                vals.append(_read_values(f, n, name, dtext, where))
                lineno += 1
            yield Record(kind, name, dims, vals[0], vals[1] if full else None)


# ------------------------------------------------------------------ safetensors


def _st_module():
    if safetensors is None:  # pragma: no cover - a dependency of the project
        raise ImportError(".safetensors model files need the 'safetensors' package (pip install safetensors)")
    return safetensors


def _iter_safetensors_records(fname: str) -> Iterator[Record]:
    st = _st_module()
    if not os.path.exists(fname):
        raise OSError(errno.ENOENT, f"Could not read model from {fname}: No such file or directory")
    try:
        with st.safe_open(fname, framework="numpy") as f:
            meta = f.metadata() or {}
            if "dynet_api.records" not in meta:
                raise _not_a_model(fname, "a safetensors file without dynet_api's record list")
            order = json.loads(meta["dynet_api.records"])
            for kind, name, dims in order:
                a = f.get_tensor(name)
                yield Record(kind, name, tuple(dims), np.asarray(a, np.float32).reshape(-1, order="F"))
    except ModelFileError:
        raise
    except OSError:
        raise
    except Exception as e:  # the library's own errors for a damaged or foreign file
        raise _not_a_model(fname, f"safetensors could not read it: {e}") from None


def iter_records(fname: str) -> Iterator[Record]:
    return _iter_safetensors_records(fname) if is_safetensors(fname) else _iter_text_records(fname)


def read_records(fname: str) -> list[Record]:
    """Parse a whole file, warning once per parameter that holds NaN or Inf."""
    out = list(iter_records(fname))
    for r in out:
        if not np.isfinite(r.values).all():
            warnings.warn(f"{fname}: parameter {r.name} holds NaN or Inf values", RuntimeWarning, stacklevel=3)
    return out


# ------------------------------------------------------------------ writing, atomically


def _temp_prefix(target: str) -> str:
    return f".{os.path.basename(target)}.tmp-{socket.gethostname()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(target: str) -> None:
    """Temporary files of earlier saves of ``target`` on this host whose process is gone."""
    folder, prefix = os.path.dirname(target), _temp_prefix(target)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for n in names:
        if n.startswith(prefix):
            pid = n[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                try:
                    os.unlink(os.path.join(folder, n))
                except OSError:
                    pass


def _check_target(fname: str) -> str:
    """The real path to write (through symlinks); refuse what an atomic rename must not replace."""
    path = os.path.realpath(os.path.abspath(fname))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise IsADirectoryError(errno.EISDIR, f"Could not save model to {fname}: it is {kind}; refusing to "
                                              "replace it") if stat.S_ISDIR(st.st_mode) else \
            OSError(errno.EINVAL, f"Could not save model to {fname}: it is {kind}; refusing to replace it")
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(errno.EACCES, f"Could not save model to {fname}: the file is write-protected "
                                            "(no write permission bits); refusing to replace it")
    return path


def _open_temp(target: str):
    """A new temporary file beside ``target`` with the mode a plain ``open`` would give."""
    folder = os.path.dirname(target)
    mask = os.umask(0)
    os.umask(mask)
    while True:
        tmp = os.path.join(folder, f"{_temp_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~mask)
        except FileExistsError:
            continue
        return fd, tmp


class _Atomic:
    """Write several targets through temporary files; rename them all only when every write succeeded."""

    def __init__(self, fnames: list[str]) -> None:
        self.targets = [_check_target(f) for f in fnames]
        self.tmps: list[str] = []

    def write(self, i: int, chunks: Iterable[bytes], keep: str | None = None) -> None:
        _remove_leftovers(self.targets[i])
        fd, tmp = _open_temp(self.targets[i])
        self.tmps.append(tmp)
        with os.fdopen(fd, "wb") as f:
            if keep is not None and os.path.exists(keep):
                with open(keep, "rb") as old:
                    while block := old.read(1 << 20):
                        f.write(block)
            for c in chunks:
                f.write(c)

    def write_path(self, i: int, writer) -> None:
        """For writers that take a path (safetensors)."""
        _remove_leftovers(self.targets[i])
        fd, tmp = _open_temp(self.targets[i])
        os.close(fd)
        self.tmps.append(tmp)
        writer(tmp)

    def commit(self) -> None:
        for tmp, target in zip(self.tmps, self.targets):
            os.replace(tmp, target)
        self.tmps = []

    def abort(self) -> None:
        for tmp in self.tmps:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_records(fname: str, entries: list[Entry], append: bool = False) -> None:
    """``entries`` written in order to one file (text, or safetensors by the name), atomically."""
    job = _Atomic([fname])
    try:
        if is_safetensors(fname):
            if append:
                raise ValueError(f"{fname}: appending to a .safetensors file is not supported; save each "
                                 "collection to its own file")
            job.write_path(0, lambda tmp: _save_safetensors(tmp, entries))
        else:
            job.write(0, (b for e in entries for b in _entry_bytes(*e)),
                      keep=job.targets[0] if append else None)
        job.commit()
    except BaseException:
        job.abort()
        raise


def write_atomic(fname: str, text: str, append: bool = False) -> None:
    """Write (or append) text through a temporary file and a rename."""
    job = _Atomic([fname])
    try:
        job.write(0, [text.encode()], keep=job.targets[0] if append else None)
        job.commit()
    except BaseException:
        job.abort()
        raise


def _save_safetensors(path: str, entries: list[Entry]) -> None:
    st = _st_module()
    tensors, order = {}, []
    for kind, name, dims, get_values in entries:
        values = get_values()
        if name in tensors:
            raise ValueError(f"{path}: two parameters named {name!r}; a .safetensors file needs unique names")
        tensors[name] = np.ascontiguousarray(values.reshape(-1, order="F").reshape(dims, order="F"))
        order.append([kind, name, list(dims)])
    st.numpy.save_file(tensors, path, metadata={"dynet_api.records": json.dumps(order), "format": "dynet_api"})


def _entry_bytes(kind: str, name: str, dims: tuple[int, ...], get_values: Callable[[], np.ndarray]) -> Iterator[bytes]:
    yield from _record_bytes(kind, name, dims, get_values().reshape(-1, order="F"))


def write_records_and_meta(data_fname: str, entries: list[Entry], meta_fname: str, meta: bytes) -> None:
    """A data file of ``entries`` and a metadata file of ``meta`` (DyNet's ``dy.save`` pair), renamed
    into place only when both are written."""
    job = _Atomic([data_fname, meta_fname])
    try:
        if is_safetensors(data_fname):
            job.write_path(0, lambda tmp: _save_safetensors(tmp, entries))
        else:
            job.write(0, (b for e in entries for b in _entry_bytes(*e)))
        job.write(1, [meta])
        job.commit()
    except BaseException:
        job.abort()
        raise


# ------------------------------------------------------------------ finding records


def check_key(key: str, collection: bool) -> None:
    """A record name (or a collection's prefix when ``collection``) as DyNet accepts it."""
    if key and (" " in key or "#" in key or key == "/" or (collection and not key.startswith("/"))):
        raise ValueError(f"Key should start with '/' and could not include ' ' or '#': {key}")


def dims_match(kind: str, want: tuple, got: tuple) -> bool:
    """Whether printed dims ``got`` fit ``want`` (trailing 1s aside; a lookup's row count exactly)."""
    if kind == LOOKUP:
        return truncated(tuple(want[:-1])) == truncated(tuple(got[:-1])) and want[-1] == got[-1]
    return truncated(tuple(want)) == truncated(tuple(got))


def find_record(fname: str, key: str, kind: str) -> Record:
    """The record of ``kind`` named ``key``; the whole file is checked, one record in memory at a time."""
    if not key:
        raise ValueError(f"{fname}: populate/load of a single parameter requires a non-empty key")
    found = None
    for r in iter_records(fname):
        if found is None and r.kind == kind and r.name == key:
            found = r
    if found is None:
        raise KeyError(f"Could not find key {key} in the model file {fname}")
    if not np.isfinite(found.values).all():
        warnings.warn(f"{fname}: parameter {found.name} holds NaN or Inf values", RuntimeWarning, stacklevel=3)
    return found


# ------------------------------------------------------------------ dy.save's pair of files


def data_file(basename: str) -> str:
    """The data file of ``dy.save(basename, ...)``: ``basename.data``, or the ``.safetensors`` name itself."""
    return basename if is_safetensors(basename) else basename + ".data"


def iter_meta(metafname: str) -> Iterator[tuple]:
    """The objects of a ``dy.save`` metadata file (one pickle each), in order."""
    try:
        fh = open(metafname, "rb")
    except OSError as e:
        raise OSError(e.errno, f"Could not read model metadata from {metafname}: {e.strerror or e}") from None
    with fh:
        while True:
            try:
                o = pickle.load(fh)
            except EOFError:
                return
            except Exception as e:
                raise ModelFileError(f"{metafname}: not a dy.save metadata file ({type(e).__name__}: {e})") from None
            yield o
