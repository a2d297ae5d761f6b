/* The C twin of dynet_api/autobatch.py's scheduling (optional accelerator, part of _fastgraph).
 *
 * plan(nodes, dims, a, b, strategy, maps, simple, shares, param_op, signature, matmuls) returns the
 * execution order of nodes a..b-1 as a list of lists of node ids (ascending within each list): one
 * list per kernel call, a node alone or a group.  It computes what autobatch.py's
 * _keys_and_depths, _by_agenda and _by_depth compute, with the same keys (the same tuples: the
 * op id, the attributes, per operand the parameter node's attributes, the shared node's id or the
 * operand's data dims) and the same order, so both paths batch alike; ops outside the inline case
 * call the Python ``signature(nodes, dims, j)``.  The Python module is the specification.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static PyObject *s_id, *s_bd, *s_d;

typedef struct {
    double avg;
    int matmul, sid;
} Prio;

static int prio_less(const Prio *x, const Prio *y) {
    if (x->avg != y->avg) return x->avg < y->avg;
    if (x->matmul != y->matmul) return x->matmul < y->matmul;
    return x->sid < y->sid;
}

static void heap_push(Prio *h, Py_ssize_t *n, Prio p) {
    Py_ssize_t i = (*n)++;
    h[i] = p;
    while (i > 0) {
        Py_ssize_t up = (i - 1) / 2;
        if (!prio_less(&h[i], &h[up])) break;
        Prio t = h[i]; h[i] = h[up]; h[up] = t;
        i = up;
    }
}

static Prio heap_pop(Prio *h, Py_ssize_t *n) {
    Prio top = h[0];
    h[0] = h[--(*n)];
    Py_ssize_t i = 0;
    for (;;) {
        Py_ssize_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && prio_less(&h[l], &h[m])) m = l;
        if (r < *n && prio_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        Prio t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
    return top;
}

static long long_attr(PyObject *o, PyObject *name, int *err) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (!v) { *err = 1; return -1; }
    long r = PyLong_AsLong(v);
    Py_DECREF(v);
    if (r == -1 && PyErr_Occurred()) *err = 1;
    return r;
}

/* The key of node j (new reference), Py_None when it runs alone, NULL on error. */
static PyObject *node_key(PyObject *nodes, PyObject *dims, Py_ssize_t j, PyObject *node, long oid, PyObject *simple,
                          PyObject *shares, PyObject *param_op, PyObject *signature) {
    int is_simple = PyObject_IsTrue(PyList_GET_ITEM(simple, oid));
    if (!is_simple) {
        PyObject *jj = PyLong_FromSsize_t(j);
        if (!jj) return NULL;
        PyObject *k = PyObject_CallFunctionObjArgs(signature, nodes, dims, jj, NULL);
        Py_DECREF(jj);
        return k;
    }
    PyObject *ids = PyTuple_GET_ITEM(node, 1), *attrs = PyTuple_GET_ITEM(node, 2);
    PyObject *shared = PyList_GET_ITEM(shares, oid);
    Py_ssize_t na = PyTuple_GET_SIZE(ids);
    int err = 0;
    long bd = long_attr(PyList_GET_ITEM(dims, j), s_bd, &err);
    if (err) return NULL;
    PyObject *key = PyTuple_New(2 + na);
    if (!key) return NULL;
    PyObject *o = PyLong_FromLong(oid);
    if (!o) { Py_DECREF(key); return NULL; }
    PyTuple_SET_ITEM(key, 0, o);
    Py_INCREF(attrs);
    PyTuple_SET_ITEM(key, 1, attrs);
    int joined = 0;
    for (Py_ssize_t p = 0; p < na; ++p) {
        PyObject *kobj = PyTuple_GET_ITEM(ids, p);
        Py_ssize_t k = PyLong_AsSsize_t(kobj);
        PyObject *nk = PyList_GET_ITEM(nodes, k);
        PyObject *dk = PyList_GET_ITEM(dims, k);
        PyObject *item;
        if (PyTuple_GET_ITEM(nk, 0) == param_op) {
            item = PyTuple_GET_ITEM(nk, 2);
            Py_INCREF(item);
        } else {
            PyObject *pp = PyLong_FromSsize_t(p);
            int in_shared = pp ? PySet_Contains(shared, pp) : -1;
            Py_XDECREF(pp);
            if (in_shared < 0) { Py_DECREF(key); return NULL; }
            long kbd = long_attr(dk, s_bd, &err);
            if (err) { Py_DECREF(key); return NULL; }
            if (in_shared) {
                if (kbd != 1) { joined = 0; Py_DECREF(key); Py_RETURN_NONE; }
                item = kobj;
                Py_INCREF(item);
            } else {
                if (kbd != bd) { Py_DECREF(key); Py_RETURN_NONE; }
                item = PyObject_GetAttr(dk, s_d);
                if (!item) { Py_DECREF(key); return NULL; }
                joined = 1;
            }
        }
        PyTuple_SET_ITEM(key, 2 + p, item);
    }
    if (!joined) { Py_DECREF(key); Py_RETURN_NONE; }
    return key;
}

