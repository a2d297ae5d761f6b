"""Parameters, lookup parameters, their collections and initialisers.

Values and gradients live on the backend (``ParamStorage.value``/``.grad``);
a dense parameter is stored as a tensor of batch 1, a lookup table as a
tensor whose batch runs over its rows, so that a lookup is a batch gather.
The front end keeps names, initialisers and update bookkeeping: which dense
parameters received a gradient, which lookup rows were touched.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable

import numpy as np

from . import config
from .dim import Dim
from .graph import Expression, _cg
from .ops import OPS
from .param_files import load_param, populate_collection, populate_object, save_collection, save_objects

_PARAM, _LOOKUP, _RESHAPE = OPS["parameter"], OPS["lookup"], OPS["reshape"]


# ============================================================ initialisers


class PyInitializer:
    """Base of the initialisers: ``array(dims, lookup)`` gives the host values of a new parameter."""

    def array(self, dims: tuple[int, ...], lookup: bool = False) -> np.ndarray:
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        raise NotImplementedError


class NormalInitializer(PyInitializer):
    """Draws from a normal distribution; as in DyNet the spread is given as a variance.

    Args:
        mean (float): the mean.
        var (float): the variance (not the standard deviation).
    """

    def __init__(self, mean: float = 0.0, var: float = 1.0) -> None:
        self.mean, self.var = float(mean), float(var)

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        return config.rng.normal(self.mean, math.sqrt(self.var), dims)


class UniformInitializer(PyInitializer):
    """Draws uniformly from ``[-scale, scale]``.

    Args:
        scale (float): the half-width of the range.
    """
    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        return config.rng.uniform(-self.scale, self.scale, dims)


class ConstInitializer(PyInitializer):
    """Every value equal to ``c``.

    Args:
        c (float): the value.
    """
    def __init__(self, c: float) -> None:
        self.c = float(c)

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        return np.full(dims, self.c)


class IdentityInitializer(PyInitializer):
    """The identity matrix (square matrices only)."""
    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        if len(dims) != 2 or dims[0] != dims[1]:
            raise ValueError(f"IdentityInitializer needs a square matrix, got {Dim(dims)}")
        return np.eye(dims[0])


class GlorotInitializer(PyInitializer):
    """Glorot (Xavier) uniform initialisation: ``U(-s, s)`` with ``s = gain * sqrt(3 * nd / sum(dims))``
    (``sqrt(6 / (m + n))`` for a matrix).

    Args:
        is_lookup (bool): leave a lookup table's row count out of the fan (DyNet's default counts it;
            the ``lookup`` argument of ``array`` alone does not change the range).
        gain (float): the factor on the range (e.g. 4 for a logistic layer).

    For 4-d convolution filters the fan is ``H*W*C_in + H*W*C_out``, as in DyNet.
    """

    def __init__(self, is_lookup: bool = False, gain: float = 1.0) -> None:
        self.is_lookup, self.gain = bool(is_lookup), float(gain)

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        lookup = self.is_lookup
        shown = dims[:-1] if lookup and len(dims) > 1 else dims
        if len(shown) == 4:
            h, w, ci, co = shown
            scale = self.gain * math.sqrt(6.0 / (h * w * ci + h * w * co))
        else:
            scale = self.gain * math.sqrt(3.0 * len(shown) / sum(shown))
        return config.rng.uniform(-scale, scale, dims)


class SaxeInitializer(PyInitializer):
    """A random orthonormal matrix (Saxe et al. 2014) times ``scale``.

    Args:
        scale (float): the factor.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        if len(dims) != 2:
            raise ValueError(f"SaxeInitializer needs a matrix, got {Dim(dims)}")
        r, c = dims
        a = config.rng.normal(0.0, 1.0, (max(r, c), max(r, c)))
        q, rr = np.linalg.qr(a)
        q *= np.sign(np.diag(rr))
        return self.scale * q[:r, :c]


