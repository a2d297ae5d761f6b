"""Trainer update rules on NumPy arrays, applied in place.

``hyper`` carries ``lr`` (already bias-corrected for Adam/Amsgrad), ``gscale``
(the clipping scale) and the rule's own constants; momentum, adadelta and eg
multiply their step by ``wscale`` when it is given (the lazy weight decay).  ``states`` are the rule's
shadow tensors, zero on the first step.
"""

from __future__ import annotations

import numpy as np


def sgd(w, g, s, h):
    w -= (h["lr"] * h["gscale"]) * g


def momentum(w, g, s, h):
    v = s[0]
    v *= h["mom"]
    v -= (h["lr"] * h["gscale"]) * g
    w += v * h["wscale"] if "wscale" in h else v


def adagrad(w, g, s, h):
    g = g * h["gscale"]
    s[0] += g * g
    w -= h["lr"] * g / np.sqrt(s[0] + h["eps"])


def adadelta(w, g, s, h):
    g = g * h["gscale"]
    hg, hd = s
    rho, eps = h["rho"], h["eps"]
    hg *= rho
    hg += (1 - rho) * g * g
    step = -g * np.sqrt(hd + eps) / np.sqrt(hg + eps)
    hd *= rho
    hd += (1 - rho) * step * step
    w += step * h["wscale"] if "wscale" in h else step


def rmsprop(w, g, s, h):
    g = g * h["gscale"]
    rho = h["rho"]
    s[0] *= rho
    s[0] += (1 - rho) * g * g
    w -= h["lr"] * g / np.sqrt(s[0] + h["eps"])


def adam(w, g, s, h):
    g = g * h["gscale"]
    m, v = s[0], s[1]
    b1, b2 = h["beta_1"], h["beta_2"]
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    if len(s) > 2:  # amsgrad keeps the running maximum of v
        np.maximum(s[2], v, out=s[2])
        v = s[2]
    w -= h["lr"] * m / (np.sqrt(v) + h["eps"])


def eg(w, g, s, h):
    """Exponentiated gradient with momentum: the tensor stays on the simplex."""
    hp = s[0]
    hp *= h["mom"]
    hp -= (h["lr"] * h["gscale"]) * g
    logw = np.log(np.maximum(w, 1e-30)) + (hp * h["wscale"] if "wscale" in h else hp)
    logw -= logw.max()
    e = np.exp(logw)
    w[...] = e / e.sum()


RULES = {"sgd": sgd, "momentum": momentum, "adagrad": adagrad, "adadelta": adadelta,
         "rmsprop": rmsprop, "adam": adam, "amsgrad": adam, "eg": eg}
