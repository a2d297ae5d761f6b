"""DyNet's LSTM builders (dynet/lstm.cc, dynet/fast-lstm.cc), written over ops.

Parameter shapes, initialisers, subcollection names and creation order follow
DyNet's C++ constructors, so a collection saved by DyNet populates these
builders and the other way round.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..accelerator import fastgraph as _fastgraph
from ..dim import Dim
from ..graph import Expression, _cg
from ..ops import OPS, DimError
from ..params import ConstInitializer
from ._base import _CellBuilder, _Savable, bernoulli_mask, check_rate, layer_norm, matmul

_ZERO, _ONE = ConstInitializer(0.0), ConstInitializer(1.0)
_GATES, _GATES_DROP = OPS["vanilla_lstm_gates"], OPS["vanilla_lstm_gates_dropout"]
_CELL_C, _CELL_H = OPS["vanilla_lstm_c"], OPS["vanilla_lstm_h"]
_CONCAT, _MATMUL, _SELECT_COLS = OPS["concatenate"], OPS["matmul"], OPS["select_cols"]
_FUSED_FORGET_BIAS = 1.0  # what vanilla_lstm_gates adds to the forget gate's pre-activation
_new = object.__new__  # an Expression without the __init__ call
_lstm_steps = getattr(_fastgraph, "lstm_steps", None)  # the C twin of _FusedCell._fused_run_py's loop


def _expr_py(i: int, ver: int) -> Expression:
    """An Expression for node ``i`` of graph version ``ver`` (no __init__)."""
    e = _new(Expression)
    e.i, e.v = i, ver
    return e


# the accelerator's makes one the garbage collector does not track (see csrc/fastgraph.c)
_expr = getattr(_fastgraph, "new_expression", None) or _expr_py

_SEL: list = []  # _SEL[t] = ((t,),): select_cols' attributes for column t, made once


def _sel_attrs(n: int) -> list:
    """select_cols attribute tuples for columns 0..n-1 (grown on demand, shared by every run)."""
    if len(_SEL) < n:
        _SEL.extend(((t,),) for t in range(len(_SEL), n))
    return _SEL


def _gates(tmp, hid: int, forget_bias: float):
    """Split the stacked pre-activations [i; f; o; g] and apply the nonlinearities."""
    i = F.logistic(F.pickrange(tmp, 0, hid))
    fa = F.pickrange(tmp, hid, 2 * hid)
    f = F.logistic(fa + forget_bias if forget_bias != 0 else fa)
    o = F.logistic(F.pickrange(tmp, 2 * hid, 3 * hid))
    g = F.tanh(F.pickrange(tmp, 3 * hid, 4 * hid))
    return i, f, o, g


class _TwoRateDropout:
    """Variational dropout on each layer's input (rate d) and recurrent input (rate d_r)."""

    dropout_rate_h = 0.0

    def set_dropout(self, p: float) -> None:
        """Sets the same variational dropout rate on the layer inputs and the recurrent inputs.

        Args:
            p (float): the rate, in [0, 1].
        """
        self.dropout_rate = self.dropout_rate_h = check_rate(p)

    def set_dropouts(self, d: float, d_r: float) -> None:
        """Sets the dropout rates separately.

        Args:
            d (float): the rate of each layer's input.
            d_r (float): the rate of the recurrent input h.
        """
        self.dropout_rate = check_rate(d)
        self.dropout_rate_h = check_rate(d_r)

    def disable_dropout(self) -> None:
        """Turns dropout off."""
        self.dropout_rate = self.dropout_rate_h = 0.0

    def _dropping(self) -> bool:
        return self.dropout_rate > 0 or self.dropout_rate_h > 0

    def _mask_rates(self) -> tuple[float, ...]:
        """Each layer's mask rates, in drawing order: the input's, then hidden-sized ones."""
        return (self.dropout_rate, self.dropout_rate_h)

    def set_dropout_masks(self, batch_size: int = 1) -> None:
        """Draws the dropout masks now (call after ``initial_state``).

        Args:
            batch_size (int): one mask per batch element.
        """
        self._check_graph()
        self._masks = []
        if self._dropping():
            rates = self._mask_rates()
            for i in range(self.layers):
                idim = self.input_dim if i == 0 else self.hidden_dim
                self._masks.append(tuple(bernoulli_mask(idim if k == 0 else self.hidden_dim, r, batch_size)
                                         for k, r in enumerate(rates)))