class FromFileInitializer(PyInitializer):
    """Values read from a text file of whitespace-separated numbers, in column-major order.

    Args:
        fname (str): the file.
    """

    def __init__(self, fname: str) -> None:
        self.fname = fname

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        try:
            with open(self.fname) as f:
                vals = np.array(f.read().split(), dtype=np.float64)
        except OSError as e:
            raise ValueError(f"FromFileInitializer: cannot read {self.fname!r}: {e}") from None
        except ValueError:
            raise ValueError(f"FromFileInitializer: {self.fname!r} holds something other than numbers") from None
        n = int(np.prod(dims))
        if vals.size != n:
            raise ValueError(f"FromFileInitializer: {self.fname!r} holds {vals.size} values, {Dim(dims)} needs {n}")
        return vals.reshape(dims, order="F")


class NumpyInitializer(PyInitializer):
    """The values of a NumPy array (its shape must match the parameter's).

    Args:
        array: the values.
    """
    def __init__(self, array) -> None:
        self.values = np.asarray(array, dtype=np.float64)

    def array(self, dims, lookup=False):
        """Host values for a parameter of ``dims``.

        Args:
            dims (tuple[int, ...]): the parameter's shape (for a lookup table, the row dims then the row count).
            lookup (bool): the values are for a lookup table.
        """
        if self.values.shape != tuple(dims) and self.values.size == int(np.prod(dims)) and self.values.ndim == 1:
            return self.values.reshape(dims, order="F")
        if self.values.shape != tuple(dims):
            raise ValueError(f"NumpyInitializer: array of shape {self.values.shape} for a parameter of dim {Dim(dims)}")
        return self.values


def _initializer(init, dims, scale, mean, std) -> PyInitializer:
    if init is None:
        return GlorotInitializer()
    if isinstance(init, PyInitializer):
        return init
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        return ConstInitializer(init)
    if isinstance(init, str):
        if init == "uniform":
            return UniformInitializer(scale)
        if init == "normal":
            return NormalInitializer(mean, std * std)
        if init == "identity":
            return IdentityInitializer()
        if init == "glorot":
            return GlorotInitializer()
        if init == "he":
            return NormalInitializer(0.0, 1.0 / (2.0 * dims[-1]))
        raise ValueError(f"unknown initializer {init!r}; use 'uniform', 'normal', 'identity', 'glorot', 'he', "
                         "a number, an array or an initializer object")
    if isinstance(init, np.ndarray):
        return NumpyInitializer(init)
    raise TypeError(f"init: expected an initializer, a number, a string or an array, got {type(init).__name__}")


# ============================================================ storage


class WeightScale:
    """DyNet's lazy L2 weight decay: one factor shared by the parameters of a root collection.

    A parameter's weights are its stored ``value`` times ``factor``; a trainer's update multiplies
    ``factor`` by ``1 - lambda`` instead of scaling every table, and the leaves, ``as_array()`` and
    model files read ``value * factor``.  A frozen parameter gets a factor of its own (1, never
    decayed), so its weights stay as they are.
    """

    __slots__ = ("factor",)

    def __init__(self) -> None:
        self.factor = 1.0


