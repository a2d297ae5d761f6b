/* The C twins of dynet_api/autobatch.py's join_sources and scatter_targets: the per-node loops
 * that decide where the batch elements of a joined operand come from (forward) and where its
 * gradient goes (backward).  The Python functions are the specification; tests/test_autobatch.py
 * compares the two on random forests.  Sources are told apart by identity (a small open-addressing
 * table of object pointers), as the Python versions do with id(). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

static PyObject *s_y, *s_dim, *s_bd, *s_live;

static int ensure_names(void) {
    if (s_y) return 0;
    s_y = PyUnicode_InternFromString("y");
    s_dim = PyUnicode_InternFromString("dim");
    s_bd = PyUnicode_InternFromString("bd");
    s_live = PyUnicode_InternFromString("live");
    return (s_y && s_dim && s_bd && s_live) ? 0 : -1;
}

/* Pointer -> small integer, open addressing; capacity a power of two above twice the entries. */
typedef struct {
    void **keys;
    Py_ssize_t *vals;
    size_t mask;
} PtrMap;

static int map_init(PtrMap *m, Py_ssize_t n) {
    size_t cap = 16;
    while (cap < (size_t)(2 * n + 2)) cap <<= 1;
    m->keys = (void **)calloc(cap, sizeof(void *));
    m->vals = (Py_ssize_t *)malloc(cap * sizeof(Py_ssize_t));
    m->mask = cap - 1;
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void map_free(PtrMap *m) {
    free(m->keys);
    free(m->vals);
}

/* The slot of key p: vals[slot] holds its number when keys[slot] == p, else the slot is free. */
static size_t map_slot(const PtrMap *m, void *p) {
    size_t h = ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull;
    size_t i = h & m->mask;
    while (m->keys[i] && m->keys[i] != p) i = (i + 1) & m->mask;
    return i;
}

/* An int attribute of an object (the batch size of a Dim). */
static Py_ssize_t int_attr(PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (!v) return -1;
    Py_ssize_t r = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return r;
}

static Py_ssize_t dim_bd(PyObject *dim) { return int_attr(dim, s_bd); }

/* Append first..first+n-1 to list l. */
static int extend_range(PyObject *l, Py_ssize_t first, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; ++k) {
        PyObject *v = PyLong_FromSsize_t(first + k);
        if (!v || PyList_Append(l, v) < 0) {
            Py_XDECREF(v);
            return -1;
        }
        Py_DECREF(v);
    }
    return 0;
}