class _FusedCell:
    """A step as three fused nodes per layer (``vanilla_lstm_gates``/``_c``/``_h``) instead of ~17.

    The same equations as the split ops (gates [i; f; o; g] = Wx x + Wh h + b, +1 on the
    forget gate, sigmoid on i, f, o, tanh on g; c' = i g + f c; h' = o tanh(c')), so a
    builder uses it only where its math is exactly that.  Before the first input h and
    c are one zeros vector per graph: Wh 0 and f 0 add exact zeros.
    """

    _zero: Expression | None = None
    _zero_ver = -1
    _memo: list[dict] = []  # per layer: (x, h, c dims) -> (gates dim, state dim, weights need grads)
    _memo_ver = -1
    _one: Expression | None = None  # the constant 1 {1} of the current graph
    _one_ver = -1
    _pmemo: list[dict] | None = None  # per layer: (backend, length, h dim, c dim) -> dims of a projected run

    def _zero_state(self) -> Expression:
        if self._zero_ver != _cg.ver:
            self._zero = F.zeros((self.hidden_dim,))
            self._zero_ver = _cg.ver
        return self._zero

    def _fused_step(self, x, h, c, layers, masks, direct: bool = True):
        """One input through every layer; ``masks`` per layer (x mask, h mask) or None.

        ``direct=False`` (weights that are new nodes every step) goes through ``cg.add``.
        """
        if h is None:
            h = c = (self._zero_state(),) * len(layers)
        ver = _cg.ver
        if masks is not None or not direct or _cg.immediate or any(e.v != ver for e in h + c):
            return self._fused_step_add(x, h, c, layers, masks)
        ys, h, c = self._fused_run((x,), h, c, layers)
        return h, c, ys[0]

    def _fused_run(self, xs, h, c, layers):
        """Steps over ``xs`` (vectors {input_dim} of this graph; h and c of this graph too, or None):
        :meth:`_fused_run_py`, whose loop the C accelerator runs when it is built (:meth:`_fused_run_c`)."""
        if _lstm_steps is None:
            return self._fused_run_py(xs, h, c, layers)
        if self._memo_ver != _cg.ver:
            self._memo = [{} for _ in layers]
            self._memo_ver = _cg.ver
        if h is None:
            h = c = (self._zero_state(),) * len(layers)
        return self._fused_run_c(xs, h, c, layers)

    def _fused_run_py(self, xs, h, c, layers):
        """The hot path of :meth:`_fused_run`: the three nodes of a step go straight onto the
        graph's lists.  Their dims and gradient flags were worked out by ``cg.add`` (shape rules,
        backend support) the first time this graph saw the same input dims; only those dims vary
        per step.
        """
        cg = _cg
        ver = cg.ver
        if self._memo_ver != ver:
            self._memo = [{} for _ in layers]
            self._memo_ver = ver
        memo = self._memo
        if h is None:
            h = c = (self._zero_state(),) * len(layers)
        dims, ng = cg.dims, cg.ng
        push = cg.append_node  # (packed by the C graph: cg.nodes would make every node's tuple)
        ids = [(wx.i, wh.i, b.i) for wx, wh, b in layers]
        h, c = list(h), list(c)
        ys = []
        for x in xs:
            for i, (wxi, whi, bi) in enumerate(ids):
                xi, hi, ci = x.i, h[i].i, c[i].i
                key = (dims[xi], dims[hi], dims[ci])
                known = memo[i].get(key)
                if known is None:  # validate through cg.add once, then remember what it found
                    wx, wh, b = layers[i]
                    g = cg.add(_GATES, (x, h[i], wx, wh, b))
                    ct = cg.add(_CELL_C, (c[i], g))
                    x = cg.add(_CELL_H, (ct, g))
                    memo[i][key] = (dims[g.i], dims[ct.i], ng[wxi] or ng[whi] or ng[bi])
                else:
                    dg, dc, ngw = known
                    n = len(dims)
                    gng = ngw or ng[xi] or ng[hi]
                    cng = gng or ng[ci]
                    push(_GATES, (xi, hi, wxi, whi, bi), None)
                    push(_CELL_C, (ci, n), None)
                    push(_CELL_H, (n + 1, n), None)
                    dims += (dg, dc, dc)
                    ng += (gng, cng, cng)
                    ct = _new(Expression)
                    ct.i, ct.v = n + 1, ver
                    x = _new(Expression)
                    x.i, x.v = n + 2, ver
                h[i] = x
                c[i] = ct
            ys.append(x)
        return ys, tuple(h), tuple(c)

    def _fused_run_c(self, xs, h, c, layers):
        """:meth:`_fused_run_py` with its steps appended by the C twin (``_fastgraph.lstm_steps``) for
        as long as the layers' memos know the dims; a step of dims this graph has not seen yet
        goes through the Python loop (one step, validated by ``cg.add``), then the C twin carries on."""
        cg = _cg
        ver = cg.ver
        ids = [(wx.i, wh.i, b.i) for wx, wh, b in layers]
        xids = [x.i for x in xs]
        hi, ci = [e.i for e in h], [e.i for e in c]
        ops = (_GATES, _CELL_C, _CELL_H)
        ys: list = []
        k = 0
        while True:
            done, out = _lstm_steps(cg, cg.dims, cg.ng, xids, k, hi, ci, ids, self._memo, ops)
            ys += [_expr(i, ver) for i in out]
            k += done
            if k >= len(xs):
                break
            y, h2, c2 = self._fused_run_py(xs[k:k + 1], tuple(_expr(i, ver) for i in hi),
                                           tuple(_expr(i, ver) for i in ci), layers)
            ys += y
            hi, ci = [e.i for e in h2], [e.i for e in c2]
            k += 1
        return ys, tuple(_expr(i, ver) for i in hi), tuple(_expr(i, ver) for i in ci)

    def _transduce(self, xs, h, c) -> list:
        """``transduce``: runs of plain vector inputs through ``_fused_run``, anything else through ``_step``."""
        layers = self._direct_layers()
        cg = _cg
        ver = cg.ver
        if layers is None or cg.immediate or (h is not None and any(e.v != ver for e in h + c)):
            return super()._transduce(xs, h, c)
        dims, vec = cg.dims, (self.input_dim,)
        xs = list(xs)
        if len(xs) > 1 and self._projectable(xs, h, c):
            return self._projected_run(xs, h, c, layers)
        out: list = []
        run: list = []
        for x in xs:
            try:
                plain = x.v == ver and dims[x.i].d == vec
            except AttributeError:
                plain = False
            if plain:
                run.append(x)
                continue
            if run:
                ys, h, c = self._fused_run(run, h, c, layers)
                out += ys
                run = []
            h, c, y = self._step(x, h, c)  # raises the proper error, or takes the split ops
            out.append(y)
        if run:
            ys, h, c = self._fused_run(run, h, c, layers)
            out += ys
        return out

    def _projectable(self, xs, h, c) -> bool:
        """Whether the whole sequence is plain unbatched vectors (and the state unbatched vectors),
        and the graph is not autobatched (by the front end or by a backend's own executor): there
        the plain steps of many sequences (weights as parameters) join into one gates call per
        step, which the projected form's per-sequence columns cannot."""
        cg = _cg
        if cg.autobatch:
            return False
        ver, dims = cg.ver, cg.dims
        xd, hd = Dim((self.input_dim,)), Dim((self.hidden_dim,))
        for x in xs:
            try:
                if x.v != ver or dims[x.i] is not xd:
                    return False
            except AttributeError:
                return False
        return h is None or all(dims[e.i] is hd for e in h + c)

    def _projected_run(self, xs, h, c, layers) -> list:
        """``transduce`` of a whole unbatched sequence, layer by layer: each layer's input
        products for every step as one matrix product P = W_x [x_1 ... x_T] (one GEMM forward,
        and one for each of dW_x and dX backward instead of T rank-1 updates and T products),
        then per step the fused gates with P's column t in W_x's place and the constant 1 as x:
        1 * P_t + W_h h + b, the same pre-activation.  Nodes per layer: 2 + 4 per step.
        """
        cg = _cg
        ver = cg.ver
        if self._one_ver != ver:
            self._one = F.ones((1,))
            self._one_ver = ver
        one = self._one
        if h is None:
            h = c = (self._zero_state(),) * len(layers)
        dims, ng = cg.dims, cg.ng
        push = cg.append_node
        n_steps = len(xs)
        if self._pmemo is None:
            self._pmemo = [{} for _ in layers]
        seq = xs
        for i, (wx, wh, b) in enumerate(layers):
            # Dims depend only on the length and the initial state's dims (and the backend, which must
            # support the ops): the first such sequence goes through cg.add, later ones are appended directly.
            key = (cg.backend, n_steps, dims[h[i].i], dims[c[i].i])
            known = self._pmemo[i].get(key)
            if known is None:
                X = cg.add(_CONCAT, tuple(seq), (1,))
                P = cg.add(_MATMUL, (wx, X))
                pt = cg.add(_SELECT_COLS, (P,), ((0,),))
                g = cg.add(_GATES, (one, h[i], pt, wh, b))
                ct = cg.add(_CELL_C, (c[i], g))
                y = cg.add(_CELL_H, (ct, g))
                known = self._pmemo[i][key] = (dims[X.i], dims[P.i], dims[pt.i], dims[g.i], dims[ct.i])
                out = [y]
                start, pi, yi, ci = 1, P.i, y.i, ct.i
            else:
                n = len(dims)
                sids = tuple(e.i for e in seq)
                ngx = any(ng[k] for k in sids)
                push(_CONCAT, sids, (1,))
                push(_MATMUL, (wx.i, n), None)
                dims += known[:2]
                ng += (ngx, ngx or ng[wx.i])
                out = []
                start, pi, yi, ci = 0, n + 1, h[i].i, c[i].i
            _, _, ds, dg, dc = known
            onei, whi, bi = one.i, wh.i, b.i
            ngp = ng[pi]
            ngw = ngp or ng[whi] or ng[bi]
            count = n_steps - start
            if count <= 0:
                seq = out
                continue
            # grad flags: the first step's from the initial state, every later step's the same
            gng = ngw or ng[yi]
            cng = gng or ng[ci]
            later = ngw or cng
            ng += (ngp, gng, cng, cng) + (ngp, later, later, later) * (count - 1)
            n = len(dims)
            dims += (ds, dg, dc, dc) * count
            sel, pargs, append = _sel_attrs(n_steps), (pi,), out.append
            for t in range(start, n_steps):
                push(_SELECT_COLS, pargs, sel[t])
                push(_GATES, (onei, yi, n, whi, bi), None)
                push(_CELL_C, (ci, n + 1), None)
                push(_CELL_H, (n + 2, n + 1), None)
                ci, yi = n + 2, n + 3
                y = _new(Expression)
                y.i, y.v = yi, ver
                append(y)
                n += 4
            seq = out
        return seq

    def _fused_step_add(self, x, h, c, layers, masks):
        add = _cg.add
        hs, cs = [], []
        for i, (wx, wh, b) in enumerate(layers):
            if masks is None:
                g = add(_GATES, (x, h[i], wx, wh, b))
            else:
                mx, mh = masks[i]
                g = add(_GATES_DROP, (x, h[i], wx, wh, b, mx, mh))
            ct = add(_CELL_C, (c[i], g))
            x = add(_CELL_H, (ct, g))
            hs.append(x)
            cs.append(ct)
        return tuple(hs), tuple(cs), x

    def _input_batch(self, x) -> tuple[int, bool]:
        """The input's batch size, and whether it is a plain vector {input_dim} (what the fused ops take)."""
        try:
            d = _cg.dims[x.i] if x.v == _cg.ver else _cg.dims[x._check()]
        except AttributeError:
            raise TypeError(f"{self._kind}.add_input: expected an Expression, got {type(x).__name__}") from None
        if d.d == (self.input_dim,):
            return d.bd, True
        if d.d == (self.input_dim, 1):
            return d.bd, False
        raise ValueError(f"{self._kind}.add_input: input of dim {d}, the builder expects {{{self.input_dim}}} "
                         "(optionally batched)")