class ParamStorage:
    """Backend tensors of one parameter plus the front end's update bookkeeping.

    ``value`` holds the weights divided by ``wscale.factor`` (the lazy weight decay, see
    :class:`WeightScale`); ``host()`` and ``set_host()`` read and write the weights themselves.
    """

    __slots__ = ("backend", "dim", "value", "grad", "has_grad", "touched", "updated", "name", "states", "lookup",
                 "wscale")

    def __init__(self, backend, dim: Dim, values: np.ndarray, name: str, lookup: bool,
                 wscale: WeightScale | None = None) -> None:
        self.backend = backend
        self.dim = dim
        self.wscale = wscale if wscale is not None else WeightScale()
        f = self.wscale.factor
        if f != 1.0:
            values = values / f
        self.value = backend.from_numpy(values.astype(backend.dtype, copy=False).reshape(dim.shape))
        self.grad = backend.zeros(dim.shape)
        self.has_grad = False
        self.touched: set[int] = set()
        self.updated = True
        self.name = name
        self.states: dict = {}
        self.lookup = lookup

    def clear_grad(self) -> None:
        if self.lookup:
            if self.touched:
                self.backend.clear_rows(self.grad, sorted(self.touched))
            self.touched = set()
        elif self.has_grad:
            self.backend.fill(self.grad, 0.0)
            self.has_grad = False

    def host(self) -> np.ndarray:
        """The weights (the stored values times the weight-decay factor), as a NumPy array."""
        a = self.backend.to_numpy(self.value)
        f = self.wscale.factor
        return a if f == 1.0 else a * a.dtype.type(f)

    def set_host(self, a: np.ndarray) -> None:
        """Sets the weights from a host array of the storage's shape (divided by the decay factor)."""
        f = self.wscale.factor
        a = np.asarray(a, dtype=np.float64) / f if f != 1.0 else a
        self.backend.assign(self.value, np.asarray(a).astype(self.backend.dtype, copy=False).reshape(self.dim.shape))

    def fold_scale(self, wscale: WeightScale) -> None:
        """Multiplies the stored values by the current factor and moves the storage to ``wscale``,
        whose factor the values are then divided by: the weights stay as they are."""
        old, new = self.wscale.factor, wscale.factor
        if old != new:
            self.backend.scale(self.value, old / new)
        self.wscale = wscale


def _check_backend(st: ParamStorage, cg) -> None:
    if cg.supported is None:
        cg._bind()
    if st.backend is not cg.backend:
        raise RuntimeError(
            f"parameter {st.name} lives on backend {st.backend.name!r} but the graph runs on "
            f"{cg.backend.name!r}; move values with to_device or create the collection after choosing the backend"
        )


class _StoredParameter(Expression):
    """What Parameters and LookupParameters share: their storage and the methods on it."""

    __slots__ = ("_st", "_pc")

    def __init__(self, st: ParamStorage, pc: ParameterCollection) -> None:
        Expression.__init__(self, -1, -1)
        self._st = st
        self._pc = pc

    def zero(self) -> None:
        """Sets every value to 0."""
        self._st.backend.fill(self._st.value, 0.0)

    def scale(self, s: float) -> None:
        """Multiplies the values by ``s`` in place.

        Args:
            s (float): the factor.
        """
        self._st.backend.scale(self._st.value, float(s))

    def scale_gradient(self, s: float) -> None:
        """Multiplies the accumulated gradient by ``s`` in place.

        Args:
            s (float): the factor.
        """
        self._st.backend.scale(self._st.grad, float(s))

    def set_updated(self, b: bool) -> None:
        """Whether trainers update this parameter (a frozen one still passes gradients on).

        Args:
            b (bool): True to update.
        """
        st, b = self._st, bool(b)
        if b != st.updated:
            # A frozen parameter keeps its weights: it leaves the collection's decay factor.
            st.fold_scale(self._pc._wscale if b else WeightScale())
        st.updated = b

    def is_updated(self) -> bool:
        """Whether trainers update this parameter."""
        return self._st.updated

    def name(self) -> str:
        """The parameter's full name in its collection (e.g. ``/W`` or ``/lstm/_0``)."""
        return self._st.name

    def populate(self, fname: str, key: str = "") -> None:
        """Loads this parameter's values from a file written by ``save``.

        Args:
            fname (str): the file.
            key (str): the name of the record to read (default: this parameter's name).
        """
        populate_object(self, fname, key)

    def save(self, fname: str, key: str = "", append: bool = False) -> None:
        """Writes this parameter to a text model file.

        Args:
            fname (str): the file.
            key (str): the name to store it under (default: its own name).
            append (bool): add to the file instead of replacing it.
        """
        save_objects(fname, [self], key, append)

    populate_from_textfile = populate
    write_to_textfile = save