/* join_sources(col, vals, home, pos, dims) -> (sources, perm): see autobatch.join_sources. */
PyObject *fg_join_sources(PyObject *self, PyObject *args) {
    PyObject *col, *vals, *home, *pos, *dims;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!", &PyList_Type, &col, &PyList_Type, &vals, &PyList_Type, &home,
                          &PyList_Type, &pos, &PyList_Type, &dims))
        return NULL;
    if (ensure_names() < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(col);
    PtrMap map;
    if (map_init(&map, n) < 0) return NULL;
    PyObject *srcs = PyList_New(0); /* [tensor, size, positions] lists */
    Py_ssize_t *wbuf = NULL, nw = 0, wcap = 0; /* per element: its source's number */
    PyObject *out = NULL;
    if (!srcs) goto done;
    for (Py_ssize_t i = 0; i < n; ++i) {
        Py_ssize_t c = PyLong_AsSsize_t(PyList_GET_ITEM(col, i));
        if (c < 0 && PyErr_Occurred()) goto done;
        if (c < 0 || c >= PyList_GET_SIZE(vals) || c >= PyList_GET_SIZE(dims)) {
            PyErr_Format(PyExc_IndexError, "join_sources: node %zd out of range", c);
            goto done;
        }
        PyObject *v = PyList_GET_ITEM(vals, c);
        PyObject *key, *tensor = NULL;
        Py_ssize_t first, size = -1;
        Py_ssize_t bd = dim_bd(PyList_GET_ITEM(dims, c));
        if (bd < 0) goto done;
        if (v == Py_None) {
            key = PyList_GET_ITEM(home, c);
            first = PyLong_AsSsize_t(PyList_GET_ITEM(pos, c));
            if (first < 0 && PyErr_Occurred()) goto done;
        } else {
            key = v;
            first = 0;
        }
        size_t slot = map_slot(&map, key);
        Py_ssize_t k;
        if (map.keys[slot] == key) {
            k = map.vals[slot];
        } else {
            if (v == Py_None) {
                tensor = PyObject_GetAttr(key, s_y);
                if (!tensor) goto done;
                PyObject *gd = PyObject_GetAttr(key, s_dim);
                if (!gd) {
                    Py_DECREF(tensor);
                    goto done;
                }
                size = dim_bd(gd);
                Py_DECREF(gd);
                if (size < 0) {
                    Py_DECREF(tensor);
                    goto done;
                }
            } else {
                Py_INCREF(v);
                tensor = v;
                size = bd;
            }
            PyObject *entry = Py_BuildValue("[NnN]", tensor, size, PyList_New(0));
            if (!entry || PyList_Append(srcs, entry) < 0) {
                Py_XDECREF(entry);
                goto done;
            }
            Py_DECREF(entry);
            k = PyList_GET_SIZE(srcs) - 1;
            map.keys[slot] = key;
            map.vals[slot] = k;
        }
        PyObject *plist = PyList_GET_ITEM(PyList_GET_ITEM(srcs, k), 2);
        if (extend_range(plist, first, bd) < 0) goto done;
        if (nw + bd > wcap) {
            Py_ssize_t nc = wcap ? 2 * wcap : 64;
            while (nc < nw + bd) nc *= 2;
            Py_ssize_t *nb = (Py_ssize_t *)realloc(wbuf, (size_t)nc * sizeof(Py_ssize_t));
            if (!nb) {
                PyErr_NoMemory();
                goto done;
            }
            wbuf = nb;
            wcap = nc;
        }
        for (Py_ssize_t e = 0; e < bd; ++e) wbuf[nw++] = k;
    }
    {
        Py_ssize_t ns = PyList_GET_SIZE(srcs);
        PyObject *res = PyList_New(ns);
        if (!res) goto done;
        Py_ssize_t *starts = (Py_ssize_t *)malloc((size_t)(ns ? ns : 1) * sizeof(Py_ssize_t));
        if (!starts) {
            Py_DECREF(res);
            PyErr_NoMemory();
            goto done;
        }
        Py_ssize_t off = 0;
        for (Py_ssize_t s = 0; s < ns; ++s) {
            PyObject *e = PyList_GET_ITEM(srcs, s);
            PyObject *p = PyList_GET_ITEM(e, 2);
            Py_ssize_t np_ = PyList_GET_SIZE(p);
            Py_ssize_t p0 = PyLong_AsSsize_t(PyList_GET_ITEM(p, 0)), start = p0;
            for (Py_ssize_t q = 1; q < np_; ++q)
                if (PyLong_AsSsize_t(PyList_GET_ITEM(p, q)) != p0 + q) {
                    start = -1;
                    break;
                }
            starts[s] = off;
            off += np_;
            PyObject *t = Py_BuildValue("(OOOn)", PyList_GET_ITEM(e, 0), PyList_GET_ITEM(e, 1), p, start);
            if (!t) {
                free(starts);
                Py_DECREF(res);
                goto done;
            }
            PyList_SET_ITEM(res, s, t);
        }
        int sorted = 1;
        for (Py_ssize_t q = 1; q < nw; ++q)
            if (wbuf[q] < wbuf[q - 1]) {
                sorted = 0;
                break;
            }
        PyObject *perm = Py_None;
        Py_INCREF(Py_None);
        if (!sorted) {
            Py_DECREF(Py_None);
            perm = PyList_New(nw);
            if (!perm) {
                free(starts);
                Py_DECREF(res);
                goto done;
            }
            for (Py_ssize_t q = 0; q < nw; ++q) {
                PyObject *v = PyLong_FromSsize_t(starts[wbuf[q]]++);
                if (!v) {
                    free(starts);
                    Py_DECREF(res);
                    Py_DECREF(perm);
                    goto done;
                }
                PyList_SET_ITEM(perm, q, v);
            }
        }
        free(starts);
        out = Py_BuildValue("(NN)", res, perm);
    }
done:
    map_free(&map);
    free(wbuf);
    Py_XDECREF(srcs);
    return out;
}