class VanillaLSTMBuilder(_FusedCell, _TwoRateDropout, _Savable, _CellBuilder):
    """The standard LSTM (separate input and forget gates, no peepholes)::

        [i; f; o; g] = W_x x + W_h h + b     (one stacked 4h pre-activation)
        c' = sigmoid(f + forget_bias) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    Per layer, in subcollection ``vanilla-lstm-builder``: W_x {4h, in}, W_h {4h, h},
    b {4h} (zeros).  With ``ln_lstm`` each layer also gets, in the *parent* collection
    as DyNet does, gains/biases g_h, b_h, g_x, b_x {4h} and g_c, b_c {h} (ones/zeros) and
    the two products and the cell are layer-normalised.
    """

    _kind = "VanillaLSTMBuilder"
    _sub = "vanilla-lstm-builder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model, ln_lstm: bool = False,
                 forget_bias: float = 1.0) -> None:
        """Creates the builder's parameters in a subcollection of ``model``.

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden and cell states of every layer.
            model (ParameterCollection): the collection that holds the parameters.
            ln_lstm (bool): layer-normalise the gates' pre-activations and the cell.
            forget_bias (float): added to the forget gate's pre-activation.
        """
        self._setup(layers, input_dim, hidden_dim, model, self._sub)
        self.ln_lstm = bool(ln_lstm)
        self.forget_bias = float(forget_bias)
        self._spec = (self.layers, self.input_dim, self.hidden_dim, self.ln_lstm, self.forget_bias)
        pc, hid = self._pc, self.hidden_dim
        ind = self.input_dim
        self._ln_params: list[list] = []
        for _ in range(self.layers):
            self._params.append([pc.add_parameters((4 * hid, ind)), pc.add_parameters((4 * hid, hid)),
                                 pc.add_parameters((4 * hid,), init=_ZERO)])
            if self.ln_lstm:
                self._ln_params.append([model.add_parameters((d,), init=ini) for d, ini in
                                        ((4 * hid, _ONE), (4 * hid, _ZERO), (4 * hid, _ONE), (4 * hid, _ZERO),
                                         (hid, _ONE), (hid, _ZERO))])
            ind = hid
        self._ln_vars: list[list] = []
        self._eff: list[list] = []
        # The fused gates add exactly 1 to the forget gate: other biases and ln_lstm use the split ops.
        self._fusable = not self.ln_lstm and self.forget_bias == _FUSED_FORGET_BIAS

    def _new_graph(self, update: bool) -> None:
        super()._new_graph(update)
        self._ln_vars = [[self._load(p, update) for p in layer] for layer in self._ln_params]
        self._eff = self._vars

    def _direct_layers(self):
        if self._fusable and not (self.dropout_rate > 0 or self.dropout_rate_h > 0):
            return self._eff
        return None

    def _step(self, x, h, c):
        bd, vec = self._input_batch(x)
        dropping = self.dropout_rate > 0 or self.dropout_rate_h > 0
        if dropping and self._masks is None:
            self.set_dropout_masks(bd)
        if vec and self._fusable:
            try:
                # A mask of rate 0 is all ones: multiplying by it is exact.
                return self._fused_step(x, h, c, self._eff, self._masks if dropping else None)
            except DimError:
                pass  # a state set by set_s/set_h with {h, 1} vectors: the split ops take those
        return self._split_step(x, h, c)

    def _split_step(self, x, h, c):
        hid, fb = self.hidden_dim, self.forget_bias
        hs, cs = [], []
        for i, (wx, wh, b) in enumerate(self._eff):
            if self.dropout_rate > 0:
                x = F.cmult(x, self._masks[i][0])
            if h is not None:
                h_tm1 = h[i]
                if self.dropout_rate_h > 0:
                    h_tm1 = F.cmult(h_tm1, self._masks[i][1])
            if self.ln_lstm:
                gh, bh, gx, bx, gc, bc = self._ln_vars[i]
                tmp = b + layer_norm(matmul(wx, x), gx, bx)
                if h is not None:
                    tmp = tmp + layer_norm(matmul(wh, h_tm1), gh, bh)
            elif h is not None:
                tmp = F.affine_transform([b, wx, x, wh, h_tm1])
            else:
                tmp = F.affine_transform([b, wx, x])
            ig, fg, og, gg = _gates(tmp, hid, fb)
            ct = F.cmult(fg, c[i]) + F.cmult(ig, gg) if h is not None else F.cmult(ig, gg)
            if self.ln_lstm:
                x = F.cmult(og, F.tanh(layer_norm(ct, gc, bc)))
            else:
                x = F.cmult(og, F.tanh(ct))
            hs.append(x)
            cs.append(ct)
        return tuple(hs), tuple(cs), x


