"""Automatic batching (DyNet's autobatching; Neubig, Goldberg and Dyer 2017) for every backend
whose graphs run through the front end's executor.

The user writes the computation of one instance; many instances share a graph.  At forward
time the nodes to evaluate are grouped by a *signature*: the op, its attributes (less those
that hold one entry per batch element, such as indices), each operand's data dims, and for an
operand that is a parameter the parameter itself.  A group runs as ONE call of the op's
kernel over operands joined along the batch axis (``Backend.join_batches``; an operand that a
single earlier group produced in the same order is used as it lies), and each node's value is
its slice of the output (``Backend.batch_slice``).  Only ops whose record says ``batch="map"``
(batch element b of the output depends on batch element b of each operand alone) are grouped,
and only where every joined operand has the node's batch size.

The order is DyNet's agenda (``--dynet-autobatch 1``): nodes that cannot batch run first, in
graph order, so random ops draw the same numbers as without batching; otherwise the ready
group whose signature has the lowest average depth runs (ties: products last).  Strategy 2
(``--dynet-autobatch 2``) runs level by level: at each depth (one more than the deepest
operand), the nodes that run alone in graph order, then one group per signature; it needs no
readiness bookkeeping, so its scheduling costs less per node.  The C accelerator computes the
same order (csrc/autobatch_plan.c; ``plan_order`` compares the two in the tests).  Backward replays the executed
groups in reverse with the same joined operands: one backward kernel call per group and operand.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

from .accelerator import fastgraph as _fast
from .dim import Dim
from .ops import OP_LIST, OPS, OpDef
from .profiling import CALLS, NODES

_PARAM = OPS["parameter"]
_MATMULS = frozenset((OPS["matmul"].id, OPS["affine_transform"].id))


def _plan_of(op: OpDef) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(attribute positions in the signature, per-batch-element positions, position of ``b`` or -1)."""
    per = tuple(op.attrs.index(a) for a in op.batch_attrs)
    last = len(op.attrs) - 1 if op.leaf else -1  # a leaf's Dim: the batch size varies within a group
    keep = tuple(k for k in range(len(op.attrs)) if k not in per and k != last)
    return keep, per, op.attrs.index("b") if "b" in op.attrs else -1


_ATTR_PLAN: list = []
_MAPS: list[bool] = []


_SIMPLE: list[bool] = []  # "map" ops whose key the C twin builds inline (no per-element or b attributes)
_SHARED: list[frozenset] = []  # per op: its batch_shared operand positions


def cover_ops() -> None:
    """Read the batch rules of ops declared since the last call (at import, or a plugin's later)."""
    for op in OP_LIST[len(_MAPS):]:
        _ATTR_PLAN.append(_plan_of(op))
        _MAPS.append(op.batch == "map")
        _SIMPLE.append(op.batch == "map" and not (op.leaf or op.batch_attrs or "b" in op.attrs))
        _SHARED.append(frozenset(op.batch_shared))


cover_ops()


def signature(nodes: list, dims: list, j: int) -> Any:
    """The key under which node ``j`` may run together with others, or None (it runs alone);
    an unhashable key (unhashable attributes) also means alone.  The C twin (csrc/autobatch_plan.c)
    builds the same key inline for the ops marked in ``_SIMPLE`` and calls this for the others."""
    op, ids, attrs = nodes[j]
    oid = op.id
    if not _MAPS[oid]:
        return None
    keep, _, b = _ATTR_PLAN[oid]
    if b >= 0 and attrs[b]:
        return None  # sums over the batch too
    key: list = [oid]
    if attrs:
        key.append(tuple([attrs[k] for k in keep]) if len(keep) != len(attrs) else attrs)
    if op.leaf:
        key.append(dims[j].d)
    else:
        bd = dims[j].bd
        shared = op.batch_shared
        joined = False
        for p, k in enumerate(ids):
            nk = nodes[k]
            if nk[0] is _PARAM:
                key.append(nk[2])  # (storage, update, dim): one weight for the whole group
            elif p in shared:
                if dims[k].bd != 1:
                    return None
                key.append(k)  # the node itself: the kernel takes it unbatched
            else:
                dk = dims[k]
                if dk.bd != bd:
                    return None  # a broadcast operand cannot be joined with the others
                key.append(dk.d)
                joined = True
        if not joined:
            return None  # every operand shared: nothing to batch over
    return tuple(key)