class Parameters(_StoredParameter):
    """A dense parameter tensor; used in an expression it is a leaf that receives a gradient
    (``W * x + b``). Made by :meth:`ParameterCollection.add_parameters`.

    Args:
        st: its storage (internal).
        pc (ParameterCollection): the collection that owns it.
    """

    __slots__ = ()

    def _node(self, cg) -> int:
        # A parameter's first use in a graph: the leaf appended directly when the graph is bound,
        # on this parameter's backend, and supports it (the C accelerator does the same in C).
        st = self._st
        sup = cg.supported
        if sup is None or st.backend is not cg.backend or "parameter" not in sup:
            _check_backend(st, cg)
            e = cg.add_leaf(_PARAM, (st, True, st.dim), True)
            self.i, self.v = e.i, e.v
            return e.i
        n = len(cg.dims)
        cg.append_node(_PARAM, (), (st, True, st.dim))
        cg.dims.append(st.dim)
        cg.ng.append(True)
        if cg.immediate:
            cg.forward_to(n)
        self.i = n
        self.v = cg.ver
        return n

    def expr(self, update: bool = False) -> Expression:
        """The parameter as an expression.

        Args:
            update (bool): if False (DyNet's default for ``expr``), a constant without gradient.
        """
        if update:
            self._check()
            return Expression(self.i, self.v)
        _check_backend(self._st, _cg)
        return _cg.add_leaf(_PARAM, (self._st, False, self._st.dim), False)

    def shape(self) -> tuple[int, ...]:
        """The parameter's dims, as a tuple."""
        return self._st.dim.d

    def as_array(self) -> np.ndarray:
        """A NumPy copy of the values."""
        return self._st.host().reshape(self._st.dim.d)

    def grad_as_array(self) -> np.ndarray:
        """A NumPy copy of the accumulated gradient."""
        return self._st.backend.to_numpy(self._st.grad).reshape(self._st.dim.d)

    def set_value(self, arr) -> None:
        """Replaces the values.

        Args:
            arr: an array of the parameter's shape.
        """
        a = np.asarray(arr, dtype=np.float64)
        if a.shape != self._st.dim.d and a.size == self._st.dim.size() and a.ndim == 1 and len(self._st.dim.d) == 1:
            a = a.reshape(self._st.dim.d)
        if a.shape != self._st.dim.d:
            raise ValueError(f"set_value: array of shape {a.shape} for parameter {self.name()} "
                             f"of shape {self._st.dim.d}")
        self._st.set_host(a)


    def clip_inplace(self, left: float, right: float) -> None:
        """Clips every value into ``[left, right]``.

        Args:
            left (float): the lower bound.
            right (float): the upper bound.
        """
        f = self._st.wscale.factor  # the stored values are the weights divided by f (> 0)
        self._st.backend.clip(self._st.value, float(left) / f, float(right) / f)



    def __repr__(self) -> str:
        return f"<Parameters {self.name()} {self._st.dim}>"