LSTMBuilder = VanillaLSTMBuilder


class SparseLSTMBuilder(VanillaLSTMBuilder):
    """VanillaLSTMBuilder whose W_x and W_h are magnitude-pruned by ``set_sparsity(s)``.

    DyNet marks it experimental/untested.  Here the pruning mask is recomputed from the
    current weights at each ``set_sparsity`` call (the fraction ``s`` of smallest-magnitude
    entries of every W_x and W_h is zeroed in the graph); the parameters themselves and
    their layout are those of VanillaLSTMBuilder.
    """

    _kind = "SparseLSTMBuilder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model, ln_lstm: bool = False,
                 forget_bias: float = 1.0) -> None:
        """Creates the builder's parameters (as :class:`VanillaLSTMBuilder`).

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden and cell states.
            model (ParameterCollection): the collection that holds the parameters.
            ln_lstm (bool): layer normalisation.
            forget_bias (float): added to the forget gate's pre-activation.
        """
        super().__init__(layers, input_dim, hidden_dim, model, ln_lstm, forget_bias)
        self.sparsity = 0.0
        self._prune: list[list] | None = None

    def set_sparsity(self, sparsity: float) -> None:
        """Prunes the smallest-magnitude fraction of every W_x and W_h (from the next ``initial_state``).

        Args:
            sparsity (float): the fraction zeroed, in [0, 1].
        """
        s = float(sparsity)
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"SparseLSTMBuilder.set_sparsity: sparsity must be in [0, 1], got {s}")
        self.sparsity = s
        self._prune = None
        if s > 0:
            self._prune = []
            for wx, wh, _b in self._params:
                self._prune.append([_magnitude_mask(wx.as_array(), s), _magnitude_mask(wh.as_array(), s)])
        self._cg_version = -1  # the next initial_state rebuilds the masked weights

    def _new_graph(self, update: bool) -> None:
        super()._new_graph(update)
        if self._prune is not None:
            self._eff = [[F.cmult(wx, F.inputTensor(mx)), F.cmult(wh, F.inputTensor(mh)), b]
                         for (wx, wh, b), (mx, mh) in zip(self._vars, self._prune, strict=True)]