static int cmp_ssize(const void *x, const void *y) {
    Py_ssize_t a = *(const Py_ssize_t *)x, b = *(const Py_ssize_t *)y;
    return (a > b) - (a < b);
}

/* Append the group of relative ids grp[0..m) (sorted here) as a list of absolute ids. */
static int emit(PyObject *out, Py_ssize_t *grp, Py_ssize_t m, Py_ssize_t a) {
    if (m > 1) qsort(grp, (size_t)m, sizeof(Py_ssize_t), cmp_ssize);
    PyObject *l = PyList_New(m);
    if (!l) return -1;
    for (Py_ssize_t q = 0; q < m; ++q) {
        PyObject *v = PyLong_FromSsize_t(a + grp[q]);
        if (!v) { Py_DECREF(l); return -1; }
        PyList_SET_ITEM(l, q, v);
    }
    int r = PyList_Append(out, l);
    Py_DECREF(l);
    return r;
}

PyObject *fg_autobatch_plan(PyObject *self, PyObject *args) {
    PyObject *nodes, *dims, *maps, *simple, *shares, *param_op, *signature, *matmuls;
    Py_ssize_t a, b;
    int strategy;
    if (!PyArg_ParseTuple(args, "O!O!nniO!O!O!OOO", &PyList_Type, &nodes, &PyList_Type, &dims, &a, &b, &strategy,
                          &PyList_Type, &maps, &PyList_Type, &simple, &PyList_Type, &shares, &param_op, &signature,
                          &matmuls))
        return NULL;
    if (!s_id) {
        s_id = PyUnicode_InternFromString("id");
        s_bd = PyUnicode_InternFromString("bd");
        s_d = PyUnicode_InternFromString("d");
        if (!s_id || !s_bd || !s_d) return NULL;
    }
    Py_ssize_t n = b - a;
    if (n < 0 || b > PyList_GET_SIZE(nodes) || b > PyList_GET_SIZE(dims)) {
        PyErr_SetString(PyExc_IndexError, "autobatch plan: node range out of the graph");
        return NULL;
    }
    PyObject *out = PyList_New(0), *keys = PyDict_New();
    Py_ssize_t *mem = PyMem_Calloc((size_t)(8 * n + 8), sizeof(Py_ssize_t));
    Prio *heap = NULL;
    double *sig_sum = NULL;
    Py_ssize_t *sig_cnt = NULL, *sig_op = NULL;
    if (!out || !keys || !mem) goto fail;
    Py_ssize_t *depth = mem, *left = mem + n, *sid_of = mem + 2 * n, *succ_off = mem + 3 * n; /* n+1 */
    Py_ssize_t *succ = mem + 4 * n + 1, *queue = mem + 5 * n + 1, *next = mem + 6 * n + 1, *grp = mem + 7 * n + 1;
    Py_ssize_t nsig = 0, nedge = 0;
    sig_sum = PyMem_Calloc((size_t)n + 1, sizeof(double));
    sig_cnt = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    sig_op = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    if (!sig_sum || !sig_cnt || !sig_op) goto fail;
    /* 1. keys, depths, successor counts */
    for (Py_ssize_t jj = 0; jj < n; ++jj) {
        Py_ssize_t j = a + jj;
        PyObject *node = PyList_GET_ITEM(nodes, j);
        if (!PyTuple_Check(node) || PyTuple_GET_SIZE(node) != 3) {
            PyErr_SetString(PyExc_TypeError, "autobatch plan: a node is not an (op, ids, attrs) tuple");
            goto fail;
        }
        PyObject *ids = PyTuple_GET_ITEM(node, 1);
        Py_ssize_t dep = 0, cnt = 0;
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(ids); ++p) {
            Py_ssize_t k = PyLong_AsSsize_t(PyTuple_GET_ITEM(ids, p));
            if (k >= a) {
                if (depth[k - a] >= dep) dep = depth[k - a] + 1;
                ++cnt;
                ++succ_off[k - a + 1];
                ++nedge;
            }
        }
        depth[jj] = dep;
        left[jj] = cnt;
        sid_of[jj] = -1;
        int err = 0;
        long oid = long_attr(PyTuple_GET_ITEM(node, 0), s_id, &err);
        if (err) goto fail;
        if (oid < 0 || oid >= PyList_GET_SIZE(maps) || !PyObject_IsTrue(PyList_GET_ITEM(maps, oid))) continue;
        PyObject *key = node_key(nodes, dims, j, node, oid, simple, shares, param_op, signature);
        if (!key) goto fail;
        if (key == Py_None) { Py_DECREF(key); continue; }
        PyObject *sv = PyDict_GetItemWithError(keys, key);
        if (!sv) {
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError)) { Py_DECREF(key); goto fail; }
                PyErr_Clear(); /* unhashable attributes: the node runs alone */
                Py_DECREF(key);
                continue;
            }
            sv = PyLong_FromSsize_t(nsig);
            if (!sv || PyDict_SetItem(keys, key, sv) < 0) { Py_XDECREF(sv); Py_DECREF(key); goto fail; }
            Py_DECREF(sv);
            sig_op[nsig] = oid;
            sid_of[jj] = nsig++;
        } else {
            sid_of[jj] = PyLong_AsSsize_t(sv);
        }
        Py_DECREF(key);
        sig_sum[sid_of[jj]] += (double)dep;
        sig_cnt[sid_of[jj]] += 1;
    }
    for (Py_ssize_t q = 0; q < n; ++q) succ_off[q + 1] += succ_off[q];
    {
        Py_ssize_t *fill = grp; /* scratch: the next free slot of each node's successor list */
        Py_ssize_t *edges = PyMem_Malloc((size_t)(nedge + 1) * sizeof(Py_ssize_t));
        if (!edges) goto fail;
        memcpy(fill, succ_off, (size_t)n * sizeof(Py_ssize_t));
        for (Py_ssize_t jj = 0; jj < n; ++jj) {
            PyObject *ids = PyTuple_GET_ITEM(PyList_GET_ITEM(nodes, a + jj), 1);
            for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(ids); ++p) {
                Py_ssize_t k = PyLong_AsSsize_t(PyTuple_GET_ITEM(ids, p));
                if (k >= a) edges[fill[k - a]++] = jj;
            }
        }
        (void)succ;
        succ = edges;
    }
    int *is_mm = PyMem_Calloc((size_t)nsig + 1, sizeof(int));
    if (!is_mm) { PyMem_Free(succ); goto fail; }
    for (Py_ssize_t s = 0; s < nsig; ++s) {
        PyObject *o = PyLong_FromSsize_t(sig_op[s]);
        int c = o ? PySequence_Contains(matmuls, o) : -1;
        Py_XDECREF(o);
        if (c < 0) { PyMem_Free(is_mm); PyMem_Free(succ); goto fail; }
        is_mm[s] = c;
    }
    if (strategy == 2) {
        /* level by level: the nodes alone in graph order, then each signature's nodes (products last) */
        Py_ssize_t maxd = -1;
        for (Py_ssize_t jj = 0; jj < n; ++jj) if (depth[jj] > maxd) maxd = depth[jj];
        Py_ssize_t *lvl_off = PyMem_Calloc((size_t)maxd + 3, sizeof(Py_ssize_t));
        Py_ssize_t *head = PyMem_Malloc(((size_t)nsig + 1) * sizeof(Py_ssize_t));
        Py_ssize_t *tail = PyMem_Malloc(((size_t)nsig + 1) * sizeof(Py_ssize_t));
        Py_ssize_t *order = PyMem_Malloc(((size_t)nsig + 1) * sizeof(Py_ssize_t));
        if (!lvl_off || !head || !tail || !order) {
            PyMem_Free(lvl_off); PyMem_Free(head); PyMem_Free(tail); PyMem_Free(order);
            PyMem_Free(is_mm); PyMem_Free(succ); PyErr_NoMemory(); goto fail;
        }
        for (Py_ssize_t jj = 0; jj < n; ++jj) ++lvl_off[depth[jj] + 1];
        for (Py_ssize_t d = 0; d <= maxd; ++d) lvl_off[d + 1] += lvl_off[d];
        for (Py_ssize_t jj = 0; jj < n; ++jj) queue[lvl_off[depth[jj]]++] = jj; /* nodes by level, graph order */
        for (Py_ssize_t s = 0; s < nsig; ++s) head[s] = -1;
        int bad = 0;
        Py_ssize_t start = 0;
        for (Py_ssize_t d = 0; d <= maxd && !bad; ++d) {
            Py_ssize_t end = lvl_off[d], norder = 0;
            for (Py_ssize_t q = start; q < end && !bad; ++q) {
                Py_ssize_t jj = queue[q], s = sid_of[jj];
                if (s < 0) {
                    grp[0] = jj;
                    if (emit(out, grp, 1, a) < 0) bad = 1;
                } else {
                    next[jj] = -1;
                    if (head[s] < 0) { head[s] = jj; order[norder++] = s; }
                    else next[tail[s]] = jj;
                    tail[s] = jj;
                }
            }
            for (int pass = 0; pass < 2 && !bad; ++pass)
                for (Py_ssize_t o = 0; o < norder && !bad; ++o) {
                    Py_ssize_t s = order[o];
                    if (is_mm[s] != pass) continue;
                    Py_ssize_t m = 0;
                    for (Py_ssize_t jj = head[s]; jj >= 0; jj = next[jj]) grp[m++] = jj;
                    if (emit(out, grp, m, a) < 0) bad = 1;
                }
            for (Py_ssize_t o = 0; o < norder; ++o) head[order[o]] = -1;
            start = end;
        }
        PyMem_Free(lvl_off); PyMem_Free(head); PyMem_Free(tail); PyMem_Free(order);
        PyMem_Free(is_mm); PyMem_Free(succ);
        if (bad) goto fail;
    } else {
        /* DyNet's agenda: ready nodes alone first (FIFO, graph order at the start); else the ready
         * signature of lowest average depth (ties: products last, then the first seen) */
        Py_ssize_t *rhead = PyMem_Malloc(((size_t)nsig + 1) * sizeof(Py_ssize_t));
        Py_ssize_t *rtail = PyMem_Malloc(((size_t)nsig + 1) * sizeof(Py_ssize_t));
        heap = PyMem_Malloc(((size_t)nsig + 1) * sizeof(Prio));
        if (!rhead || !rtail || !heap) {
            PyMem_Free(rhead); PyMem_Free(rtail); PyMem_Free(is_mm); PyMem_Free(succ); PyErr_NoMemory(); goto fail;
        }
        for (Py_ssize_t s = 0; s < nsig; ++s) rhead[s] = -1;
        Py_ssize_t qh = 0, qt = 0, nheap = 0, done = 0;
        int bad = 0;
#define READY(q)                                                                            \
        do {                                                                                \
            Py_ssize_t s_ = sid_of[q];                                                      \
            if (s_ < 0) queue[qt++] = (q);                                                  \
            else {                                                                          \
                next[q] = -1;                                                               \
                if (rhead[s_] < 0) {                                                        \
                    rhead[s_] = (q);                                                        \
                    Prio p_ = {sig_sum[s_] / (double)sig_cnt[s_], is_mm[s_], (int)s_};       \
                    heap_push(heap, &nheap, p_);                                            \
                } else next[rtail[s_]] = (q);                                               \
                rtail[s_] = (q);                                                            \
            }                                                                               \
        } while (0)
        for (Py_ssize_t jj = 0; jj < n; ++jj)
            if (left[jj] == 0) READY(jj);
        while (done < n && !bad) {
            Py_ssize_t m = 0;
            if (qh < qt) {
                grp[m++] = queue[qh++];
            } else {
                if (nheap == 0) {
                    PyErr_SetString(PyExc_RuntimeError, "autobatch: nodes left unevaluated (the graph has a cycle)");
                    bad = 1;
                    break;
                }
                Py_ssize_t s = heap_pop(heap, &nheap).sid;
                for (Py_ssize_t jj = rhead[s]; jj >= 0; jj = next[jj]) grp[m++] = jj;
                rhead[s] = -1;
            }
            if (emit(out, grp, m, a) < 0) { bad = 1; break; }
            done += m;
            for (Py_ssize_t q = 0; q < m; ++q) {
                Py_ssize_t jj = grp[q];
                for (Py_ssize_t e = succ_off[jj]; e < succ_off[jj + 1]; ++e) {
                    Py_ssize_t t = succ[e];
                    if (--left[t] == 0) READY(t);
                }
            }
        }
#undef READY
        PyMem_Free(rhead); PyMem_Free(rtail); PyMem_Free(is_mm); PyMem_Free(succ);
        if (bad) goto fail;
    }
    PyMem_Free(mem); PyMem_Free(heap); PyMem_Free(sig_sum); PyMem_Free(sig_cnt); PyMem_Free(sig_op);
    Py_DECREF(keys);
    return out;
fail:
    PyMem_Free(mem); PyMem_Free(heap); PyMem_Free(sig_sum); PyMem_Free(sig_cnt); PyMem_Free(sig_op);
    Py_XDECREF(keys);
    Py_XDECREF(out);
    return NULL;
}
