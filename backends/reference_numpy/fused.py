"""The builders' fused ops: weight normalisation and the vanilla LSTM's gates and cell
(gate order i, f, o, g)."""

from __future__ import annotations

from .layout import split4, unbroadcast, vec
from .unary import sigmoid_tanh

FORGET_GATE_BIAS = 1.0  # DyNet's VanillaLSTMGates adds 1 to the forget gate's pre-activation


class Fused:
    """Kernels of the ops the builders compose (a mixin of :class:`.kernels.Kernels`)."""

    def f_weight_norm(self, xs, a, d):
        w, g = xs
        return w * (g.reshape(-1)[0] / self.xp.sqrt((w * w).sum()))

    def b_weight_norm(self, xs, y, dy, a, d, i):
        w, g = xs
        sq = (w * w).sum()
        proj = (dy * w).sum()
        if i == 0:
            return dy * (g.reshape(-1)[0] / self.xp.sqrt(sq)) - y * (proj / sq)
        return self.xp.full(g.shape, float(proj / self.xp.sqrt(sq)), g.dtype)

    # ---------------------------------------------------------------- LSTM gates: sigmoid(i, f, o), tanh(g)
    @staticmethod
    def _lstm_inputs(xs, dropout: bool):
        x, h, Wx, Wh, b = xs[:5]
        xm, hm = vec(x), vec(h)
        if dropout:
            xm = xm * vec(xs[5])
            hm = hm * vec(xs[6])
        return xm, hm, Wx[..., 0], Wh[..., 0], vec(b)

    def _lstm_gates(self, xs, d, dropout: bool):
        xm, hm, Wx, Wh, b = self._lstm_inputs(xs, dropout)
        return self._gates_activate(Wx @ xm + Wh @ hm, b, d.shape[0] // 4).reshape(d.shape)

    def _gates_activate(self, pre, b, n: int):
        """The gates from their pre-activation products ``pre`` (4n, cols or 1) and the bias ``b``
        (4n, cols or 1): sigmoid of i, f (plus DyNet's forget bias) and o, tanh of g.  (The cuda
        backend runs this step as one CUDA C kernel.)"""
        xp = self.xp
        pre = pre + b
        pre[n: 2 * n] += FORGET_GATE_BIAS
        out = xp.empty_like(pre)
        out[: 3 * n] = sigmoid_tanh(xp, pre[: 3 * n])
        out[3 * n:] = xp.tanh(pre[3 * n:])
        return out

    _last_pre_grad: tuple | None = None  # (y, dy, r) of the last _pre_grad

    def _pre_grad(self, y, dy):
        """The gradient of the gates' pre-activation, from their output ``y`` and its gradient
        ``dy``.  The op's operands ask for their gradients one after another with the same ``y`` and
        ``dy`` (which nothing changes during a backward pass), so the last one is kept: held, the
        two objects cannot be confused with new ones."""
        last = self._last_pre_grad
        if last is not None and last[0] is y and last[1] is dy:
            return last[2]
        r = self._gates_pre_grad(vec(y), vec(dy), y.shape[0] // 4)
        self._last_pre_grad = (y, dy, r)
        return r

    def _gates_pre_grad(self, yv, gv, n: int):
        """dy * y * (1 - y) on the sigmoid rows, dy * (1 - y^2) on the tanh rows, both (4n, cols).
        (The cuda backend runs this as one CUDA C kernel.)"""
        r = self.xp.empty_like(gv)
        r[: 3 * n] = gv[: 3 * n] * yv[: 3 * n] * (1 - yv[: 3 * n])
        r[3 * n:] = gv[3 * n:] * (1 - yv[3 * n:] ** 2)
        return r

    def _lstm_gates_b(self, xs, y, dy, i, dropout: bool):
        xp = self.xp
        xm, hm, Wx, Wh, b = self._lstm_inputs(xs, dropout)
        r = self._pre_grad(y, dy)
        for k, W in ((0, Wx), (1, Wh)):  # the input x (0) or h (1), and its dropout mask (5 or 6)
            if i in (k, k + 5):
                back = W.T @ r
                if i == k:
                    if dropout:
                        back = back * vec(xs[k + 5])
                    return unbroadcast(back, vec(xs[k]).shape).reshape(xs[k].shape)
                return unbroadcast(back * vec(xs[k]), vec(xs[i]).shape).reshape(xs[i].shape)
        if i == 2:
            return (r @ xp.broadcast_to(xm, (xm.shape[0], r.shape[1])).T).reshape(xs[2].shape)
        if i == 3:
            return (r @ xp.broadcast_to(hm, (hm.shape[0], r.shape[1])).T).reshape(xs[3].shape)
        return r.sum(axis=1).reshape(xs[4].shape)

    def f_vanilla_lstm_gates(self, xs, a, d):
        return self._lstm_gates(xs, d, False)

    def b_vanilla_lstm_gates(self, xs, y, dy, a, d, i):
        return self._lstm_gates_b(xs, y, dy, i, False)

    def f_vanilla_lstm_gates_dropout(self, xs, a, d):
        return self._lstm_gates(xs, d, True)

    def b_vanilla_lstm_gates_dropout(self, xs, y, dy, a, d, i):
        return self._lstm_gates_b(xs, y, dy, i, True)

    # ---------------------------------------------------------------- LSTM cell and hidden state
    def f_vanilla_lstm_c(self, xs, a, d):
        c, gates = xs
        i_, f_, _, g_ = split4(gates)
        return (i_ * g_ + f_ * c).reshape(d.shape)

    def b_vanilla_lstm_c(self, xs, y, dy, a, d, i):
        xp = self.xp
        c, gates = xs
        i_, f_, _, g_ = split4(gates)
        if i == 0:
            return unbroadcast(dy * f_, c.shape)
        cb = xp.broadcast_to(c, dy.shape)
        return unbroadcast(xp.concatenate([dy * g_, dy * cb, xp.zeros_like(dy), dy * i_], axis=0), gates.shape)

    def f_vanilla_lstm_h(self, xs, a, d):
        c, gates = xs
        return (split4(gates)[2] * self.xp.tanh(c)).reshape(d.shape)

    def b_vanilla_lstm_h(self, xs, y, dy, a, d, i):
        xp = self.xp
        c, gates = xs
        o = split4(gates)[2]
        t = xp.tanh(c)
        if i == 0:
            return unbroadcast(dy * o * (1 - t * t), c.shape)
        z = xp.zeros_like(dy)
        return unbroadcast(xp.concatenate([z, z, dy * t, z], axis=0), gates.shape)