class LookupParameters(_StoredParameter):
    """A table of embeddings: ``p[i]`` is row i (:func:`lookup`), ``p.batch(ids)`` a batch of rows
    (:func:`lookup_batch`). Made by :meth:`ParameterCollection.add_lookup_parameters`.

    Args:
        st: its storage (internal).
        pc (ParameterCollection): the collection that owns it.
    """

    __slots__ = ()

    def _rows(self) -> int:
        return self._st.dim.bd

    def _node(self, cg) -> int:
        """The whole table as one expression of dim {row dims..., n}."""
        n = self._rows()
        e = _lookups.batch(self, range(n))
        d = self._st.dim.d
        if d[-1:] == (1,) and len(d) > 1:
            d = d[:-1]
        e = cg.add1(_RESHAPE, e, (Dim(d + (n,)),))
        self.i, self.v = e.i, e.v
        return e.i

    def expr(self, update: bool = False) -> Expression:
        """The table itself, usable as an expression of dims ``{row dims..., n}``.

        Args:
            update (bool): accepted for DyNet compatibility.
        """
        return self

    def shape(self) -> tuple[int, ...]:
        """``(number of rows,) + row dims``."""
        return (self._rows(),) + self._st.dim.d

    def __len__(self) -> int:
        return self._rows()

    def batch(self, indices) -> Expression:
        """The rows ``indices`` as one batched expression (as :func:`lookup_batch`).

        Args:
            indices (list[int]): the rows, one per batch element.
        """
        return _lookups.batch(self, indices)

    def _table(self) -> np.ndarray:
        """Host copy shaped (n, *row dims)."""
        a = self._st.host()
        return np.moveaxis(a, -1, 0).copy()

    def as_array(self) -> np.ndarray:
        """A NumPy copy of the table, shaped ``(rows,) + row dims``."""
        return self._table()

    def row_as_array(self, i: int) -> np.ndarray:
        """A NumPy copy of row ``i``.

        Args:
            i (int): the row.
        """
        return self._table()[self._row(i)]

    def rows_as_array(self, rows: Iterable[int]) -> np.ndarray:
        """NumPy copies of the given rows, stacked.

        Args:
            rows (list[int]): the rows.
        """
        t = self._table()
        return np.stack([t[self._row(i)] for i in rows])

    def grad_as_array(self) -> np.ndarray:
        """A NumPy copy of the table's gradient, shaped ``(rows,) + row dims``."""
        return np.moveaxis(self._st.backend.to_numpy(self._st.grad), -1, 0).copy()

    def row_grad_as_array(self, i: int) -> np.ndarray:
        """A NumPy copy of row ``i``'s gradient.

        Args:
            i (int): the row.
        """
        return self.grad_as_array()[self._row(i)]

    def rows_grad_as_array(self, rows: Iterable[int]) -> np.ndarray:
        """NumPy copies of the given rows' gradients, stacked.

        Args:
            rows (list[int]): the rows.
        """
        g = self.grad_as_array()
        return np.stack([g[self._row(i)] for i in rows])

    def _row(self, i) -> int:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"lookup parameter {self.name()}: row index must be an int, got {type(i).__name__} "
                            f"{i!r}") from None
        if not 0 <= i < self._rows():
            raise IndexError(f"lookup parameter {self.name()}: row {i} out of range (size {self._rows()})")
        return i

    def init_row(self, i: int, row) -> None:
        """Sets the values of one row.

        Args:
            i (int): the row.
            row: its new values (as many as a row holds).
        """
        i = self._row(i)
        t = self._table()
        r = np.asarray(row, dtype=np.float64).reshape(-1)
        if r.size != t[i].size:
            raise ValueError(f"init_row: {r.size} values for rows of dim {Dim(self._st.dim.d)} in {self.name()}")
        t[i] = r.reshape(t[i].shape, order="F") if t[i].ndim > 1 else r
        self._assign_table(t)

    def init_from_array(self, arr) -> None:
        """Sets the whole table.

        Args:
            arr: an array shaped ``(rows,) + row dims``.
        """
        a = np.asarray(arr, dtype=np.float64)
        t = self._table()
        if a.shape != t.shape:
            if a.ndim == 2 and t.ndim == 3 and a.shape[0] == t.shape[0] and a.shape[1] == t.shape[1]:
                a = a.reshape(t.shape)
            else:
                raise ValueError(f"init_from_array: array of shape {a.shape} for lookup parameter {self.name()} "
                                 f"of shape {t.shape}")
        self._assign_table(a)

    def _assign_table(self, t: np.ndarray) -> None:
        self._st.set_host(np.moveaxis(t, 0, -1))



    def scalar_value(self, recalculate: bool = False) -> float:
        """Always raises: a table is not a scalar.

        Args:
            recalculate (bool): ignored.
        """
        raise ValueError("scalar_value: a lookup table is not a scalar")


    def __repr__(self) -> str:
        return f"<LookupParameters {self.name()} {self.shape()}>"