def _joined_attrs(op: OpDef, members: list, nodes: list, dims: list, d: Dim) -> tuple:
    """The group's attributes: per-batch-element entries joined in member order (an entry given
    once for a batched node counts for each of its batch elements); a leaf's Dim replaced by ``d``."""
    attrs = list(nodes[members[0]][2])
    _, per, _ = _ATTR_PLAN[op.id]
    for p in per:
        joined: list = []
        for m in members:
            t = nodes[m][2][p]
            bd = dims[m].bd
            joined.extend(t if len(t) == bd else tuple(t) * bd)
        attrs[p] = tuple(joined)
    if op.leaf:
        attrs[-1] = d
    return tuple(attrs)


class Group:
    """Nodes that ran as one kernel call, with what their backward needs."""

    __slots__ = ("op", "members", "bds", "xs", "y", "attrs", "dim", "srcs", "made", "gy", "gy_owned", "live", "dy")

    def __init__(self, op, members, bds, xs, y, attrs, dim, srcs, made) -> None:
        self.op = op
        self.members = members  # node ids, in batch order
        self.bds = bds  # each member's batch size
        self.xs = xs  # the joined operands
        self.y = y  # the joined output
        self.attrs = attrs
        self.dim = dim
        self.srcs = srcs  # per operand: the members' input nodes, or None where the group shares one
        self.made = made  # per operand: the group whose output it is as it lies, or None
        self.gy = None  # in backward: the gradient of the whole output from consumers that took it whole
        self.gy_owned = False  # gy was made here (safe to add into in place)
        self.live = True  # False once trim() broke the group up
        self.dy = None  # after backward: the whole gradient of y (its members' gradients are its slices)


def forward(ex, a: int, b: int, strategy: int) -> None:
    """Evaluate nodes ``a`` to ``b - 1`` of ``ex``'s graph in batched groups (the module doc)."""
    vals, home, pos = ex.vals, ex.home, ex.pos
    if len(vals) < b:
        vals.extend([None] * (b - len(vals)))
    if len(home) < b:
        home.extend([None] * (b - len(home)))
    if len(pos) < b:
        pos.extend([0] * (b - len(pos)))
    run_one, done = ex._run_node, ex.plan
    for grp in plan_order(ex.cg.nodes, ex.cg.dims, a, b, strategy):
        if len(grp) == 1:
            run_one(grp[0])
            done.append(grp[0])
        else:
            _run_group(ex, grp)


def plan_order(nodes: list, dims: list, a: int, b: int, strategy: int, accelerated: bool = True) -> list[list[int]]:
    """The order of nodes ``a`` to ``b - 1``: one list of node ids (ascending) per kernel call, a
    node alone or a group.  The C accelerator computes the same lists (csrc/autobatch_plan.c)."""
    if accelerated and _fast is not None:
        return _fast.autobatch_plan(nodes, dims, a, b, strategy, _MAPS, _SIMPLE, _SHARED, _PARAM, signature,
                                    _MATMULS)
    keys, depth = _keys_and_depths(nodes, dims, a, b)
    if strategy == 2:
        order = _by_depth(keys, depth)
    else:
        order = _by_agenda(nodes, a, keys, depth)
    return [[a + jj for jj in sorted(grp)] for grp in order]


def _keys_and_depths(nodes: list, dims: list, a: int, b: int) -> tuple[list, list[int]]:
    """Per node of ``a`` to ``b - 1``: its signature (None: it runs alone), and its depth (0 for a
    node whose operands are all computed already, else one more than its deepest operand)."""
    n = b - a
    keys: list = [None] * n
    depth = [0] * n
    maps = _MAPS
    for jj in range(n):
        j = a + jj
        node = nodes[j]
        ids = node[1]
        dep = 0
        for k in ids:
            if k >= a and depth[k - a] >= dep:
                dep = depth[k - a] + 1
        depth[jj] = dep
        if maps[node[0].id]:
            keys[jj] = signature(nodes, dims, j)
    return keys, depth


def _by_depth(keys: list, depth: list[int]) -> list[list[int]]:
    """Strategy 2: level by level; at each depth the nodes that run alone (in graph order), then one
    group per signature (products last).  A node's operands all lie at lower depths."""
    levels: list[tuple[list[int], dict]] = [([], {}) for _ in range(max(depth, default=-1) + 1)]
    for jj, key in enumerate(keys):
        alone, groups = levels[depth[jj]]
        if key is None:
            alone.append(jj)
            continue
        try:
            g = groups.get(key)
        except TypeError:  # unhashable attributes: the node runs alone
            alone.append(jj)
            continue
        if g is None:
            groups[key] = [jj]
        else:
            g.append(jj)
    order: list[list[int]] = []
    for alone, groups in levels:
        order.extend([jj] for jj in alone)
        order.extend(groups[key] for key in sorted(groups, key=lambda k: k[0] in _MATMULS))
    return order