def _magnitude_mask(w: np.ndarray, s: float) -> np.ndarray:
    k = int(round(s * w.size))
    mask = np.ones(w.size, np.float32)
    if k > 0:
        mask[np.argsort(np.abs(w).reshape(-1), kind="stable")[:k]] = 0.0
    return mask.reshape(w.shape)


class CompactVanillaLSTMBuilder(_FusedCell, _TwoRateDropout, _Savable, _CellBuilder):
    """The same LSTM as VanillaLSTMBuilder (forget bias fixed at 1), DyNet's "fused" variant.

    Per layer, in subcollection ``compact-vanilla-lstm-builder``: W_x {4h, in}, W_h {4h, h},
    b {4h} (zeros).  ``set_weightnoise(std)`` adds N(0, std^2) noise to W_x, W_h and b at
    every step.  Computed, as in DyNet, with the fused ``vanilla_lstm_*`` nodes.
    """

    _kind = "CompactVanillaLSTMBuilder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model) -> None:
        """Creates the builder's parameters in a subcollection of ``model``.

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden state of every layer.
            model (ParameterCollection): the collection that holds the parameters.
        """
        self._setup(layers, input_dim, hidden_dim, model, "compact-vanilla-lstm-builder")
        self._spec = (self.layers, self.input_dim, self.hidden_dim)
        pc, hid = self._pc, self.hidden_dim
        ind = self.input_dim
        for _ in range(self.layers):
            self._params.append([pc.add_parameters((4 * hid, ind)), pc.add_parameters((4 * hid, hid)),
                                 pc.add_parameters((4 * hid,), init=_ZERO)])
            ind = hid
        self.weightnoise_std = 0.0

    def set_weightnoise(self, std: float) -> None:
        """Adds Gaussian noise to W_x, W_h and b at every step.

        Args:
            std (float): the noise's standard deviation (0: none).
        """
        std = float(std)
        if std < 0:
            raise ValueError(f"CompactVanillaLSTMBuilder.set_weightnoise: std must be >= 0, got {std}")
        self.weightnoise_std = std

    def _direct_layers(self):
        if self.weightnoise_std > 0 or self.dropout_rate > 0 or self.dropout_rate_h > 0:
            return None
        return self._vars

    def _noisy(self, w):
        d, _ = w.dim()
        return w + F.random_normal(d, 0.0, self.weightnoise_std)

    def _step(self, x, h, c):
        bd, vec = self._input_batch(x)
        dropping = self.dropout_rate > 0 or self.dropout_rate_h > 0
        if dropping and self._masks is None:
            self.set_dropout_masks(bd)
        if vec:
            layers, noisy = self._vars, self.weightnoise_std > 0
            if noisy:
                layers = [[self._noisy(w) for w in layer] for layer in layers]
            try:
                return self._fused_step(x, h, c, layers, self._masks if dropping else None, not noisy)
            except DimError:
                pass  # a state set by set_s/set_h with {h, 1} vectors: the split ops take those
        return self._split_step(x, h, c, bd, dropping)

    def _split_step(self, x, h, c, bd, dropping):
        hid = self.hidden_dim
        hs, cs = [], []
        for i, (wx, wh, b) in enumerate(self._vars):
            if h is None:
                h_tm1 = c_tm1 = F.zeros((hid,), batch_size=bd)
            else:
                h_tm1, c_tm1 = h[i], c[i]
            if dropping:
                x = F.cmult(x, self._masks[i][0])
                h_tm1 = F.cmult(h_tm1, self._masks[i][1])
            if self.weightnoise_std > 0:
                wx, wh, b = self._noisy(wx), self._noisy(wh), self._noisy(b)
            ig, fg, og, gg = _gates(F.affine_transform([b, wx, x, wh, h_tm1]), hid, 1.0)
            ct = F.cmult(ig, gg) + F.cmult(fg, c_tm1)
            x = F.cmult(og, F.tanh(ct))
            hs.append(x)
            cs.append(ct)
        return tuple(hs), tuple(cs), x


