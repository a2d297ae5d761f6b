"""DyNet's tensor shape: up to 4 column-major data dims plus a separate batch size."""

from __future__ import annotations

from math import prod


class Dim:
    """The dims of an expression's value: up to 4 data dims ``d`` plus a batch size ``bd``.

    Args:
        d (tuple[int, ...]): the data dims (at least one).
        bd (int): the batch size.

    ``shape`` is the layout exchanged with NumPy: the data dims then the batch as a last axis.
    """

    __slots__ = ("d", "bd", "shape")
    d: tuple[int, ...]
    bd: int
    shape: tuple[int, ...]
    _interned: dict = {}

    def __new__(cls, d: tuple[int, ...], bd: int = 1) -> Dim:
        # Interned: equal dims are the same object, so identity is equality and
        # hashing is the C-level id hash (the graph's shape cache relies on it).
        key = (d, bd)
        o = cls._interned.get(key)
        if o is None:
            d = tuple(int(x) for x in d)
            bd = int(bd)
            o = object.__new__(cls)
            o.d = d
            o.bd = bd
            o.shape = d + (bd,)
            cls._interned[key] = o
        return o

    def __reduce__(self):
        return (Dim, (self.d, self.bd))

    @classmethod
    def of(cls, d, bd: int = 1, what: str = "dim") -> Dim:
        """Validates a user-given dim (an int or a tuple of positive ints, as DyNet accepts).

        Args:
            d (int or tuple): the data dims.
            bd (int): the batch size.
            what (str): the function named in the error message.
        """
        if isinstance(d, bool):
            raise TypeError(f"{what}: expected an int or a tuple of ints, got {d!r}")
        if isinstance(d, int):
            d = (d,)
        elif isinstance(d, (tuple, list)):
            d = tuple(d)
        else:
            try:  # numpy integers and similar
                d = (int(d.__index__()),)
            except AttributeError:
                raise TypeError(f"{what}: expected an int or a tuple of ints, got {d!r}") from None
        if not d:
            d = (1,)
        out = []
        for x in d:
            try:
                x = x.__index__()
            except AttributeError:
                raise TypeError(f"{what}: dims must be integers, got {d!r}") from None
            if x < 1:
                raise ValueError(f"{what}: dims must be positive, got {d!r}")
            out.append(x)
        if len(out) > 4:
            raise ValueError(f"{what}: at most 4 data dims are supported, got {tuple(out)}")
        bd = int(bd)
        if bd < 1:
            raise ValueError(f"{what}: batch size must be positive, got {bd}")
        return cls(tuple(out), bd)

    @property
    def nd(self) -> int:
        """The number of data dims."""
        return len(self.d)

    def size(self) -> int:
        """The number of elements of one batch element."""
        return prod(self.d)

    def total(self) -> int:
        """The number of elements of all batch elements."""
        return prod(self.d) * self.bd

    def rows(self) -> int:
        """The first data dim."""
        return self.d[0]

    def cols(self) -> int:
        """The second data dim (1 for a vector)."""
        return self.d[1] if len(self.d) > 1 else 1

    def padded(self, nd: int) -> tuple[int, ...]:
        """The data dims padded with trailing 1s to ``nd`` dims.

        Args:
            nd (int): the number of dims wanted.
        """
        return self.d + (1,) * (nd - len(self.d))

    def as_tuple(self) -> tuple[tuple[int, ...], int]:
        """``(data dims, batch size)``, as ``Expression.dim()`` returns it."""
        return (self.d, self.bd)

    def __repr__(self) -> str:
        s = ",".join(map(str, self.d))
        return "{" + s + ("X%d" % self.bd if self.bd > 1 else "") + "}"


def truncated(d: tuple[int, ...]) -> tuple[int, ...]:
    """Data dims without their trailing size-1 dims, one kept at least (DyNet's Dim::truncate):
    DyNet compares and reports shapes this way, so {3,1} and {3} are the same vector."""
    n = len(d)
    while n > 1 and d[n - 1] == 1:
        n -= 1
    return tuple(d[:n])