def _by_agenda(nodes: list, a: int, keys: list, depth: list[int]) -> list[list[int]]:
    """Strategy 1, DyNet's agenda: nodes that run alone first, as they become ready; otherwise the
    ready group whose signature has the lowest average depth (ties: products last)."""
    n = len(keys)
    left = [0] * n
    succ: list = [None] * n
    sid_of = [-1] * n
    sids: dict = {}
    sig_sum: list[int] = []
    sig_cnt: list[int] = []
    sig_op: list[int] = []
    ready: list[list[int]] = []
    alone: list[int] = []
    for jj in range(n):
        cnt = 0
        for k in nodes[a + jj][1]:
            if k >= a:
                kk = k - a
                cnt += 1
                s = succ[kk]
                if s is None:
                    succ[kk] = [jj]
                else:
                    s.append(jj)
        left[jj] = cnt
        key = keys[jj]
        sid = None
        if key is not None:
            try:
                sid = sids.get(key, -1)
            except TypeError:  # unhashable attributes: the node runs alone
                sid = None
        if sid is None:
            if cnt == 0:
                alone.append(jj)
            continue
        if sid < 0:
            sid = sids[key] = len(sig_cnt)
            sig_sum.append(0)
            sig_cnt.append(0)
            sig_op.append(key[0])
            ready.append([])
        sig_sum[sid] += depth[jj]
        sig_cnt[sid] += 1
        sid_of[jj] = sid
        if cnt == 0:
            ready[sid].append(jj)
    prio = [(sig_sum[s] / sig_cnt[s], sig_op[s] in _MATMULS, s) for s in range(len(sig_cnt))]
    heap = [prio[s] for s in range(len(ready)) if ready[s]]
    heap.sort()
    order: list[list[int]] = []
    done = ai = 0
    while done < n:
        if ai < len(alone):
            grp = [alone[ai]]
            ai += 1
        else:
            if not heap:
                raise RuntimeError("autobatch: nodes left unevaluated (the graph has a cycle)")
            sid = heappop(heap)[2]
            grp = ready[sid]
            ready[sid] = []
        order.append(grp)
        done += len(grp)
        for jj in grp:
            s = succ[jj]
            if s is None:
                continue
            for q in s:
                left[q] -= 1
                if left[q] == 0:
                    sid = sid_of[q]
                    if sid < 0:
                        alone.append(q)
                    else:
                        r = ready[sid]
                        if not r:
                            heappush(heap, prio[sid])
                        r.append(q)
    return order


def join_sources(col: list, vals: list, home: list, pos: list, dims: list) -> tuple[list, list | None]:
    """Where the batch elements of nodes ``col`` lie, for joining them: per source (a group's
    output for an uncut member, else the node's own value), in first-seen order, ``(tensor, its
    batch size, the positions taken from it in col's order, the first position if they are side
    by side in order else -1)``; and ``perm``, for each element in col's order its index in the
    sources' blocks joined in order, or None where that is the identity.  The C accelerator
    computes the same (``_fastgraph.join_sources``)."""
    index: dict[int, int] = {}  # id of a source -> its number
    srcs: list = []  # [tensor, batch size, positions]
    which: list[int] = []  # per element: its source's number
    for c in col:
        v = vals[c]
        if v is None:  # an uncut member of a group
            g = home[c]
            k = index.get(id(g))
            if k is None:
                k = index[id(g)] = len(srcs)
                srcs.append([g.y, g.dim.bd, []])
            first = pos[c]
        else:
            k = index.get(id(v))
            if k is None:
                k = index[id(v)] = len(srcs)
                srcs.append([v, dims[c].bd, []])
            first = 0
        bd = dims[c].bd
        srcs[k][2].extend(range(first, first + bd))
        which.extend([k] * bd)
    out = [(t, size, p, p[0] if p == list(range(p[0], p[0] + len(p))) else -1) for t, size, p in srcs]
    if which == sorted(which):
        return out, None
    nxt, off = [], 0
    for _, _, p, _ in out:
        nxt.append(off)
        off += len(p)
    perm = []
    for k in which:
        perm.append(nxt[k])
        nxt[k] += 1
    return out, perm


