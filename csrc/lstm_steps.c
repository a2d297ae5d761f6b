/* The C twin of the LSTM builder's fused run (dynet_api/builders/lstm.py, _FusedCell._fused_run):
 * the three nodes of each step (gates, cell, hidden state) appended straight onto the graph's
 * lists, for as long as every layer has already seen the step's input dims (its memo).  The
 * Python loop is the specification; tests/test_builders_fused.py builds the same graphs both ways. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* fastgraph.c: node (op, in[0 .. m), attrs) appended where the graph keeps its nodes. */
int fg_append_node(PyObject *graph, PyObject *op, PyObject *const *in, Py_ssize_t m, PyObject *attrs);

/* lstm_steps(graph, dims, ng, xs, start, h, c, ids, memo, ops) -> (done, ys): runs steps
 * xs[start], xs[start+1], ... (node ids) while every layer's memo (a dict per layer: (x, h, c
 * dims) -> (gates dim, state dim, weights need grads)) knows the step's dims; h and c (lists of
 * node ids, one per layer) are updated in place; ids holds (wx, wh, b) node ids per layer and ops
 * (gates, cell, hidden).  done: the steps run; ys: their outputs' node ids. */
PyObject *fg_lstm_steps(PyObject *self, PyObject *args) {
    PyObject *graph, *dims, *ng, *xs, *h, *c, *ids, *memo, *ops;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OO!O!O!nO!O!O!O!O!", &graph, &PyList_Type, &dims, &PyList_Type, &ng,
                          &PyList_Type, &xs, &start, &PyList_Type, &h, &PyList_Type, &c, &PyList_Type, &ids,
                          &PyList_Type, &memo, &PyTuple_Type, &ops))
        return NULL;
    Py_ssize_t layers = PyList_GET_SIZE(ids);
    if (PyTuple_GET_SIZE(ops) != 3 || PyList_GET_SIZE(h) != layers || PyList_GET_SIZE(c) != layers ||
        PyList_GET_SIZE(memo) != layers) {
        PyErr_SetString(PyExc_ValueError, "lstm_steps: ops must be 3, and h, c, memo one per layer");
        return NULL;
    }
    PyObject *gates_op = PyTuple_GET_ITEM(ops, 0), *cell_op = PyTuple_GET_ITEM(ops, 1),
             *hid_op = PyTuple_GET_ITEM(ops, 2);
    /* each layer's memo entry for the current step, found once before anything is appended */
    PyObject *hits_small[8];
    PyObject **hits = layers <= 8 ? hits_small : PyMem_New(PyObject *, (size_t)layers);
    if (!hits) return PyErr_NoMemory();
    PyObject *ys = PyList_New(0);
    if (!ys) goto fail;
    Py_ssize_t k = start, nx = PyList_GET_SIZE(xs);
    for (; k < nx; ++k) {
        /* every layer must know its dims before anything of the step is appended: layer 0 takes
         * the step's input, each later layer the hidden state of the one before (its memo's state dim) */
        PyObject *x = PyList_GET_ITEM(xs, k);
        Py_ssize_t n0 = PyList_GET_SIZE(dims);
        Py_ssize_t xv0 = PyLong_AsSsize_t(x);
        if (xv0 < 0 || xv0 >= n0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_IndexError, "lstm_steps: input node out of range");
            goto fail;
        }
        PyObject *dx = PyList_GET_ITEM(dims, xv0);
        int known = 1;
        for (Py_ssize_t i = 0; i < layers && known; ++i) {
            Py_ssize_t hv = PyLong_AsSsize_t(PyList_GET_ITEM(h, i)), cv = PyLong_AsSsize_t(PyList_GET_ITEM(c, i));
            if (hv < 0 || cv < 0 || hv >= n0 || cv >= n0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_IndexError, "lstm_steps: state node out of range");
                goto fail;
            }
            PyObject *key = PyTuple_Pack(3, dx, PyList_GET_ITEM(dims, hv), PyList_GET_ITEM(dims, cv));
            if (!key) goto fail;
            PyObject *hit = PyDict_GetItemWithError(PyList_GET_ITEM(memo, i), key);
            Py_DECREF(key);
            if (!hit) {
                if (PyErr_Occurred()) goto fail;
                known = 0;
            } else if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 3) {
                PyErr_SetString(PyExc_TypeError, "lstm_steps: a memo entry must be (gates dim, state dim, flag)");
                goto fail;
            } else {
                hits[i] = hit; /* borrowed: nothing touches the memo until the step is appended */
                dx = PyTuple_GET_ITEM(hit, 1);
            }
        }
        if (!known) break; /* the Python loop runs this step through cg.add, then calls again */
        PyObject *xcur = x;
        Py_INCREF(xcur);
        for (Py_ssize_t i = 0; i < layers; ++i) {
            Py_ssize_t n = PyList_GET_SIZE(dims);
            Py_ssize_t xv = PyLong_AsSsize_t(xcur);
            PyObject *hi = PyList_GET_ITEM(h, i), *ci = PyList_GET_ITEM(c, i);
            Py_ssize_t hv = PyLong_AsSsize_t(hi), cv = PyLong_AsSsize_t(ci);
            PyObject *hit = hits[i];
            PyObject *lid = PyList_GET_ITEM(ids, i);
            if (!PyTuple_Check(lid) || PyTuple_GET_SIZE(lid) != 3) {
                Py_DECREF(xcur);
                PyErr_SetString(PyExc_TypeError, "lstm_steps: ids must hold (wx, wh, b) tuples");
                goto fail;
            }
            PyObject *wxi = PyTuple_GET_ITEM(lid, 0), *whi = PyTuple_GET_ITEM(lid, 1), *bi = PyTuple_GET_ITEM(lid, 2);
            PyObject *dg = PyTuple_GET_ITEM(hit, 0), *dc = PyTuple_GET_ITEM(hit, 1);
            int ngw = PyObject_IsTrue(PyTuple_GET_ITEM(hit, 2));
            int gng = ngw > 0 || PyObject_IsTrue(PyList_GET_ITEM(ng, xv)) > 0 || PyObject_IsTrue(PyList_GET_ITEM(ng, hv)) > 0;
            int cng = gng || PyObject_IsTrue(PyList_GET_ITEM(ng, cv)) > 0;
            PyObject *nn = PyLong_FromSsize_t(n), *n1 = PyLong_FromSsize_t(n + 1), *n2 = PyLong_FromSsize_t(n + 2);
            PyObject *gin[5] = {xcur, hi, wxi, whi, bi}, *cin[2] = {ci, nn}, *hin[2] = {n1, nn};
            int bad = !nn || !n1 || !n2 || fg_append_node(graph, gates_op, gin, 5, Py_None) < 0 ||
                      fg_append_node(graph, cell_op, cin, 2, Py_None) < 0 ||
                      fg_append_node(graph, hid_op, hin, 2, Py_None) < 0 ||
                      PyList_Append(dims, dg) < 0 || PyList_Append(dims, dc) < 0 || PyList_Append(dims, dc) < 0 ||
                      PyList_Append(ng, gng ? Py_True : Py_False) < 0 || PyList_Append(ng, cng ? Py_True : Py_False) < 0 ||
                      PyList_Append(ng, cng ? Py_True : Py_False) < 0;
            Py_DECREF(xcur);
            Py_XDECREF(nn);
            if (bad) {
                Py_XDECREF(n1);
                Py_XDECREF(n2);
                goto fail;
            }
            PyList_SetItem(h, i, n2); /* steals n2 */
            Py_INCREF(n2);
            xcur = n2;
            PyList_SetItem(c, i, n1); /* steals n1 */
        }
        if (PyList_Append(ys, xcur) < 0) { Py_DECREF(xcur); goto fail; }
        Py_DECREF(xcur);
    }
    if (hits != hits_small) PyMem_Free(hits);
    return Py_BuildValue("(nN)", k - start, ys);
fail:
    if (hits != hits_small) PyMem_Free(hits);
    Py_XDECREF(ys);
    return NULL;
}