# ============================================================ collections


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what}: name must be a string, got {type(name).__name__}")
    if "/" in name or "_" in name:
        raise ValueError(f"{what}: name {name!r} must not contain '/' or '_' (DyNet reserves them for generated names)")
    if any(c.isspace() or c == "#" for c in name):
        raise ValueError(f"{what}: name {name!r} must not contain spaces or '#' (it is a model-file key)")


class ParameterCollection:
    """DyNet's ``ParameterCollection`` (alias ``Model``): owns named parameters, lookup tables and
    subcollections, saves and loads them, and holds the weight decay.  Create it with no arguments;
    subcollections come from :meth:`add_subcollection`.
    """

    # what a trainer's update reads, in object slots (see Trainer.__slots__); the rest in the dict
    __slots__ = ("_parent", "_storages", "_weight_decay", "_wscale", "__dict__", "__weakref__")

    def __init__(self, _name: str = "/", _parent: ParameterCollection | None = None) -> None:
        self._name = _name
        self._parent = _parent
        self._items: list = []  # Parameters, LookupParameters and subcollections, in creation order
        self._all: list = []  # every parameter of this collection and its descendants, in creation order
        self._storages: list[ParamStorage] = []  # their storages, in the same order (a trainer walks it)
        self._counts: dict[str, int] = {}
        self._sub_counts: dict[str, int] = {}
        self._weight_decay = float(config.settings["weight_decay"] or 0.0)
        self._backend = config.backend()
        # DyNet's lazy weight decay factor: one per root collection, shared by its subcollections
        self._wscale: WeightScale = _parent._wscale if _parent is not None else WeightScale()

    # ---- naming
    def _fullname(self, name: str | None, what: str, trailing: str = "") -> str:
        """DyNet's names: ``/_0``, ``/a``, ``/a_1``; subcollections count apart and end in ``/``."""
        if name:
            _check_name(name, what)
        base = name or ""
        counts = self._sub_counts if trailing else self._counts
        k = counts.get(base, 0)
        counts[base] = k + 1
        suffix = f"_{k}" if k or not base else ""
        return f"{self._name}{base}{suffix}{trailing}"

    def name(self) -> str:
        """The collection's name (``/`` for a root, ``/name/`` for a subcollection)."""
        return self._name

    # ---- creation
    def add_parameters(self, dim, init=None, name: str = "", device: str = "", scale: float = 1.0,
                       mean: float = 0.0, std: float = 1.0) -> Parameters:
        """Creates a dense parameter.

        Args:
            dim (int or tuple): its dims (or None with a NumPy array as ``init``).
            init: an initialiser, a NumPy array, a number (constant), ``"uniform"``, ``"normal"``,
                ``"glorot"``, ``"identity"`` or ``"he"``; default Glorot.
            name (str): its name in the collection (default: generated).
            device (str): accepted for DyNet compatibility.
            scale (float): the range of ``"uniform"``.
            mean (float): the mean of ``"normal"``.
            std (float): the standard deviation of ``"normal"``.
        """
        if isinstance(init, np.ndarray) and dim is None:
            dim = init.shape
        d = Dim.of(dim, what="add_parameters")
        ini = _initializer(init, d.d, scale, mean, std)
        full = self._fullname(name, "add_parameters")
        values = np.asarray(ini.array(d.d, lookup=False), dtype=np.float64)
        if values.shape != d.d:
            raise ValueError(f"add_parameters: initializer gave shape {values.shape} for dim {d}")
        st = ParamStorage(self._backend, d, values, full, lookup=False, wscale=self._wscale)
        p = Parameters(st, self)
        self._register(p)
        return p

    def add_lookup_parameters(self, dim, init=None, name: str = "", device: str = "", scale: float = 1.0,
                              mean: float = 0.0, std: float = 1.0) -> LookupParameters:
        """Creates a lookup table.

        Args:
            dim (tuple): ``(number of rows, row dims...)``.
            init: an initialiser or a NumPy array (as in :meth:`add_parameters`); default Glorot.
            name (str): its name in the collection.
            device (str): accepted for DyNet compatibility.
            scale (float): the range of ``"uniform"``.
            mean (float): the mean of ``"normal"``.
            std (float): the standard deviation of ``"normal"``.
        """
        d = Dim.of(dim, what="add_lookup_parameters")
        n, row = d.d[0], d.d[1:] or (1,)
        if isinstance(init, NumpyInitializer):
            raise ValueError("add_lookup_parameters: NumpyInitializer is for add_parameters; "
                             "use lookup_parameters_from_numpy")
        if isinstance(init, np.ndarray):
            return self.lookup_parameters_from_numpy(init, name)
        # DyNet's Python default is Glorot over the whole {row dims..., n} shape (rows included).
        ini = _initializer(init, row, scale, mean, std)  # 'he' reads the last row dim, as DyNet does
        full = self._fullname(name, "add_lookup_parameters")
        values = np.asarray(ini.array(row + (n,), lookup=True), dtype=np.float64)
        st = ParamStorage(self._backend, Dim(row, n), values, full, lookup=True, wscale=self._wscale)
        p = LookupParameters(st, self)
        self._register(p)
        return p

    def parameters_from_numpy(self, array, name: str = "", device: str = "") -> Parameters:
        """A dense parameter holding a copy of ``array``.

        Args:
            array: the values; their shape is the parameter's dims.
            name (str): its name.
            device (str): accepted for DyNet compatibility.
        """
        a = np.asarray(array, dtype=np.float64)
        return self.add_parameters(a.shape, NumpyInitializer(a), name=name)

    def lookup_parameters_from_numpy(self, array, name: str = "", device: str = "") -> LookupParameters:
        """A lookup table holding a copy of ``array`` (one row per entry of its first axis).

        Args:
            array: the values, shaped ``(rows,) + row dims``.
            name (str): its name.
            device (str): accepted for DyNet compatibility.
        """
        a = np.asarray(array, dtype=np.float64)
        if a.ndim < 1:
            raise ValueError("lookup_parameters_from_numpy: needs an array whose first axis runs over the rows")
        if a.ndim == 1:
            a = a[:, None]
        n, row = a.shape[0], a.shape[1:]
        Dim.of((n,) + row, what="lookup_parameters_from_numpy")
        full = self._fullname(name, "lookup_parameters_from_numpy")
        st = ParamStorage(self._backend, Dim(row, n), np.moveaxis(a, 0, -1), full, lookup=True,
                          wscale=self._wscale)
        p = LookupParameters(st, self)
        self._register(p)
        return p

    def add_subcollection(self, name: str | None = None) -> ParameterCollection:
        """A new subcollection, named under this one.

        Args:
            name (str or None): its name (default: generated).
        """
        full = self._fullname(name, "add_subcollection", "/")
        sub = ParameterCollection(full, self)
        sub._weight_decay = self._weight_decay
        self._items.append(sub)
        return sub

    def _register(self, p) -> None:
        """Record ``p`` here and in every ancestor, so lists follow creation time as in DyNet's storage."""
        self._items.append(p)
        c: ParameterCollection | None = self
        while c is not None:
            c._all.append(p)
            c._storages.append(p._st)
            c = c._parent

    # ---- listing
    def _walk(self):
        return iter(self._all)

    def parameters_list(self) -> list[Parameters]:
        """The dense parameters of this collection and its subcollections, in creation order."""
        return [p for p in self._walk() if isinstance(p, Parameters)]

    def lookup_parameters_list(self) -> list[LookupParameters]:
        """The lookup tables of this collection and its subcollections, in creation order."""
        return [p for p in self._walk() if isinstance(p, LookupParameters)]

    def all_storages(self) -> list[ParamStorage]:
        """The storages of every parameter of this collection and its subcollections (used by trainers)."""
        return list(self._storages)

    def parameter_count(self) -> int:
        """The total number of values in the collection's parameters."""
        return sum(st.dim.total() for st in self.all_storages())

    # ---- weight decay
    def set_weight_decay(self, lam: float) -> None:
        """Sets the weight decay applied after each trainer update (here and in subcollections).

        Args:
            lam (float): lambda, in [0, 1).
        """
        lam = float(lam)
        if not 0.0 <= lam < 1.0:
            raise ValueError(f"weight decay must be in [0, 1), got {lam}")
        self._weight_decay = lam
        for it in self._items:
            if isinstance(it, ParameterCollection):
                it.set_weight_decay(lam)

    set_weight_decay_lambda = set_weight_decay

    def get_weight_decay(self) -> float:
        """The weight decay lambda."""
        return self._weight_decay

    def _decay_weights(self, lam: float, storages: list[ParamStorage]) -> None:
        """One update's weight decay, ``w *= 1 - lam`` for every parameter the trainer updates.

        On a root collection this is DyNet's lazy scale: only the shared factor changes (and is
        folded into the values when it falls below 0.25, as in DyNet).  A trainer of a
        subcollection scales its own parameters' values, as the root's factor covers more.
        """
        if self._parent is not None:
            for st in storages:
                if st.updated:
                    st.backend.scale(st.value, 1.0 - lam)
            return
        ws = self._wscale
        ws.factor -= ws.factor * lam
        if ws.factor < 0.25:
            for p in self._all:
                st = p._st
                if st.wscale is ws:
                    st.backend.scale(st.value, ws.factor)
            ws.factor = 1.0

    # ---- io
    def save(self, fname: str, name: str = "", append: bool = False) -> None:
        """Writes the collection's parameters to a text model file.

        Args:
            fname (str): the file.
            name (str): the key prefix to store them under (default: the collection's name).
            append (bool): add to the file instead of replacing it.
        """
        save_collection(self, fname, name, append)

    def populate(self, fname: str, key: str = "", strict: bool = False) -> None:
        """Loads the collection's parameter values from a model file, by position as in DyNet; a failed
        load changes nothing, and a ``.safetensors`` file name selects that format.

        Args:
            fname (str): the file.
            key (str): the key prefix to read (default: the collection's name).
            strict (bool): raise a ModelFileError, instead of warning, when the names in the file
                differ from the collection's.
        """
        populate_collection(self, fname, key, strict)

    write_to_textfile = save
    populate_from_textfile = populate

    def load_param(self, fname: str, key: str) -> Parameters:
        """A new dense parameter created from a record of a model file.

        Args:
            fname (str): the file.
            key (str): the record's name.
        """
        return load_param(self, fname, key, lookup=False)

    def load_lookup_param(self, fname: str, key: str) -> LookupParameters:
        """A new lookup table created from a record of a model file.

        Args:
            fname (str): the file.
            key (str): the record's name.
        """
        return load_param(self, fname, key, lookup=True)

    def __repr__(self) -> str:
        return f"<ParameterCollection {self._name}>"


Model = ParameterCollection


class _Lookups:
    """The lookup functions, which build graph nodes in the functions layer and register here at import."""

    batch: Callable[..., Expression]


_lookups = _Lookups()


def register_lookups(lookup: Callable[..., Expression], lookup_batch: Callable[..., Expression]) -> None:
    """``E[w]`` is ``lookup(E, w)`` (the function itself: the C one with the accelerator binds like a
    method, so ``E[w]`` runs without a Python frame) and ``E.batch(ws)`` is ``lookup_batch``."""
    setattr(LookupParameters, "__getitem__", lookup)  # noqa: B010 - assigned after the class, by a higher layer
    _lookups.batch = lookup_batch
