/* The C twin of dynet_api/autobatch.py's scheduling (optional accelerator, part of _fastgraph).
 *
 * plan(nodes, dims, a, b, strategy, maps, simple, shares, param_op, signature, matmuls) returns the
 * execution order of nodes a..b-1 as a list of lists of node ids (ascending within each list): one
 * list per kernel call, a node alone or a group.  It computes what autobatch.py's
 * _keys_and_depths, _by_agenda and _by_depth compute, with the same keys (the same tuples: the
 * op id, the attributes, per operand the parameter node's attributes, the shared node's id or the
 * operand's data dims) and the same order, so both paths batch alike; ops outside the inline case
 * call the Python ``signature(nodes, dims, j)``.  The Python module is the specification.  The
 * keys become signature numbers here; the order itself is autobatch_core.h's, which cpu_eigen's
 * C++ executor shares.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "autobatch_core.h"

static PyObject *s_id, *s_bd, *s_d;

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

PyObject *fg_autobatch_plan(PyObject *self, PyObject *args) {
    PyObject *nodes, *dims, *maps, *simple, *shares, *param_op, *signature, *matmuls;
    Py_ssize_t a, b;
    int strategy;
    (void)self;
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
    if (n < 0 || a < 0 || b > PyList_GET_SIZE(nodes) || b > PyList_GET_SIZE(dims)) {
        PyErr_SetString(PyExc_IndexError, "autobatch plan: node range out of the graph");
        return NULL;
    }
    PyObject *out = NULL, *keys = PyDict_New();
    Py_ssize_t nedge = 0, nsig = 0, ng;
    /* in_off (n+1), sid (n), sig_op (n), order (n), starts (n+1); then the edges */
    ptrdiff_t *mem = PyMem_Calloc((size_t)(5 * n + 2), sizeof(ptrdiff_t)), *in_ids = NULL;
    int *sig_mm = NULL;
    if (!keys || !mem) goto fail;
    ptrdiff_t *in_off = mem, *sid = mem + n + 1, *sig_op = mem + 2 * n + 1, *order = mem + 3 * n + 1;
    ptrdiff_t *starts = mem + 4 * n + 1;
    for (Py_ssize_t jj = 0; jj < n; ++jj) {
        PyObject *node = PyList_GET_ITEM(nodes, a + jj);
        if (!PyTuple_Check(node) || PyTuple_GET_SIZE(node) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(node, 1))) {
            PyErr_SetString(PyExc_TypeError, "autobatch plan: a node is not an (op, ids, attrs) tuple");
            goto fail;
        }
        PyObject *ids = PyTuple_GET_ITEM(node, 1);
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(ids); ++p) {
            Py_ssize_t k = PyLong_AsSsize_t(PyTuple_GET_ITEM(ids, p));
            if (k == -1 && PyErr_Occurred()) goto fail;
            if (k >= a + jj) {
                PyErr_SetString(PyExc_ValueError, "autobatch plan: a node reads a later node");
                goto fail;
            }
            nedge += k >= a;
        }
        in_off[jj + 1] = nedge;
    }
    in_ids = PyMem_Malloc((size_t)(nedge + 1) * sizeof(ptrdiff_t));
    if (!in_ids) goto fail;
    for (Py_ssize_t jj = 0, e = 0; jj < n; ++jj) {
        PyObject *node = PyList_GET_ITEM(nodes, a + jj), *ids = PyTuple_GET_ITEM(node, 1);
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(ids); ++p) {
            Py_ssize_t k = PyLong_AsSsize_t(PyTuple_GET_ITEM(ids, p));
            if (k >= a) in_ids[e++] = k - a;
        }
        sid[jj] = -1;
        int err = 0;
        long oid = long_attr(PyTuple_GET_ITEM(node, 0), s_id, &err);
        if (err) goto fail;
        if (oid < 0 || oid >= PyList_GET_SIZE(maps) || !PyObject_IsTrue(PyList_GET_ITEM(maps, oid))) continue;
        PyObject *key = node_key(nodes, dims, a + jj, node, oid, simple, shares, param_op, signature);
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
            sid[jj] = nsig++;
        } else {
            sid[jj] = PyLong_AsSsize_t(sv);
        }
        Py_DECREF(key);
    }
    sig_mm = PyMem_Calloc((size_t)nsig + 1, sizeof(int));
    if (!sig_mm) goto fail;
    for (Py_ssize_t s = 0; s < nsig; ++s) {
        PyObject *o = PyLong_FromSsize_t(sig_op[s]);
        int c = o ? PySequence_Contains(matmuls, o) : -1;
        Py_XDECREF(o);
        if (c < 0) goto fail;
        sig_mm[s] = c;
    }
    ab_range rg = {n, in_off, in_ids, sid, nsig, sig_mm, strategy};
    ng = ab_plan(&rg, order, starts, NULL);
    if (ng == AB_NOMEM) { PyErr_NoMemory(); goto fail; }
    if (ng == AB_CYCLE) {
        PyErr_SetString(PyExc_RuntimeError, "autobatch: nodes left unevaluated (the graph has a cycle)");
        goto fail;
    }
    out = PyList_New(ng);
    if (!out) goto fail;
    for (Py_ssize_t q = 0; q < ng; ++q) {
        PyObject *l = PyList_New(starts[q + 1] - starts[q]);
        if (!l) goto fail;
        PyList_SET_ITEM(out, q, l);
        for (Py_ssize_t m = starts[q]; m < starts[q + 1]; ++m) {
            PyObject *v = PyLong_FromSsize_t(a + order[m]);
            if (!v) goto fail;
            PyList_SET_ITEM(l, m - starts[q], v);
        }
    }
    PyMem_Free(mem); PyMem_Free(in_ids); PyMem_Free(sig_mm);
    Py_DECREF(keys);
    return out;
fail:
    PyMem_Free(mem); PyMem_Free(in_ids); PyMem_Free(sig_mm);
    Py_XDECREF(keys);
    Py_XDECREF(out);
    return NULL;
}