def scatter_targets(col: list, bds: list, ng: list, home: list, pos: list) -> tuple[list, list]:
    """Where the gradient of an operand joined from nodes ``col`` (``bds[i]`` batch elements from
    ``col[i]``) goes, for the nodes that need one (``ng``): per live group that made some of them,
    in first-seen order, ``(group, positions in the gradient, positions in the group's output)``;
    and ``(node, offset, batch size)`` for each other node, whose own gradient is its slice.  The C
    accelerator computes the same (``_fastgraph.scatter_targets``)."""
    index: dict[int, int] = {}
    groups: list = []
    alone: list = []
    off = 0
    for c, bd in zip(col, bds):
        if ng[c]:
            g = home[c]
            if g is not None and g.live:
                k = index.get(id(g))
                if k is None:
                    k = index[id(g)] = len(groups)
                    groups.append((g, [], []))
                groups[k][1].extend(range(off, off + bd))
                groups[k][2].extend(range(pos[c], pos[c] + bd))
            else:
                alone.append((c, off, bd))
        off += bd
    return groups, alone


_join_sources = _fast.join_sources if _fast is not None and hasattr(_fast, "join_sources") else join_sources
_scatter_targets = (_fast.scatter_targets if _fast is not None and hasattr(_fast, "scatter_targets")
                    else scatter_targets)


def _join(ex, col: list, dims: list) -> tuple[Any, Group | None]:
    """The values of nodes ``col`` joined along the batch axis, and the group that made them: one
    group's output as it lies when that group made exactly these nodes in this order (its backward
    then takes their gradient joined, in one piece), else None and a tensor built with a few calls
    whatever the number of nodes (:func:`join_sources`): per source the elements taken from it
    (as it lies, one slice, or one ``gather_batch``), these joined with ``join_batches``, and one
    more ``gather_batch`` where the sources interleave in ``col``."""
    home = ex.home
    g = home[col[0]]
    if g is not None and g.members == col:
        return g.y, g
    srcs, perm = _join_sources(col, ex.vals, home, ex.pos, dims)
    be = ex.backend
    if len(srcs) == 1:
        t, size, p, start = srcs[0]
        # a copy unless it is the whole tensor: a slice along the batch axis is strided
        return (t if start == 0 and len(p) == size else be.gather_batch(t, p)), None
    d = dims[col[0]].d
    parts = []
    n = 0
    for t, size, p, start in srcs:
        n += len(p)
        if start < 0:
            parts.append(be.gather_batch(t, p))
        else:  # side by side, in order: as it lies or one slice
            parts.append(t if len(p) == size else be.batch_slice(t, start, start + len(p), Dim(d, len(p))))
    x = be.join_batches(parts, Dim(d, n))
    return (x if perm is None else be.gather_batch(x, perm)), None


def _run_group(ex, members: list) -> None:
    cg = ex.cg
    nodes, dims, vals, home = cg.nodes, cg.dims, ex.vals, ex.home
    op, ids0, attrs = nodes[members[0]]
    xs: list = []
    srcs: list = []
    made: list = []
    shared = op.batch_shared
    for k, s0 in enumerate(ids0):
        if nodes[s0][0] is _PARAM or k in shared:
            xs.append(vals[s0] if vals[s0] is not None else ex._val(s0))
            srcs.append(None)
            made.append(None)
        else:
            col = [nodes[m][1][k] for m in members]
            x, src = _join(ex, col, dims)
            xs.append(x)
            srcs.append(col)
            made.append(src)
    bds = [dims[m].bd for m in members]
    d = Dim(dims[members[0]].d, sum(bds))
    if op.batch_attrs or op.leaf:
        attrs = _joined_attrs(op, members, nodes, dims, d)
    oid = op.id
    y = ex.fwd[oid](xs, attrs, d)
    NODES[oid] += len(members)
    CALLS[oid] += 1
    g = Group(op, members, bds, xs, y, attrs, d, srcs, made)
    ex.plan.append(g)
    pos = ex.pos
    off = 0
    for m, bd in zip(members, bds):
        vals[m] = None  # cut from y when read alone (PyExecutor._val)
        home[m] = g
        pos[m] = off
        off += bd
    ex.lazy = True
    if cg.check_validity:
        for m in members:
            cg.check_value(m)