class CoupledLSTMBuilder(_Savable, _CellBuilder):
    """LSTM with coupled input/forget gates (f = 1 - i) and peepholes (DyNet 1.x's LSTMBuilder)::

        i = sigmoid(W_ix x + W_ih h + W_ic c + b_i)     c~ = tanh(W_cx x + W_ch h + b_c)
        c' = (1 - i) * c + i * c~                       o = sigmoid(W_ox x + W_oh h + W_oc c' + b_o)
        h' = o * tanh(c')

    Per layer, in subcollection ``lstm-builder``: W_ix, W_ih, W_ic, b_i, W_ox, W_oh, W_oc, b_o,
    W_cx, W_ch, b_c (biases zero).  ``set_dropout(p)`` applies variational dropout to the
    input, the recurrent h and the cell fed to the peepholes.
    """

    _kind = "CoupledLSTMBuilder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model) -> None:
        """Creates the builder's parameters in a subcollection of ``model``.

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden state of every layer.
            model (ParameterCollection): the collection that holds the parameters.
        """
        self._setup(layers, input_dim, hidden_dim, model, "lstm-builder")
        self._spec = (self.layers, self.input_dim, self.hidden_dim)
        pc, hid = self._pc, self.hidden_dim
        ind = self.input_dim
        for _ in range(self.layers):
            layer = []
            for peephole in (True, True, False):  # gates i, o, then the candidate c
                layer += [pc.add_parameters((hid, ind)), pc.add_parameters((hid, hid))]
                if peephole:
                    layer.append(pc.add_parameters((hid, hid)))
                layer.append(pc.add_parameters((hid,), init=_ZERO))
            self._params.append(layer)
            ind = hid
        self.dropout_rate_h = self.dropout_rate_c = 0.0

    def set_dropout(self, p: float) -> None:
        """Sets one variational dropout rate on the input, the recurrent h and the peephole cell.

        Args:
            p (float): the rate, in [0, 1].
        """
        self.dropout_rate = self.dropout_rate_h = self.dropout_rate_c = check_rate(p)

    def set_dropouts(self, d: float, d_h: float, d_c: float) -> None:
        """Sets the three dropout rates separately.

        Args:
            d (float): the rate of each layer's input.
            d_h (float): the rate of the recurrent h.
            d_c (float): the rate of the cell fed to the peepholes.
        """
        self.dropout_rate, self.dropout_rate_h, self.dropout_rate_c = check_rate(d), check_rate(d_h), check_rate(d_c)

    def disable_dropout(self) -> None:
        """Turns dropout off."""
        self.dropout_rate = self.dropout_rate_h = self.dropout_rate_c = 0.0

    def _dropping(self) -> bool:
        return self.dropout_rate > 0 or self.dropout_rate_h > 0 or self.dropout_rate_c > 0

    def _mask_rates(self) -> tuple[float, ...]:
        return (self.dropout_rate, self.dropout_rate_h, self.dropout_rate_c)

    set_dropout_masks = _TwoRateDropout.set_dropout_masks

    def _step(self, x, h, c):
        bd = self._check_input(x)
        if self._dropping() and self._masks is None:
            self.set_dropout_masks(bd)
        hs, cs = [], []
        for i, (x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc) in enumerate(self._vars):
            if self.dropout_rate > 0:
                x = F.cmult(x, self._masks[i][0])
            if h is not None:
                h_tm1, c_tm1 = h[i], c[i]
                if self.dropout_rate_h > 0:
                    h_tm1 = F.cmult(h_tm1, self._masks[i][1])
                c_peep = F.cmult(c_tm1, self._masks[i][2]) if self.dropout_rate_c > 0 else c_tm1
                it = F.logistic(F.affine_transform([bi, x2i, x, h2i, h_tm1, c2i, c_peep]))
                wt = F.tanh(F.affine_transform([bc, x2c, x, h2c, h_tm1]))
                ct = F.cmult(1.0 - it, c_tm1) + F.cmult(it, wt)
            else:
                it = F.logistic(F.affine_transform([bi, x2i, x]))
                wt = F.tanh(F.affine_transform([bc, x2c, x]))
                ct = F.cmult(it, wt)
            c_out = F.cmult(ct, self._masks[i][2]) if self.dropout_rate_c > 0 else ct
            if h is not None:
                ot = F.logistic(F.affine_transform([bo, x2o, x, h2o, h_tm1, c2o, c_out]))
            else:
                ot = F.logistic(F.affine_transform([bo, x2o, x, c2o, c_out]))
            x = F.cmult(ot, F.tanh(ct))
            hs.append(x)
            cs.append(ct)
        return tuple(hs), tuple(cs), x