/* scatter_targets(col, bds, ng, home, pos) -> (groups, alone): see autobatch.scatter_targets. */
PyObject *fg_scatter_targets(PyObject *self, PyObject *args) {
    PyObject *col, *bds, *ng, *home, *pos;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!", &PyList_Type, &col, &PyList_Type, &bds, &PyList_Type, &ng,
                          &PyList_Type, &home, &PyList_Type, &pos))
        return NULL;
    if (ensure_names() < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(col);
    if (PyList_GET_SIZE(bds) != n) {
        PyErr_SetString(PyExc_ValueError, "scatter_targets: col and bds differ in length");
        return NULL;
    }
    PtrMap map;
    if (map_init(&map, n) < 0) return NULL;
    PyObject *groups = PyList_New(0), *alone = PyList_New(0), *out = NULL;
    if (!groups || !alone) goto done;
    Py_ssize_t off = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        Py_ssize_t c = PyLong_AsSsize_t(PyList_GET_ITEM(col, i));
        Py_ssize_t bd = PyLong_AsSsize_t(PyList_GET_ITEM(bds, i));
        if ((c < 0 || bd < 0) && PyErr_Occurred()) goto done;
        if (c < 0 || c >= PyList_GET_SIZE(ng) || c >= PyList_GET_SIZE(home) || c >= PyList_GET_SIZE(pos)) {
            PyErr_Format(PyExc_IndexError, "scatter_targets: node %zd out of range", c);
            goto done;
        }
        int needs = PyObject_IsTrue(PyList_GET_ITEM(ng, c));
        if (needs < 0) goto done;
        if (needs) {
            PyObject *g = PyList_GET_ITEM(home, c);
            int live = 0;
            if (g != Py_None) {
                size_t slot = map_slot(&map, g);
                if (map.keys[slot] == g) {
                    live = map.vals[slot] >= 0;
                } else {
                    PyObject *lv = PyObject_GetAttr(g, s_live);
                    if (!lv) goto done;
                    live = PyObject_IsTrue(lv);
                    Py_DECREF(lv);
                    if (live < 0) goto done;
                    Py_ssize_t k = -1;
                    if (live) {
                        PyObject *e = Py_BuildValue("(ONN)", g, PyList_New(0), PyList_New(0));
                        if (!e || PyList_Append(groups, e) < 0) {
                            Py_XDECREF(e);
                            goto done;
                        }
                        Py_DECREF(e);
                        k = PyList_GET_SIZE(groups) - 1;
                    }
                    map.keys[slot] = g;
                    map.vals[slot] = k;
                }
                if (live) {
                    PyObject *e = PyList_GET_ITEM(groups, map.vals[map_slot(&map, g)]);
                    Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(pos, c));
                    if (p < 0 && PyErr_Occurred()) goto done;
                    if (extend_range(PyTuple_GET_ITEM(e, 1), off, bd) < 0 ||
                        extend_range(PyTuple_GET_ITEM(e, 2), p, bd) < 0)
                        goto done;
                }
            }
            if (!live) {
                PyObject *t = Py_BuildValue("(nnn)", c, off, bd);
                if (!t || PyList_Append(alone, t) < 0) {
                    Py_XDECREF(t);
                    goto done;
                }
                Py_DECREF(t);
            }
        }
        off += bd;
    }
    out = Py_BuildValue("(OO)", groups, alone);
done:
    map_free(&map);
    Py_XDECREF(groups);
    Py_XDECREF(alone);
    return out;
}