def backward(ex, i: int, full: bool) -> None:
    """Reverse mode from node ``i`` over the executed plan, group by group."""
    cg = ex.cg
    be = ex.backend
    nodes, dims, ng = cg.nodes, cg.dims, cg.ng
    grads: list = [None] * (i + 1)
    grads[i] = be.ones(dims[i].shape)
    owned: set = set()
    node_backward, acc, bwd = ex._node_backward, ex._accumulate, ex.bwd
    cut = be.batch_slice
    plan = ex.plan
    pos = ex.pos
    for rec in plan:
        if type(rec) is not int:
            rec.gy = rec.dy = None
    for rec in reversed(plan):
        if type(rec) is int:
            if rec <= i:
                g = grads[rec]
                if g is not None:
                    node_backward(rec, g, grads, owned, full)
            continue
        members = rec.members
        gs = [grads[m] if m <= i else None for m in members]
        have = [k for k, g in enumerate(gs) if g is not None]
        whole = rec.gy
        if not have:
            if whole is None:
                continue
            dy = whole
        elif len(have) == len(members):
            dy = be.join_batches(gs, rec.dim)
            if whole is not None:
                dy = be.add(dy, whole)
        else:  # some members' own gradients: added into the whole output's gradient where they lie
            dy = be.zeros(rec.dim.shape) if whole is None else (
                whole if rec.gy_owned else be.add(whole, be.zeros(rec.dim.shape)))
            at: list = []
            for k in have:
                m = members[k]
                at.extend(range(pos[m], pos[m] + dims[m].bd))
            part = [gs[k] for k in have]
            be.scatter_add_batch(dy, at, part[0] if len(part) == 1 else be.join_batches(
                part, Dim(rec.dim.d, len(at))))
        rec.dy = dy  # complete: every consumer of the group ran before it (PyExecutor.gradient reads it)
        op = rec.op
        oid = op.id
        if op.leaf:  # a lookup group: one scatter into the table
            st, rows, update = rec.attrs[0], rec.attrs[1], rec.attrs[2]
            if update:
                be.scatter_add_batch(st.grad, rows, dy)
                st.touched.update(rows)
                CALLS[oid] += 1
            continue
        s0s = nodes[members[0]][1]
        for k, col in enumerate(rec.srcs):
            if k in op.nograd:
                continue
            if col is None:
                if not (full or ng[s0s[k]]):
                    continue
            elif not (full or any([ng[c] for c in col])):
                continue
            dx = bwd[oid](rec.xs, rec.y, dy, rec.attrs, rec.dim, k)
            CALLS[oid] += 1
            if col is None:
                acc(grads, owned, s0s[k], dx)
                continue
            src = rec.made[k]
            if src is not None and src.live and not full:  # the producer's whole output: one add
                if src.gy is None:
                    src.gy, src.gy_owned = dx, False
                elif src.gy_owned:
                    be.iadd(src.gy, dx)
                else:
                    src.gy, src.gy_owned = be.add(src.gy, dx), True
                continue
            if full:
                off = 0
                for c, bd in zip(col, rec.bds):
                    acc(grads, owned, c, cut(dx, off, off + bd, dims[c]))
                    off += bd
            else:
                _scatter(ex, grads, owned, col, rec, dx)
    ex.grads = grads


def _scatter(ex, grads: list, owned: set, col: list, rec: Group, dx) -> None:
    """Hand the gradient ``dx`` of one joined operand back to the nodes ``col`` it was joined from
    (:func:`scatter_targets`): those that are members of a live group go into that group's
    whole-output gradient (``gy``), one ``scatter_add_batch`` per source group (after one
    ``gather_batch`` where ``dx`` holds more than that group's part); the others get their slice
    as their own gradient."""
    be, dims = ex.backend, ex.cg.dims
    groups, alone = _scatter_targets(col, rec.bds, ex.cg.ng, ex.home, ex.pos)
    for c, off, bd in alone:
        ex._accumulate(grads, owned, c, be.batch_slice(dx, off, off + bd, dims[c]))
    n = rec.dim.bd
    for g, at, to in groups:
        part = dx if len(at) == n else be.gather_batch(dx, at)  # all of dx: in order, as it lies
        if g.gy is None:
            g.gy, g.gy_owned = be.zeros(g.dim.shape), True
        elif not g.gy_owned:
            g.gy, g.gy_owned = be.add(g.gy, be.zeros(g.dim.shape)), True
        be.scatter_add_batch(g.gy, to, part)


def trim(ex, n: int) -> None:
    """Forget the plan from node ``n`` on; members below ``n`` of a cut group stay as single nodes
    (their values are valid slices, and their backward runs node by node)."""
    plan = []
    home = ex.home
    for rec in ex.plan:
        if type(rec) is int:
            if rec < n:
                plan.append(rec)
        elif rec.members[-1] < n:
            plan.append(rec)
        else:
            rec.live = False
            for m in rec.members:
                if m < n:
                    ex._val(m)  # its own value from now on
                    plan.append(m)
                    home[m] = None
    del home[n:]
    del ex.pos[n:]
    ex.plan = plan