class FastLSTMBuilder(_CellBuilder):
    """DyNet's FastLSTMBuilder: the coupled LSTM with "diagonal" peepholes W_ic, W_oc {h, 1}.

    DyNet creates the peephole vectors but (in its current code) leaves them out of the
    computation, so the cell is: i = sigmoid(W_ix x + W_ih h + b_i), c~ = tanh(W_cx x +
    W_ch h + b_c), c' = (1 - i) c + i c~, o = sigmoid(W_ox x + W_oh h + b_o), h' = o tanh(c').
    Subcollection ``fast-lstm-builder``.  No dropout, and no ``spec``: as in DyNet it cannot
    be saved with ``dy.save`` (save its ``param_collection()`` instead).
    """

    _kind = "FastLSTMBuilder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model) -> None:
        """Creates the builder's parameters in a subcollection of ``model``.

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden state of every layer.
            model (ParameterCollection): the collection that holds the parameters.
        """
        self._setup(layers, input_dim, hidden_dim, model, "fast-lstm-builder")
        pc, hid = self._pc, self.hidden_dim
        ind = self.input_dim
        for _ in range(self.layers):
            layer = []
            for peephole in (True, True, False):
                layer += [pc.add_parameters((hid, ind)), pc.add_parameters((hid, hid))]
                if peephole:
                    layer.append(pc.add_parameters((hid, 1)))
                layer.append(pc.add_parameters((hid,), init=_ZERO))
            self._params.append(layer)
            ind = hid

    def _step(self, x, h, c):
        self._check_input(x)
        hs, cs = [], []
        for i, (x2i, h2i, _c2i, bi, x2o, h2o, _c2o, bo, x2c, h2c, bc) in enumerate(self._vars):
            if h is not None:
                h_tm1, c_tm1 = h[i], c[i]
                it = F.logistic(F.affine_transform([bi, x2i, x, h2i, h_tm1]))
                wt = F.tanh(F.affine_transform([bc, x2c, x, h2c, h_tm1]))
                ct = F.cmult(1.0 - it, c_tm1) + F.cmult(it, wt)
                ot = F.logistic(F.affine_transform([bo, x2o, x, h2o, h_tm1]))
            else:
                it = F.logistic(F.affine_transform([bi, x2i, x]))
                ct = F.cmult(it, F.tanh(F.affine_transform([bc, x2c, x])))
                ot = F.logistic(F.affine_transform([bo, x2o, x]))
            x = F.cmult(ot, F.tanh(ct))
            hs.append(x)
            cs.append(ct)
        return tuple(hs), tuple(cs), x
