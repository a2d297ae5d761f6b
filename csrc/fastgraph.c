/* dynet_api._fastgraph: the graph-construction hot path in C (optional accelerator).
 *
 * Part of the front end, not of any backend.  dynet_api/graph.py works without it
 * (pure Python; DYNET_API_PURE_PYTHON=1 forces that, see dynet_api/accelerator.py); with it,
 * three things move here:
 *
 *  - ExpressionBase: the Expression handle's storage (i: a Python int, v: the graph
 *    version) and the operators + - * and unary -.  Python's Expression, Parameters,
 *    LookupParameters and MutableExpression subclass it.
 *  - GraphBase: the graph's hot fields (ver, nodes, dims, ng, _shapes, immediate) as C
 *    members, and add / add1 / add2 / add2_ids.  ComputationGraph subclasses it.
 *  - Unary: a callable for one attribute-free op (dy.tanh, dy.logistic, ...).
 *  - StepFirst (step_first.c): Trainer.update's dispatch to the backend's trainer step.
 *
 * Only the fast path is here: version check, dims lookup, shape-cache lookup and the three
 * appends.  Everything else calls back into Python: ``x._node(cg)`` on a version mismatch
 * (stale expressions, parameters), ``cg._shape(op, key, dims, attrs)`` on a shape-cache
 * miss (rules, backend support, errors), ``cg.forward_to(n)`` under immediate_compute, and
 * the Python operator implementations for operand types not handled here.  The lists and
 * the cache keys are the very objects the Python implementation uses, so both paths agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "packed_nodes.h"
#include "small_int.h"

typedef struct {
    PyObject_HEAD
    PyObject *i; /* node index (a Python int) */
    Py_ssize_t v; /* graph version */
} ExprObject;

typedef struct {
    PyObject_HEAD
    PyObject *nodes, *dims, *ng, *shapes; /* nodes: the list cg.nodes returns (empty while packed) */
    Py_ssize_t ver;
    char immediate;
    char packed; /* the nodes are in pk (packed_nodes.h) until cg.nodes is read */
    DyPackedNode *pk;
    Py_ssize_t npk, pk_cap;
    Py_ssize_t *pk_ids;
    Py_ssize_t nids, ids_cap;
} GraphObject;

typedef struct {
    PyObject_HEAD
    PyObject *graph, *op, *dict;
    vectorcallfunc vectorcall;
    PyObject *fallback, *attrs; /* the Python function for other call forms; attrs of every node */
    PyObject *kattrs;           /* kind 4: int k -> its attrs ((k,),), made once (the shape memo keys on identity) */
    int kind;                   /* 1: f(x), 2: f(x, y), 3: f([x, ...]), 4: f(x, int k) with attrs ((k,),) */
} UnaryObject;

typedef struct {
    PyObject_HEAD
    PyObject *graph, *fallback, *dict;
    vectorcallfunc vectorcall;
} LookupObject;

static PyTypeObject ExprType, GraphType, UnaryType, LookupType;

/* Set by configure_leaves(): Parameters, MutableExpression, the parameter and lookup ops, the
 * row-Dim cache of functions.lookup (a table's Dim -> the Dim of one row). */
static PyTypeObject *param_cls, *mutable_cls;
static PyObject *op_param, *op_lookup, *row_dims;
static PyObject *s_st, *s_supported, *s_backend, *s_dim_attr, *s_bd, *s_kind, *s_parameter, *s_lookup, *empty;

/* Set by configure(): the Python Expression class, the global graph, the operators' ops,
 * the Python operator implementations (fallbacks), the Number ABC. */
static PyTypeObject *expr_cls;
static GraphObject *the_graph;
static PyObject *op_add, *op_neg, *op_plus_c, *op_c_minus, *op_smul, *op_matmul, *op_cmult;
static PyObject *py_add, *py_radd, *py_sub, *py_rsub, *py_mul, *py_rmul;
static PyObject *s_node, *s_shape, *s_forward_to, *s_nograd, *s_name, *s_d, *one;

/* ------------------------------------------------------------------ helpers */

/* x is an ExpressionBase: the exact classes the hot path meets (Expression, Parameters) first, as
 * PyObject_TypeCheck walks a Python subclass's MRO (a tenth of a chain step's construction). */
static inline int is_expr(PyObject *x) {
    PyTypeObject *t = Py_TYPE(x);
    return (expr_cls != NULL && t == expr_cls) || (param_cls != NULL && t == param_cls) || PyObject_TypeCheck(x, &ExprType);
}

static PyObject *type_error(PyObject *op, PyObject *x) {
    PyObject *name = PyObject_GetAttr(op, s_name);
    if (name == NULL) return NULL;
    PyErr_Format(PyExc_TypeError, "%S: expected an Expression, got %s %R", name, _PyType_Name(Py_TYPE(x)), x);
    Py_DECREF(name);
    return NULL;
}

static int param_leaf(GraphObject *g, PyObject *x, PyObject **out);

/* The node index of operand x as a new reference (Python: ``x.i if x.v == ver else x._node(cg)``;
 * an AttributeError there is a TypeError naming the op). */
static PyObject *resolve(GraphObject *g, PyObject *x, PyObject *op) {
    PyObject *r;
    if (is_expr(x)) {
        ExprObject *e = (ExprObject *)x;
        if (e->v == g->ver && e->i != NULL) {
            Py_INCREF(e->i);
            return e->i;
        }
        int done = param_leaf(g, x, &r);
        if (done < 0) return NULL;
        if (done) return r;
        r = PyObject_CallMethodOneArg(x, s_node, (PyObject *)g);
    } else {
        PyObject *v = PyObject_GetAttrString(x, "v");
        if (v == NULL) goto attr_error;
        PyObject *ver = PyLong_FromSsize_t(g->ver);
        if (ver == NULL) {
            Py_DECREF(v);
            return NULL;
        }
        int same = PyObject_RichCompareBool(v, ver, Py_EQ);
        Py_DECREF(v);
        Py_DECREF(ver);
        if (same < 0) return NULL;
        r = same ? PyObject_GetAttrString(x, "i") : PyObject_CallMethodOneArg(x, s_node, (PyObject *)g);
    }
    if (r != NULL) return r;
attr_error:
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return type_error(op, x);
    }
    return NULL;
}

/* dims[k] (borrowed), with Python's indexing rules. */
static PyObject *dim_at(PyObject *dims, PyObject *k) {
    if (dims == NULL || !PyList_Check(dims)) {
        PyErr_SetString(PyExc_RuntimeError, "ComputationGraph: dims and ng must be lists");
        return NULL;
    }
    Py_ssize_t i = dy_as_ssize(k);
    if (i == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(dims);
    if (i < 0) i += n;
    if (i < 0 || i >= n) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    return PyList_GET_ITEM(dims, i);
}

static int truth(PyObject *o) {
    if (o == Py_True) return 1;
    if (o == Py_False) return 0;
    return PyObject_IsTrue(o);
}

/* An Expression holds only its node's index (an int) and the graph's version (and a Mutable one a
 * kind string): no reference cycle can pass through it, so the garbage collector is told not to
 * track it.  A graph of 64 sentences makes some 16k Expressions an update; tracked, they were most
 * of what the collector's young passes walked, and their survival set off full passes over every
 * object of the program (the tagger's construction: 22.7 ms an update with the collector, 5.3
 * without). */
static PyObject *untracked(PyObject *e) {
    if (e != NULL && PyObject_GC_IsTracked(e)) PyObject_GC_UnTrack(e);
    return e;
}

/* A new Expression of class t, never tracked: made by the garbage collector's allocator without
 * the track that type_alloc does (and the untrack that would follow), its fields zeroed, where t
 * is a plain Python subclass (the generic allocator, no items); otherwise t's own allocation. */
static ExprObject *alloc_expr(PyTypeObject *t) {
    if (t->tp_alloc == PyType_GenericAlloc && PyType_IS_GC(t) && t->tp_itemsize == 0 &&
        t->tp_basicsize >= (Py_ssize_t)sizeof(ExprObject)) {
        PyObject *o = PyObject_GC_New(PyObject, t);
        if (o == NULL) return NULL;
        memset((char *)o + sizeof(PyObject), 0, (size_t)t->tp_basicsize - sizeof(PyObject));
        return (ExprObject *)o;
    }
    return (ExprObject *)untracked(t->tp_alloc(t, 0));
}

static PyObject *new_expr(PyObject *i, Py_ssize_t v) {
    PyTypeObject *t = expr_cls != NULL ? expr_cls : &ExprType;
    ExprObject *e = alloc_expr(t);
    if (e == NULL) return NULL;
    Py_INCREF(i);
    e->i = i;
    e->v = v;
    return (PyObject *)e;
}

/* new_expression(i, v): the Expression of node i of graph version v, as the C paths make it (no
 * __init__, not tracked by the garbage collector), for the Python fast paths that make many. */
static PyObject *new_expression(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyLong_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "new_expression(i, v): i must be an int node index, v the graph's version");
        return NULL;
    }
    Py_ssize_t v = PyLong_AsSsize_t(args[1]);
    if (v == -1 && PyErr_Occurred()) return NULL;
    return new_expr(args[0], v);
}

/* The node index n as an int (new reference).  Indices up to INDEX_CACHE are made once and
 * kept: every graph numbers its nodes from 0, so the same ints serve every graph, and a node
 * costs no int allocation (and no deallocation when the graph is renewed). */
#define INDEX_CACHE (1 << 16)
static PyObject **index_ints;
static Py_ssize_t index_cap;

static PyObject *index_obj(Py_ssize_t n) {
    if (n < 0 || n >= INDEX_CACHE) return PyLong_FromSsize_t(n);
    if (n >= index_cap) {
        Py_ssize_t cap = index_cap ? index_cap : 1024;
        while (cap <= n) cap *= 2;
        PyObject **a = PyMem_Realloc(index_ints, (size_t)cap * sizeof(PyObject *));
        if (a == NULL) return PyErr_NoMemory();
        memset(a + index_cap, 0, (size_t)(cap - index_cap) * sizeof(PyObject *));
        index_ints = a;
        index_cap = cap;
    }
    if (index_ints[n] == NULL && (index_ints[n] = PyLong_FromSsize_t(n)) == NULL) return NULL;
    Py_INCREF(index_ints[n]);
    return index_ints[n];
}

/* The operand ids (k,) of a one-input node (new reference), shared the same way for k below
 * INDEX_CACHE: a unary node allocates no ids tuple. */
static PyObject **ids1_tuples;
static Py_ssize_t ids1_cap;

static PyObject *ids1_obj(PyObject *k) {
    Py_ssize_t n = dy_as_ssize(k);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0 || n >= INDEX_CACHE || !PyLong_CheckExact(k)) return PyTuple_Pack(1, k);
    if (n >= ids1_cap) {
        Py_ssize_t cap = ids1_cap ? ids1_cap : 1024;
        while (cap <= n) cap *= 2;
        PyObject **a = PyMem_Realloc(ids1_tuples, (size_t)cap * sizeof(PyObject *));
        if (a == NULL) return PyErr_NoMemory();
        memset(a + ids1_cap, 0, (size_t)(cap - ids1_cap) * sizeof(PyObject *));
        ids1_tuples = a;
        ids1_cap = cap;
    }
    if (ids1_tuples[n] == NULL) {
        PyObject *t = PyTuple_Pack(1, k);
        if (t == NULL) return NULL;
        PyObject_GC_UnTrack(t); /* an int only */
        ids1_tuples[n] = t;
    }
    Py_INCREF(ids1_tuples[n]);
    return ids1_tuples[n];
}

/* PyList_Append(l, v), its common case (room left in the list) written in place: three appends a
 * node, and the call with its checks was a tenth of append_tuple's instructions. */
static inline int list_append(PyObject *l, PyObject *v) {
    PyListObject *L = (PyListObject *)l;
    Py_ssize_t n = Py_SIZE(L);
    if (n < L->allocated) {
        Py_INCREF(v);
        L->ob_item[n] = v;
        Py_SET_SIZE(L, n + 1);
        return 0;
    }
    return PyList_Append(l, v);
}

static int lists_ok(GraphObject *g) {
    if (g->nodes == NULL || g->dims == NULL || g->ng == NULL || !PyList_Check(g->nodes) || !PyList_Check(g->dims) ||
        !PyList_Check(g->ng)) {
        PyErr_SetString(PyExc_RuntimeError, "ComputationGraph: nodes, dims and ng must be lists");
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ packed nodes (packed_nodes.h) */

static PyObject *node_tuple(PyObject *op, PyObject *ids, PyObject *attrs);
static PyObject *ids_tuple(PyObject *const *in, Py_ssize_t m);

static void pk_release(GraphObject *g, Py_ssize_t from) {
    for (Py_ssize_t j = g->npk; j-- > from;) {
        Py_CLEAR(g->pk[j].op);
        Py_CLEAR(g->pk[j].attrs);
    }
    if (from < g->npk) {
        g->nids = from > 0 ? g->pk[from - 1].i0 + g->pk[from - 1].na : 0;
        g->npk = from;
    }
}

static void pk_free(GraphObject *g) {
    pk_release(g, 0);
    PyMem_Free(g->pk);
    PyMem_Free(g->pk_ids);
    g->pk = NULL, g->pk_ids = NULL;
    g->pk_cap = g->ids_cap = g->npk = g->nids = 0;
}

/* Append node (op, (in[0], ..., in[m-1]), attrs) to the packed arrays (the in[] are ints). */
static int pk_append(GraphObject *g, PyObject *op, PyObject *const *in, Py_ssize_t m, PyObject *attrs) {
    if (g->npk == g->pk_cap) {
        Py_ssize_t cap = g->pk_cap ? 2 * g->pk_cap : 1024;
        DyPackedNode *a = PyMem_Realloc(g->pk, (size_t)cap * sizeof(DyPackedNode));
        if (a == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        g->pk = a, g->pk_cap = cap;
    }
    if (g->nids + m > g->ids_cap) {
        Py_ssize_t cap = g->ids_cap ? 2 * g->ids_cap : 4096;
        while (cap < g->nids + m) cap *= 2;
        Py_ssize_t *a = PyMem_Realloc(g->pk_ids, (size_t)cap * sizeof(Py_ssize_t));
        if (a == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        g->pk_ids = a, g->ids_cap = cap;
    }
    Py_ssize_t *ids = g->pk_ids + g->nids;
    for (Py_ssize_t a = 0; a < m; a++) {
        Py_ssize_t v = dy_as_ssize(in[a]);
        if (v == -1 && PyErr_Occurred()) return -1;
        ids[a] = v;
    }
    DyPackedNode *r = g->pk + g->npk;
    Py_INCREF(op);
    r->op = op;
    r->attrs = attrs == Py_None ? NULL : attrs;
    Py_XINCREF(r->attrs);
    r->i0 = g->nids, r->na = m;
    g->nids += m;
    g->npk++;
    return 0;
}

/* cg.nodes is read: the packed nodes become tuples in the list, which holds every node from now
 * until the next renew_cg. */
static int pk_unpack(GraphObject *g) {
    if (!g->packed) return 0;
    if (g->nodes == NULL || !PyList_Check(g->nodes)) {
        PyErr_SetString(PyExc_RuntimeError, "ComputationGraph: nodes must be a list");
        return -1;
    }
    for (Py_ssize_t j = PyList_GET_SIZE(g->nodes); j < g->npk; j++) {
        const DyPackedNode *r = g->pk + j;
        PyObject *small[8], **k = r->na <= 8 ? small : PyMem_New(PyObject *, (size_t)r->na);
        if (k == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t got = 0;
        for (; got < r->na; got++)
            if ((k[got] = index_obj(g->pk_ids[r->i0 + got])) == NULL) break;
        PyObject *ids = got == r->na ? ids_tuple(k, r->na) : NULL;
        for (Py_ssize_t a = 0; a < got; a++) Py_DECREF(k[a]);
        if (k != small) PyMem_Free(k);
        if (ids == NULL) return -1;
        PyObject *node = node_tuple(r->op, ids, r->attrs != NULL ? r->attrs : Py_None);
        Py_DECREF(ids);
        if (node == NULL) return -1;
        int bad = list_append(g->nodes, node);
        Py_DECREF(node);
        if (bad < 0) return -1;
    }
    g->packed = 0;
    pk_release(g, 0);
    return 0;
}

/* Node (op, (in[0], ..., in[m-1]), attrs) appended where graph keeps its nodes (packed, or as
 * a tuple in its list); the caller appends its dims and ng entries.  lstm_steps.c's appends. */
int fg_append_node(PyObject *graph, PyObject *op, PyObject *const *in, Py_ssize_t m, PyObject *attrs) {
    if (!PyObject_TypeCheck(graph, &GraphType)) {
        PyErr_SetString(PyExc_TypeError, "the graph must be a dynet_api._fastgraph.GraphBase");
        return -1;
    }
    GraphObject *g = (GraphObject *)graph;
    if (!lists_ok(g)) return -1;
    if (g->packed) return pk_append(g, op, in, m, attrs);
    PyObject *ids = ids_tuple(in, m);
    if (ids == NULL) return -1;
    PyObject *node = node_tuple(op, ids, attrs);
    Py_DECREF(ids);
    if (node == NULL) return -1;
    int r = PyList_Append(g->nodes, node);
    Py_DECREF(node);
    return r;
}

/* The capsule's function (packed_nodes.h). */
static int pk_view(PyObject *graph, DyPackedView *out) {
    if (graph == NULL || !PyObject_TypeCheck(graph, &GraphType)) return 0;
    GraphObject *g = (GraphObject *)graph;
    if (!g->packed) return 0;
    out->n = g->npk, out->nodes = g->pk, out->ids = g->pk_ids;
    return 1;
}

/* Append dims[n] = d, ng[n] = ng for the node just put at n; run it under immediate_compute;
 * return the node index. */
static PyObject *append_tail(GraphObject *g, PyObject *d, int ng) {
    PyObject *n = index_obj(PyList_GET_SIZE(g->dims));
    if (n == NULL) return NULL;
    if (list_append(g->dims, d) < 0 || list_append(g->ng, ng ? Py_True : Py_False) < 0) {
        Py_DECREF(n);
        return NULL;
    }
    if (g->immediate) {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)g, s_forward_to, n);
        if (r == NULL) {
            Py_DECREF(n);
            return NULL;
        }
        Py_DECREF(r);
    }
    return n;
}

/* Append the node tuple (op, ids, attrs) (a new reference, taken over), d and ng; run it under
 * immediate_compute; return the node index. */
static PyObject *append_tuple(GraphObject *g, PyObject *node, PyObject *d, int ng) {
    if (!lists_ok(g) || list_append(g->nodes, node) < 0) {
        Py_DECREF(node);
        return NULL;
    }
    Py_DECREF(node);
    return append_tail(g, d, ng);
}

/* The node tuple (op, ids, attrs), not GC-tracked: ids holds ints only, and a node holds its op
 * (global), ids and attrs (values, never the graph), so neither can close a reference cycle the
 * collector would have to break.  Tracked, they made every gen-0 collection walk the nodes added
 * since the last one (~40% of the time per node with gc enabled). */
static PyObject *node_tuple(PyObject *op, PyObject *ids, PyObject *attrs) {
    PyObject *node = PyTuple_Pack(3, op, ids, attrs);
    if (node == NULL) return NULL;
    if (PyObject_GC_IsTracked(ids)) PyObject_GC_UnTrack(ids);
    PyObject_GC_UnTrack(node);
    return node;
}

/* Append (op, ids, attrs), d and ng; run it under immediate_compute; return the node index. */
static PyObject *append_raw(GraphObject *g, PyObject *op, PyObject *ids, PyObject *attrs, PyObject *d, int ng) {
    if (g->packed) {
        if (!lists_ok(g) || pk_append(g, op, ((PyTupleObject *)ids)->ob_item, PyTuple_GET_SIZE(ids), attrs) < 0)
            return NULL;
        return append_tail(g, d, ng);
    }
    PyObject *node = node_tuple(op, ids, attrs);
    return node == NULL ? NULL : append_tuple(g, node, d, ng);
}

/* ------------------------------------------------------------------ node tuples of repeated graphs
 *
 * A training loop builds the same graph shape again and again, so the next node at position n is
 * mostly the last graph's node n.  The attribute-free node tuple (op, ids, None) last made at each
 * position is kept and given again when its op and operand ints are the very same objects (the
 * cached index ints above): the ids and node tuples are then neither allocated now nor freed at
 * renew_cg.  Attribute-free only, so the memo never keeps a graph's data (inputs, tables) alive. */
static PyObject **node_memo;
static Py_ssize_t node_memo_cap;

static inline PyObject *ids_of(PyObject *node) { return PyTuple_GET_ITEM(node, 1); }

/* t[k] = v in a tuple only this module holds (new reference to v taken, the old item released). */
static inline void set_item(PyObject *t, Py_ssize_t k, PyObject *v) {
    PyObject *old = PyTuple_GET_ITEM(t, k);
    Py_INCREF(v);
    PyTuple_SET_ITEM(t, k, v);
    Py_XDECREF(old);
}

/* The ids tuple (in[0], ..., in[m-1]) of an operator node, not GC-tracked (ints only). */
static PyObject *ids_tuple(PyObject *const *in, Py_ssize_t m) {
    if (m == 1) return ids1_obj(in[0]);
    PyObject *ids = PyTuple_New(m);
    if (ids == NULL) return NULL;
    for (Py_ssize_t a = 0; a < m; a++) {
        Py_INCREF(in[a]);
        PyTuple_SET_ITEM(ids, a, in[a]);
    }
    PyObject_GC_UnTrack(ids);
    return ids;
}

/* The tuple ids holds in[0 .. m) (the very objects). */
static int same_ids(PyObject *ids, PyObject *const *in, Py_ssize_t m) {
    if (PyTuple_GET_SIZE(ids) != m) return 0;
    for (Py_ssize_t a = 0; a < m; a++)
        if (PyTuple_GET_ITEM(ids, a) != in[a]) return 0;
    return 1;
}

/* The node tuple (op, (in[0], ..., in[m-1]), None) for position n, m >= 1 (new reference). */
static PyObject *plain_node(Py_ssize_t n, PyObject *op, PyObject *const *in, Py_ssize_t m) {
#if defined(__GNUC__)
    /* The last graph's tuples at the next positions, long out of cache: reading each one's count
     * and ids was most of this function's time.  Asked for ahead (the tuple, then its ids), as
     * nodes are added in position order. */
    if (n >= 0 && n + 8 < node_memo_cap) {
        if (node_memo[n + 8] != NULL) __builtin_prefetch(node_memo[n + 8]);
        PyObject *t4 = node_memo[n + 4];
        if (t4 != NULL) __builtin_prefetch(PyTuple_GET_ITEM(t4, 1));
    }
#endif
    if (n >= 0 && n < node_memo_cap && node_memo[n] != NULL) {
        PyObject *t = node_memo[n], *ids = PyTuple_GET_ITEM(t, 1);
        if (PyTuple_GET_ITEM(t, 0) == op && same_ids(ids, in, m)) {
            Py_INCREF(t);
            return t;
        }
        if (Py_REFCNT(t) == 1) {
            /* Another node, but only the memo holds the last graph's one (its list was emptied at
             * renew_cg): rewritten in place, as good as a new tuple nobody has seen, it spares an
             * allocation now and a free (the tuple, often its ids) when the memo moved on.  A graph
             * that varies (trees, sentences) misses the memo at most positions. */
            PyObject *ids;
            if (m >= 2 && PyTuple_GET_SIZE(ids_of(t)) == m && Py_REFCNT(ids_of(t)) == 1) {
                ids = ids_of(t);
                for (Py_ssize_t a = 0; a < m; a++) set_item(ids, a, in[a]);
            } else {
                ids = ids_tuple(in, m);
                if (ids == NULL) return NULL;
                set_item(t, 1, ids);
                Py_DECREF(ids);
            }
            set_item(t, 0, op);
            Py_INCREF(t);
            return t;
        }
    }
    PyObject *ids = ids_tuple(in, m);
    if (ids == NULL) return NULL;
    PyObject *node = node_tuple(op, ids, Py_None);
    Py_DECREF(ids);
    if (node == NULL || n < 0 || n >= INDEX_CACHE) return node;
    if (n >= node_memo_cap) {
        Py_ssize_t cap = node_memo_cap ? node_memo_cap : 1024;
        while (cap <= n) cap *= 2;
        PyObject **a = PyMem_Realloc(node_memo, (size_t)cap * sizeof(PyObject *));
        if (a == NULL) return node; /* no memo: still a valid node */
        memset(a + node_memo_cap, 0, (size_t)(cap - node_memo_cap) * sizeof(PyObject *));
        node_memo = a;
        node_memo_cap = cap;
    }
    Py_INCREF(node);
    Py_XSETREF(node_memo[n], node);
    return node;
}

/* Append an operator node of operands in[0 .. m): the memo above when attrs is None. */
static PyObject *append_op(GraphObject *g, PyObject *op, PyObject *const *in, Py_ssize_t m, PyObject *attrs,
                           PyObject *d, int ng) {
    PyObject *node;
    if (g->packed) {
        if (!lists_ok(g) || pk_append(g, op, in, m, attrs) < 0) return NULL;
        return append_tail(g, d, ng);
    }
    if (attrs == Py_None && m >= 1 && g->dims != NULL && PyList_Check(g->dims)) {
        node = plain_node(PyList_GET_SIZE(g->dims), op, in, m);
    } else {
        PyObject *ids = ids_tuple(in, m);
        if (ids == NULL) return NULL;
        node = node_tuple(op, ids, attrs);
        Py_DECREF(ids);
    }
    return node == NULL ? NULL : append_tuple(g, node, d, ng);
}


static int op_nograd(PyObject *op) {
    PyObject *ng = PyObject_GetAttr(op, s_nograd);
    if (ng == NULL) return -1;
    int t = PyObject_IsTrue(ng);
    Py_DECREF(ng);
    return t;
}

/* ------------------------------------------------------------------ shape memo in front of the dict
 *
 * A direct-mapped table keyed by the identities of (op, attrs, input Dims), in front of the
 * graph's _shapes dict: a hit skips building, hashing, comparing and freeing the key tuple.
 * An entry holds strong references to its key objects (so their addresses cannot be reused
 * while it lives) and to the dict it was filled from: it is used only while that very dict
 * is the graph's _shapes (a new backend makes a new dict).  It is filled only with results
 * the dict path returned, so it never answers what the dict would not. */
#define SC_SIZE 1024
#define SC_MAXIN 4
typedef struct {
    PyObject *shapes, *op, *attrs, *d;
    PyObject *in[SC_MAXIN];
    Py_ssize_t m;
    int nog; /* op.nograd is non-empty (an op's table entry, read once) */
} SCEntry;
static SCEntry sc_table[SC_SIZE];

static inline size_t sc_slot(PyObject *op, PyObject *attrs, PyObject *const *in, Py_ssize_t m) {
    uint64_t h = ((uint64_t)(uintptr_t)op >> 4) * 0x9E3779B97F4A7C15ull;
    h = (h ^ ((uint64_t)(uintptr_t)attrs >> 4)) * 0x9E3779B97F4A7C15ull;
    for (Py_ssize_t k = 0; k < m; k++) h = (h ^ ((uint64_t)(uintptr_t)in[k] >> 4)) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) & (SC_SIZE - 1);
}

/* The memoised Dim (borrowed) or NULL; *nog gets the op's nograd flag on a hit. */
static PyObject *sc_get(GraphObject *g, PyObject *op, PyObject *attrs, PyObject *const *in, Py_ssize_t m, int *nog) {
    if (m > SC_MAXIN || g->shapes == NULL) return NULL;
    SCEntry *e = &sc_table[sc_slot(op, attrs, in, m)];
    if (e->shapes != g->shapes || e->op != op || e->attrs != attrs || e->m != m) return NULL;
    for (Py_ssize_t k = 0; k < m; k++)
        if (e->in[k] != in[k]) return NULL;
    *nog = e->nog;
    return e->d;
}

static void sc_put(GraphObject *g, PyObject *op, PyObject *attrs, PyObject *const *in, Py_ssize_t m, PyObject *d,
                   int nog) {
    if (m > SC_MAXIN || g->shapes == NULL || !PyDict_CheckExact(g->shapes)) return;
    SCEntry *e = &sc_table[sc_slot(op, attrs, in, m)];
    SCEntry old = *e;
    Py_INCREF(g->shapes);
    e->shapes = g->shapes;
    Py_INCREF(op);
    e->op = op;
    Py_INCREF(attrs);
    e->attrs = attrs;
    Py_INCREF(d);
    e->d = d;
    for (Py_ssize_t k = 0; k < m; k++) {
        Py_INCREF(in[k]);
        e->in[k] = in[k];
    }
    e->m = m;
    e->nog = nog;
    /* the old references last: a deallocation cannot see a half-written entry */
    Py_XDECREF(old.shapes);
    Py_XDECREF(old.op);
    Py_XDECREF(old.attrs);
    Py_XDECREF(old.d);
    for (Py_ssize_t k = 0; k < old.m; k++) Py_XDECREF(old.in[k]);
}

/* memo_shape on a miss of the memo: the dict, else the shape rule; then the memo is filled. */
static PyObject *memo_shape_miss(GraphObject *g, PyObject *op, PyObject *attrs, PyObject *const *in, Py_ssize_t m,
                                 int ind_list, int *nog) {
    PyObject *d = NULL;
    PyObject *key = PyTuple_New(m + 2);
    if (key == NULL) return NULL;
    Py_INCREF(op);
    PyTuple_SET_ITEM(key, 0, op);
    Py_INCREF(attrs);
    PyTuple_SET_ITEM(key, 1, attrs);
    for (Py_ssize_t a = 0; a < m; a++) {
        Py_INCREF(in[a]);
        PyTuple_SET_ITEM(key, a + 2, in[a]);
    }
    if (g->shapes != NULL && PyDict_CheckExact(g->shapes)) {
        d = PyDict_GetItemWithError(g->shapes, key);
        if (d != NULL)
            Py_INCREF(d);
        else if (PyErr_Occurred())
            goto fail;
    }
    if (d == NULL) { /* the input Dims as a sequence only on a miss */
        PyObject *ind = ind_list ? PyList_New(m) : PyTuple_New(m);
        if (ind == NULL) goto fail;
        for (Py_ssize_t a = 0; a < m; a++) {
            Py_INCREF(in[a]);
            if (ind_list)
                PyList_SET_ITEM(ind, a, in[a]);
            else
                PyTuple_SET_ITEM(ind, a, in[a]);
        }
        d = PyObject_CallMethodObjArgs((PyObject *)g, s_shape, op, key, ind, attrs, NULL);
        Py_DECREF(ind);
        if (d == NULL) goto fail;
    }
    *nog = op_nograd(op);
    if (*nog < 0) {
        Py_DECREF(d);
        goto fail;
    }
    sc_put(g, op, attrs, in, m, d, *nog);
    Py_DECREF(key);
    return d;
fail:
    Py_DECREF(key);
    return NULL;
}

/* The output Dim (new reference) of op over the input Dims in[0..m), and in *nog the op's
 * nograd flag: the memo above, else the graph's _shapes dict under the key (op, attrs, *in),
 * else ``cg._shape(op, key, ind, attrs)`` with ``ind`` the input Dims (a list when ind_list,
 * as add passes them; a tuple otherwise).  The one shape-memo sequence of the add family;
 * the hit is inlined into each caller, as the sequences it replaces were. */
static inline PyObject *memo_shape(GraphObject *g, PyObject *op, PyObject *attrs, PyObject *const *in,
                                   Py_ssize_t m, int ind_list, int *nog) {
    PyObject *d = sc_get(g, op, attrs, in, m, nog);
    if (d != NULL) {
        Py_INCREF(d);
        return d;
    }
    return memo_shape_miss(g, op, attrs, in, m, ind_list, nog);
}

/* ------------------------------------------------------------------ the add family */

static PyObject *do_add1(GraphObject *g, PyObject *op, PyObject *x, PyObject *attrs) {
    Py_ssize_t ver = g->ver;
    PyObject *k = resolve(g, x, op);
    if (k == NULL) return NULL;
    PyObject *r = NULL, *d = NULL;
    PyObject *dk = dim_at(g->dims, k);
    if (dk == NULL) goto done;
    int nog = -1;
    d = memo_shape(g, op, attrs, &dk, 1, 0, &nog);
    if (d == NULL) goto done;
    /* ng[k] and not op.nograd */
    PyObject *ngk = dim_at(g->ng, k);
    if (ngk == NULL) goto done;
    int ng = truth(ngk);
    if (ng < 0) goto done;
    if (ng) ng = !nog;
    PyObject *n = append_op(g, op, &k, 1, attrs, d, ng);
    if (n != NULL) {
        r = new_expr(n, ver);
        Py_DECREF(n);
    }
done:
    Py_DECREF(k);
    Py_XDECREF(d);
    return r;
}

/* Two resolved operands (new references i, j are borrowed here). */
static PyObject *do_add2_ids(GraphObject *g, PyObject *op, PyObject *i, PyObject *j, PyObject *attrs, int nograd_check,
                         Py_ssize_t ver) {
    PyObject *r = NULL, *d = NULL;
    PyObject *di = dim_at(g->dims, i);
    if (di == NULL) return NULL;
    PyObject *dj = dim_at(g->dims, j);
    if (dj == NULL) return NULL;
    PyObject *dij[2] = {di, dj};
    int nog = -1;
    d = memo_shape(g, op, attrs, dij, 2, 0, &nog);
    if (d == NULL) return NULL;
    int ng = 0;
    if (nograd_check && nog) goto have_ng;
    {
        PyObject *a = dim_at(g->ng, i);
        if (a == NULL) goto done;
        ng = truth(a);
        if (ng < 0) goto done;
        if (!ng) {
            PyObject *b = dim_at(g->ng, j);
            if (b == NULL) goto done;
            ng = truth(b);
            if (ng < 0) goto done;
        }
    }
have_ng:
    {
        PyObject *ij[2] = {i, j};
        PyObject *n = append_op(g, op, ij, 2, attrs, d, ng);
        if (n != NULL) {
            r = new_expr(n, ver);
            Py_DECREF(n);
        }
    }
done:
    Py_XDECREF(d);
    return r;
}

static PyObject *do_add2(GraphObject *g, PyObject *op, PyObject *x, PyObject *y, PyObject *attrs) {
    Py_ssize_t ver = g->ver;
    PyObject *i = resolve(g, x, op);
    if (i == NULL) return NULL;
    PyObject *j = resolve(g, y, op);
    if (j == NULL) {
        Py_DECREF(i);
        return NULL;
    }
    PyObject *r = do_add2_ids(g, op, i, j, attrs, 1, ver);
    Py_DECREF(i);
    Py_DECREF(j);
    return r;
}

static PyObject *do_add(GraphObject *g, PyObject *op, PyObject *args, PyObject *attrs) {
    Py_ssize_t ver = g->ver;
    PyObject *seq = PySequence_Fast(args, "add: args must be a sequence of expressions");
    if (seq == NULL) return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq), got = 0;
    PyObject *r = NULL, *d = NULL;
    PyObject *small[SC_MAXIN], **in = small;      /* the input Dims (borrowed from g->dims) */
    PyObject *small_ids[SC_MAXIN], **ids = small_ids; /* the operands' node indices (new references) */
    int nog = -1;
    if (m > SC_MAXIN) {
        in = PyMem_New(PyObject *, m);
        ids = PyMem_New(PyObject *, m);
        if (in == NULL || ids == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    for (; got < m; got++) {
        ids[got] = resolve(g, PySequence_Fast_GET_ITEM(seq, got), op);
        if (ids[got] == NULL) goto done;
    }
    for (Py_ssize_t a = 0; a < m; a++) {
        in[a] = dim_at(g->dims, ids[a]);
        if (in[a] == NULL) goto done;
    }
    d = memo_shape(g, op, attrs, in, m, 1, &nog);
    if (d == NULL) goto done;
    int ng = 0;
    if (!nog) {
        for (Py_ssize_t a = 0; a < m && !ng; a++) {
            PyObject *b = dim_at(g->ng, ids[a]);
            if (b == NULL) goto done;
            ng = truth(b);
            if (ng < 0) goto done;
        }
    }
    PyObject *n = append_op(g, op, ids, m, attrs, d, ng);
    if (n == NULL) goto done;
    r = new_expr(n, ver);
    Py_DECREF(n);
done:
    for (Py_ssize_t a = 0; a < got; a++) Py_DECREF(ids[a]);
    if (in != small) PyMem_Free(in);
    if (ids != small_ids) PyMem_Free(ids);
    Py_DECREF(seq);
    Py_XDECREF(d);
    return r;
}

/* ------------------------------------------------------------------ leaves: a parameter's first use, E[w] */

/* 1 when st may be read as a leaf `opname` of g without the Python checks (the graph is bound,
 * st lives on its backend, the backend supports the op), 0 when Python must decide, -1 on error. */
static int leaf_ready(GraphObject *g, PyObject *st, PyObject *opname) {
    PyObject *sup = PyObject_GetAttr((PyObject *)g, s_supported);
    if (sup == NULL) return -1;
    int ok = 0;
    if (PyAnySet_Check(sup)) {
        PyObject *gb = PyObject_GetAttr((PyObject *)g, s_backend);
        PyObject *sb = gb ? PyObject_GetAttr(st, s_backend) : NULL;
        if (sb == NULL)
            ok = -1;
        else if (gb == sb && gb != Py_None)
            ok = PySet_Contains(sup, opname);
        Py_XDECREF(gb);
        Py_XDECREF(sb);
    }
    Py_DECREF(sup);
    return ok;
}

/* Parameters._node in C for an exact Parameters x: append the leaf (parameter, (st, True, dim)),
 * set x.i, x.v.  1: done (*out the index, new reference), 0: not handled (Python's _node
 * decides: unbound graph, other backend, ...), -1: error. */
static int param_leaf(GraphObject *g, PyObject *x, PyObject **out) {
    if (param_cls == NULL || Py_TYPE(x) != param_cls) return 0;
    Py_ssize_t ver = g->ver;
    PyObject *st = PyObject_GetAttr(x, s_st);
    if (st == NULL) return -1;
    int ok = leaf_ready(g, st, s_parameter);
    if (ok <= 0) {
        Py_DECREF(st);
        return ok;
    }
    PyObject *d = PyObject_GetAttr(st, s_dim_attr);
    PyObject *attrs = d ? PyTuple_Pack(3, st, Py_True, d) : NULL;
    Py_DECREF(st);
    PyObject *n = attrs ? append_raw(g, op_param, empty, attrs, d, 1) : NULL;
    Py_XDECREF(attrs);
    Py_XDECREF(d);
    if (n == NULL) return -1;
    ExprObject *e = (ExprObject *)x;
    Py_INCREF(n);
    Py_XSETREF(e->i, n);
    e->v = ver;
    *out = n;
    return 1;
}

/* lookup(p, w) for an int w, update on: the row leaf (lookup, (st, (w,), True, row dim)) as a
 * MutableExpression; every other case (other call forms, a bad index, an unbound graph, a
 * table on another backend, a row Dim not cached yet) goes to the Python lookup, which raises
 * the errors (TypeError for a non-int, IndexError naming the parameter and the index). */
static PyObject *lookup_vectorcall(LookupObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 2 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) && PyLong_CheckExact(args[1]) &&
        mutable_cls != NULL && PyObject_TypeCheck(self->graph, &GraphType)) {
        GraphObject *g = (GraphObject *)self->graph;
        Py_ssize_t ver = g->ver;
        PyObject *r = NULL, *st = PyObject_GetAttr(args[0], s_st);
        if (st == NULL) {
            PyErr_Clear();
            goto fallback;
        }
        int ok = leaf_ready(g, st, s_lookup);
        if (ok < 0) goto out;
        if (ok == 0) {
            Py_DECREF(st);
            goto fallback;
        }
        PyObject *td = PyObject_GetAttr(st, s_dim_attr);
        if (td == NULL) goto out;
        PyObject *bdo = PyObject_GetAttr(td, s_bd);
        PyObject *d = bdo ? PyDict_GetItemWithError(row_dims, td) : NULL; /* borrowed */
        Py_DECREF(td);
        if (d == NULL) {
            Py_XDECREF(bdo);
            if (PyErr_Occurred()) goto out;
            Py_DECREF(st);
            goto fallback;
        }
        Py_ssize_t bd = PyLong_AsSsize_t(bdo);
        Py_DECREF(bdo);
        if (bd == -1 && PyErr_Occurred()) goto out;
        int overflow = 0;
        long long w = PyLong_AsLongLongAndOverflow(args[1], &overflow);
        if (overflow || w < 0 || w >= bd) { /* the Python path raises the IndexError */
            Py_DECREF(st);
            goto fallback;
        }
        PyObject *idx = PyTuple_Pack(1, args[1]);
        PyObject *attrs = idx ? PyTuple_Pack(4, st, idx, Py_True, d) : NULL;
        Py_XDECREF(idx);
        if (attrs == NULL) goto out;
        PyObject_GC_UnTrack(idx); /* ints only */
        PyObject_GC_UnTrack(attrs); /* values only (the storage never refers to the graph) */
        PyObject *n = append_raw(g, op_lookup, empty, attrs, d, 1);
        Py_DECREF(attrs);
        if (n == NULL) goto out;
        ExprObject *e = alloc_expr(mutable_cls);
        if (e != NULL) {
            e->i = n;
            e->v = ver;
            if (PyObject_SetAttr((PyObject *)e, s_kind, s_lookup) < 0) Py_CLEAR(e);
        } else {
            Py_DECREF(n);
        }
        r = (PyObject *)e;
    out:
        Py_DECREF(st);
        return r;
    }
fallback:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *lookup_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"graph", "fallback", NULL};
    PyObject *graph, *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O:Lookup", kwlist, &GraphType, &graph, &fallback)) return NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "Lookup: fallback must be callable");
        return NULL;
    }
    LookupObject *self = (LookupObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    Py_INCREF(graph);
    self->graph = graph;
    Py_INCREF(fallback);
    self->fallback = fallback;
    self->vectorcall = (vectorcallfunc)lookup_vectorcall;
    return (PyObject *)self;
}

static int lookup_traverse(LookupObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->graph);
    Py_VISIT(self->fallback);
    Py_VISIT(self->dict);
    return 0;
}

static int lookup_clear(LookupObject *self) {
    Py_CLEAR(self->graph);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->dict);
    return 0;
}

static void lookup_dealloc(LookupObject *self) {
    PyObject_GC_UnTrack(self);
    lookup_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A function's binding: as a class attribute (LookupParameters.__getitem__) it is a method. */
static PyObject *lookup_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyGetSetDef lookup_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LookupType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynet_api._fastgraph.Lookup",
    .tp_basicsize = sizeof(LookupObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "Lookup(graph, fallback): f(p, w) adds the row w of lookup parameter p (an int w, update on); "
              "other call forms and every error go to fallback.  Binds like a function.",
    .tp_traverse = (traverseproc)lookup_traverse,
    .tp_clear = (inquiry)lookup_clear,
    .tp_dealloc = (destructor)lookup_dealloc,
    .tp_new = lookup_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LookupObject, vectorcall),
    .tp_dictoffset = offsetof(LookupObject, dict),
    .tp_descr_get = lookup_descr_get,
    .tp_getset = lookup_getset,
};

static PyObject *configure_leaves(PyObject *module, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"parameters", "mutable", "parameter_op", "lookup_op", "row_dims", NULL};
    PyObject *pc, *mc, *po, *lo, *rd;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOO!:configure_leaves", kwlist, &PyType_Type, &pc, &PyType_Type,
                                     &mc, &po, &lo, &PyDict_Type, &rd))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)pc, &ExprType) || !PyType_IsSubtype((PyTypeObject *)mc, &ExprType)) {
        PyErr_SetString(PyExc_TypeError, "configure_leaves: parameters and mutable must subclass ExpressionBase");
        return NULL;
    }
    Py_INCREF(pc);
    Py_XSETREF(param_cls, (PyTypeObject *)pc);
    Py_INCREF(mc);
    Py_XSETREF(mutable_cls, (PyTypeObject *)mc);
    Py_INCREF(po);
    Py_XSETREF(op_param, po);
    Py_INCREF(lo);
    Py_XSETREF(op_lookup, lo);
    Py_INCREF(rd);
    Py_XSETREF(row_dims, rd);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ GraphBase */

/* (op, a, b[, attrs]) positional, attrs also by keyword. */
static int parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int npos,
                      PyObject **out) {
    if (nargs < npos || nargs > npos + 1) goto bad;
    for (int a = 0; a < nargs; a++) out[a] = args[a];
    if (nargs == npos) out[npos] = Py_None;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        if (PyTuple_GET_SIZE(kwnames) != 1 || nargs != npos ||
            !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "attrs") != 0)
            goto bad;
        out[npos] = args[nargs];
    }
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "%s: expected %d positional arguments and an optional attrs", fname, npos);
    return -1;
}

static PyObject *graph_add(GraphObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (parse_args("add", args, nargs, kwnames, 2, a) < 0) return NULL;
    return do_add(self, a[0], a[1], a[2]);
}

static PyObject *graph_add1(GraphObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (parse_args("add1", args, nargs, kwnames, 2, a) < 0) return NULL;
    return do_add1(self, a[0], a[1], a[2]);
}

static PyObject *graph_add2_ids(GraphObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[4];
    if (parse_args("add2_ids", args, nargs, kwnames, 3, a) < 0) return NULL;
    return do_add2_ids(self, a[0], a[1], a[2], a[3], 0, self->ver);
}

static PyObject *graph_add2(GraphObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[4];
    if (parse_args("add2", args, nargs, kwnames, 3, a) < 0) return NULL;
    return do_add2(self, a[0], a[1], a[2], a[3]);
}

/* cg.nodes: the list of (op, ids, attrs) tuples, made from the packed nodes on first read. */
static PyObject *graph_get_nodes(GraphObject *self, void *closure) {
    (void)closure;
    if (self->nodes == NULL) {
        PyErr_SetString(PyExc_AttributeError, "nodes");
        return NULL;
    }
    if (pk_unpack(self) < 0) return NULL;
    Py_INCREF(self->nodes);
    return self->nodes;
}

/* cg.nodes = l: l holds the nodes from now on (an empty list: the next nodes are packed). */
static int graph_set_nodes(GraphObject *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "ComputationGraph.nodes cannot be deleted");
        return -1;
    }
    pk_release(self, 0);
    Py_INCREF(value);
    Py_XSETREF(self->nodes, value);
    self->packed = PyList_CheckExact(value) && PyList_GET_SIZE(value) == 0;
    return 0;
}

static PyObject *clear_list(PyObject *self, PyObject *arg);

/* _reset_nodes(): no nodes (renew_cg); the next ones are packed. */
static PyObject *graph_reset_nodes(GraphObject *self, PyObject *unused) {
    (void)unused;
    pk_release(self, 0);
    if (self->nodes == NULL || !PyList_CheckExact(self->nodes)) {
        PyErr_SetString(PyExc_RuntimeError, "ComputationGraph: nodes must be a list");
        return NULL;
    }
    PyObject *r = clear_list(NULL, self->nodes);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    self->packed = PyList_GET_SIZE(self->nodes) == 0;
    Py_RETURN_NONE;
}

/* append_node(op, ids, attrs): node (op, ids, attrs) appended where the graph keeps its nodes (the
 * caller appends its dims and ng entries), without making cg.nodes a list. */
static PyObject *graph_append_node(GraphObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "append_node(op, ids, attrs): ids must be a tuple of node indices");
        return NULL;
    }
    if (fg_append_node((PyObject *)self, args[0], ((PyTupleObject *)args[1])->ob_item, PyTuple_GET_SIZE(args[1]),
                       args[2]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* n_nodes(): how many nodes the graph has (len(cg.nodes) without making the list). */
static PyObject *graph_n_nodes(GraphObject *self, PyObject *unused) {
    (void)unused;
    if (self->packed) return PyLong_FromSsize_t(self->npk);
    if (self->nodes == NULL) {
        PyErr_SetString(PyExc_AttributeError, "nodes");
        return NULL;
    }
    return PyLong_FromSsize_t(PyObject_Length(self->nodes));
}

/* op_of(j): node j's op (cg.nodes[j][0] without making the list). */
static PyObject *graph_op_of(GraphObject *self, PyObject *arg) {
    Py_ssize_t j = PyLong_AsSsize_t(arg);
    if (j == -1 && PyErr_Occurred()) return NULL;
    if (self->packed) {
        if (j < 0 || j >= self->npk) {
            PyErr_Format(PyExc_IndexError, "op_of: no node %zd in a graph of %zd nodes", j, self->npk);
            return NULL;
        }
        Py_INCREF(self->pk[j].op);
        return self->pk[j].op;
    }
    PyObject *node = PySequence_GetItem(self->nodes, j);
    if (node == NULL) return NULL;
    PyObject *op = PySequence_GetItem(node, 0);
    Py_DECREF(node);
    return op;
}

static PyGetSetDef graph_getset[] = {
    {"nodes", (getter)graph_get_nodes, (setter)graph_set_nodes, "(op, arg ids, attrs) per node", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef graph_methods[] = {
    {"_reset_nodes", (PyCFunction)graph_reset_nodes, METH_NOARGS, "_reset_nodes(): empty the graph's nodes (renew_cg)."},
    {"append_node", (PyCFunction)(void (*)(void))graph_append_node, METH_FASTCALL,
     "append_node(op, ids, attrs): append a node's record (the caller appends its dims and ng entries)."},
    {"n_nodes", (PyCFunction)graph_n_nodes, METH_NOARGS, "n_nodes(): the number of nodes (len(cg.nodes))."},
    {"op_of", (PyCFunction)graph_op_of, METH_O, "op_of(j): node j's op (cg.nodes[j][0])."},
    {"add", (PyCFunction)(void (*)(void))graph_add, METH_FASTCALL | METH_KEYWORDS,
     "add(op, args, attrs=None): append a node; operands and shape are checked before the graph changes."},
    {"add1", (PyCFunction)(void (*)(void))graph_add1, METH_FASTCALL | METH_KEYWORDS,
     "add1(op, x, attrs=None): add for one operand."},
    {"add2_ids", (PyCFunction)(void (*)(void))graph_add2_ids, METH_FASTCALL | METH_KEYWORDS,
     "add2_ids(op, i, j, attrs=None): two already-resolved node indices."},
    {"add2", (PyCFunction)(void (*)(void))graph_add2, METH_FASTCALL | METH_KEYWORDS,
     "add2(op, x, y, attrs=None): add for two expressions."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef graph_members[] = {
    {"ver", T_PYSSIZET, offsetof(GraphObject, ver), 0, "graph version (renew_cg count)"},
    {"immediate", T_BOOL, offsetof(GraphObject, immediate), 0, "immediate_compute"},
    {"dims", T_OBJECT_EX, offsetof(GraphObject, dims), 0, "Dim per node"},
    {"ng", T_OBJECT_EX, offsetof(GraphObject, ng), 0, "needs-gradient flag per node"},
    {"_shapes", T_OBJECT_EX, offsetof(GraphObject, shapes), 0, "shape-rule memo"},
    {NULL, 0, 0, 0, NULL},
};

static int graph_traverse(GraphObject *self, visitproc visit, void *arg) {
    for (Py_ssize_t j = 0; j < self->npk; j++) {
        Py_VISIT(self->pk[j].op);
        Py_VISIT(self->pk[j].attrs);
    }
    Py_VISIT(self->nodes);
    Py_VISIT(self->dims);
    Py_VISIT(self->ng);
    Py_VISIT(self->shapes);
    return 0;
}

static int graph_clear(GraphObject *self) {
    pk_free(self);
    self->packed = 0;
    Py_CLEAR(self->nodes);
    Py_CLEAR(self->dims);
    Py_CLEAR(self->ng);
    Py_CLEAR(self->shapes);
    return 0;
}

static void graph_dealloc(GraphObject *self) {
    PyObject_GC_UnTrack(self);
    graph_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject GraphType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynet_api._fastgraph.GraphBase",
    .tp_basicsize = sizeof(GraphObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The graph's hot fields and its add methods (ComputationGraph subclasses it).",
    .tp_traverse = (traverseproc)graph_traverse,
    .tp_clear = (inquiry)graph_clear,
    .tp_dealloc = (destructor)graph_dealloc,
    .tp_methods = graph_methods,
    .tp_members = graph_members,
    .tp_getset = graph_getset,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ ExpressionBase */

static void expr_dealloc(ExprObject *self) {
    Py_CLEAR(self->i);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The Python Expression class's dealloc (configure() installs it where the class is a plain
 * subclass: no __dict__, no weak references, no finaliser): what subtype_dealloc would do for it,
 * without its general path.  Expressions are made and dropped by the thousand per graph; that
 * path was a twentieth of construction's instructions. */
static void expr_class_dealloc(PyObject *self) {
    PyTypeObject *t = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((ExprObject *)self)->i);
    t->tp_free(self);
    Py_DECREF(t); /* an instance of a heap type holds a reference to it */
}

static void fast_dealloc_for(PyTypeObject *t) {
    if (t->tp_dealloc != expr_class_dealloc && t->tp_base == &ExprType && (t->tp_flags & Py_TPFLAGS_HEAPTYPE) &&
        PyType_IS_GC(t) && t->tp_free == PyObject_GC_Del && t->tp_dictoffset == 0 && t->tp_weaklistoffset == 0 &&
        t->tp_finalize == NULL && t->tp_del == NULL && t->tp_basicsize == (Py_ssize_t)sizeof(ExprObject))
        t->tp_dealloc = expr_class_dealloc;
}

static int expr_init(ExprObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"i", "v", NULL};
    PyObject *i;
    Py_ssize_t v;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On", kwlist, &i, &v)) return -1;
    if (!PyLong_Check(i)) {
        PyErr_Format(PyExc_TypeError, "Expression: the node index must be an int, got %s", _PyType_Name(Py_TYPE(i)));
        return -1;
    }
    Py_INCREF(i);
    Py_XSETREF(self->i, i);
    self->v = v;
    return 0;
}

static PyObject *expr_get_i(ExprObject *self, void *closure) {
    if (self->i == NULL) {
        PyErr_SetString(PyExc_AttributeError, "i");
        return NULL;
    }
    Py_INCREF(self->i);
    return self->i;
}

static int expr_set_i(ExprObject *self, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "Expression.i cannot be deleted");
        return -1;
    }
    PyObject *n = PyNumber_Index(value);
    if (n == NULL) return -1;
    Py_XSETREF(self->i, n);
    return 0;
}

static PyGetSetDef expr_getset[] = {
    {"i", (getter)expr_get_i, (setter)expr_set_i, "node index", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef expr_members[] = {
    {"v", T_PYSSIZET, offsetof(ExprObject, v), 0, "graph version"},
    {NULL, 0, 0, 0, NULL},
};

static int is_plain_number(PyObject *o) { return PyFloat_CheckExact(o) || PyLong_CheckExact(o); }

static PyObject *call2(PyObject *f, PyObject *a, PyObject *b) {
    if (f == NULL) Py_RETURN_NOTIMPLEMENTED;
    PyObject *args[2] = {a, b};
    return PyObject_Vectorcall(f, args, 2, NULL);
}

static PyObject *scalar_attrs(PyObject *num, int negate) {
    double x = PyFloat_AsDouble(num);
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *f = PyFloat_FromDouble(negate ? -x : x);
    if (f == NULL) return NULL;
    PyObject *t = PyTuple_Pack(1, f);
    Py_DECREF(f);
    return t;
}

static PyObject *add1_const(PyObject *op, PyObject *e, PyObject *num, int negate) {
    PyObject *attrs = scalar_attrs(num, negate);
    if (attrs == NULL) return NULL;
    PyObject *r = do_add1(the_graph, op, e, attrs);
    Py_DECREF(attrs);
    return r;
}

static PyObject *expr_add(PyObject *a, PyObject *b) {
    GraphObject *g = the_graph;
    int ea = is_expr(a), eb = is_expr(b);
    if (g != NULL && ea && eb) {
        Py_ssize_t ver = g->ver;
        PyObject *j = resolve(g, b, op_add);
        if (j == NULL) return NULL;
        PyObject *i = resolve(g, a, op_add);
        if (i == NULL) {
            Py_DECREF(j);
            return NULL;
        }
        PyObject *r = do_add2_ids(g, op_add, i, j, Py_None, 0, ver);
        Py_DECREF(i);
        Py_DECREF(j);
        return r;
    }
    if (g != NULL && ea && is_plain_number(b)) return add1_const(op_plus_c, a, b, 0);
    if (g != NULL && eb && is_plain_number(a)) return add1_const(op_plus_c, b, a, 0);
    return ea ? call2(py_add, a, b) : call2(py_radd, b, a);
}

static PyObject *expr_sub(PyObject *a, PyObject *b) {
    GraphObject *g = the_graph;
    int ea = is_expr(a), eb = is_expr(b);
    if (g != NULL && ea && eb) {
        /* a - b = a + (-b); the sum's shape is checked before -b is added. */
        Py_ssize_t ver = g->ver;
        PyObject *r = NULL, *neg = NULL;
        PyObject *i = resolve(g, a, op_add);
        if (i == NULL) return NULL;
        PyObject *j = resolve(g, b, op_add);
        if (j == NULL) {
            Py_DECREF(i);
            return NULL;
        }
        PyObject *di = dim_at(g->dims, i), *dj = di ? dim_at(g->dims, j) : NULL;
        if (dj == NULL) goto done;
        PyObject *dij[2] = {di, dj};
        int nog;
        PyObject *d = memo_shape(g, op_add, Py_None, dij, 2, 0, &nog);
        if (d == NULL) goto done;
        Py_DECREF(d);
        neg = do_add1(g, op_neg, b, Py_None);
        if (neg == NULL) goto done;
        r = do_add2_ids(g, op_add, i, ((ExprObject *)neg)->i, Py_None, 0, ver);
    done:
        Py_DECREF(i);
        Py_DECREF(j);
        Py_XDECREF(neg);
        return r;
    }
    if (g != NULL && ea && is_plain_number(b)) return add1_const(op_plus_c, a, b, 1);
    if (g != NULL && eb && is_plain_number(a)) return add1_const(op_c_minus, b, a, 0);
    return ea ? call2(py_sub, a, b) : call2(py_rsub, b, a);
}

/* DyNet: a 1x1 (or length-1) operand scales the other, else a matrix product. */
static int is_scalar_dim_read(PyObject *dim) {
    PyObject *d = PyObject_GetAttr(dim, s_d);
    if (d == NULL) return -1;
    int r = 0;
    if (PyTuple_Check(d) && (PyTuple_GET_SIZE(d) == 1 || PyTuple_GET_SIZE(d) == 2)) {
        r = 1;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(d); k++) {
            PyObject *x = PyTuple_GET_ITEM(d, k);
            int is1 = PyLong_CheckExact(x) ? (PyLong_AsLong(x) == 1) : PyObject_RichCompareBool(x, one, Py_EQ);
            if (is1 < 0) {
                Py_DECREF(d);
                return -1;
            }
            if (!is1) {
                r = 0;
                break;
            }
        }
    }
    Py_DECREF(d);
    return r;
}

/* is_scalar_dim_read remembered for the last few Dims (held, so an address is not reused while
 * remembered; Dims are interned and immutable): every W * h of a model asks about the same two. */
#define SD_SIZE 16
static PyObject *sd_dim[SD_SIZE];
static int sd_val[SD_SIZE];

static int is_scalar_dim(PyObject *dim) {
    size_t k = ((uintptr_t)dim >> 4) % SD_SIZE;
    if (sd_dim[k] == dim) return sd_val[k];
    int r = is_scalar_dim_read(dim);
    if (r < 0) return r;
    Py_INCREF(dim);
    Py_XSETREF(sd_dim[k], dim);
    sd_val[k] = r;
    return r;
}

static PyObject *expr_mul(PyObject *a, PyObject *b) {
    GraphObject *g = the_graph;
    int ea = is_expr(a), eb = is_expr(b);
    if (g != NULL && ea && eb) {
        Py_ssize_t ver = g->ver;
        PyObject *r = NULL;
        PyObject *j = resolve(g, b, op_matmul);
        if (j == NULL) return NULL;
        PyObject *i = resolve(g, a, op_matmul);
        if (i == NULL) {
            Py_DECREF(j);
            return NULL;
        }
        PyObject *di = dim_at(g->dims, i), *dj = di ? dim_at(g->dims, j) : NULL;
        if (dj == NULL) goto done;
        int s = is_scalar_dim(di);
        if (s == 0) s = is_scalar_dim(dj);
        if (s < 0) goto done;
        r = do_add2_ids(g, s ? op_cmult : op_matmul, i, j, Py_None, 0, ver);
    done:
        Py_DECREF(i);
        Py_DECREF(j);
        return r;
    }
    if (g != NULL && ea && is_plain_number(b)) return add1_const(op_smul, a, b, 0);
    if (g != NULL && eb && is_plain_number(a)) return add1_const(op_smul, b, a, 0);
    return ea ? call2(py_mul, a, b) : call2(py_rmul, b, a);
}

static PyObject *expr_neg(PyObject *a) {
    if (the_graph == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastgraph is not configured");
        return NULL;
    }
    return do_add1(the_graph, op_neg, a, Py_None);
}

static PyNumberMethods expr_as_number = {
    .nb_add = expr_add,
    .nb_subtract = expr_sub,
    .nb_multiply = expr_mul,
    .nb_negative = expr_neg,
};

static PyTypeObject ExprType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynet_api._fastgraph.ExpressionBase",
    .tp_basicsize = sizeof(ExprObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Storage (i, v) and the operators + - * of an Expression.",
    .tp_dealloc = (destructor)expr_dealloc,
    .tp_init = (initproc)expr_init,
    .tp_getset = expr_getset,
    .tp_members = expr_members,
    .tp_as_number = &expr_as_number,
};

/* ------------------------------------------------------------------ Unary */

static PyObject *unary_vectorcall(UnaryObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (self->kind == 2 && nargs == 2 && nkw == 0)
        return do_add2((GraphObject *)self->graph, self->op, args[0], args[1], self->attrs);
    if (self->kind == 3 && nargs == 1 && nkw == 0 &&
        ((PyList_CheckExact(args[0]) && PyList_GET_SIZE(args[0]) > 0) ||
         (PyTuple_CheckExact(args[0]) && PyTuple_GET_SIZE(args[0]) > 0)))
        return do_add((GraphObject *)self->graph, self->op, args[0], self->attrs);
    if (self->kind == 4 && nargs == 2 && nkw == 0 && PyLong_CheckExact(args[1])) {
        if (self->kattrs != NULL) {
            PyObject *at = PyDict_GetItemWithError(self->kattrs, args[1]);
            if (at != NULL) return do_add1((GraphObject *)self->graph, self->op, args[0], at);
            if (PyErr_Occurred()) return NULL;
        }
        PyObject *k = PyTuple_Pack(1, args[1]);
        if (k == NULL) return NULL;
        PyObject *at = PyTuple_Pack(1, k);
        Py_DECREF(k);
        if (at == NULL) return NULL;
        PyObject_GC_UnTrack(k); /* ints only */
        PyObject_GC_UnTrack(at);
        PyObject *r = do_add1((GraphObject *)self->graph, self->op, args[0], at);
        if (r != NULL && self->kattrs != NULL && PyDict_GET_SIZE(self->kattrs) < 65536 &&
            PyDict_SetItem(self->kattrs, args[1], at) < 0)
            Py_CLEAR(r);
        Py_DECREF(at);
        return r;
    }
    if (self->fallback != NULL) return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    if (nargs == 1 && nkw == 0) return do_add1((GraphObject *)self->graph, self->op, args[0], Py_None);
    if (nargs == 0 && nkw == 1 && PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) &&
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "x") == 0)
        return do_add1((GraphObject *)self->graph, self->op, args[0], Py_None);
    /* the messages of a Python ``def f(x)`` */
    PyObject *name = PyObject_GetAttr(self->op, s_name);
    if (name == NULL) return NULL;
    if (nargs > 1)
        PyErr_Format(PyExc_TypeError, "%S() takes 1 positional argument but %zd were given", name, nargs);
    else if (nkw > 0)
        PyErr_Format(PyExc_TypeError, "%S() got an unexpected keyword argument %R", name,
                     PyTuple_GET_ITEM(kwnames, nkw - 1));
    else
        PyErr_Format(PyExc_TypeError, "%S() missing 1 required positional argument: 'x'", name);
    Py_DECREF(name);
    return NULL;
}

static PyObject *unary_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"graph", "op", "kind", "fallback", "attrs", NULL};
    PyObject *graph, *op, *fallback = NULL, *attrs = Py_None;
    int kind = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|iOO:Unary", kwlist, &GraphType, &graph, &op, &kind, &fallback,
                                     &attrs))
        return NULL;
    if (kind < 1 || kind > 4 || (kind > 1 && (fallback == NULL || !PyCallable_Check(fallback)))) {
        PyErr_SetString(PyExc_ValueError, "Unary: kind is 1 to 4, and kinds 2 to 4 need a callable fallback");
        return NULL;
    }
    UnaryObject *self = (UnaryObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->kind = kind;
    if (kind == 4 && (self->kattrs = PyDict_New()) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_XINCREF(fallback);
    self->fallback = fallback;
    Py_INCREF(attrs);
    self->attrs = attrs;
    Py_INCREF(graph);
    self->graph = graph;
    Py_INCREF(op);
    self->op = op;
    self->vectorcall = (vectorcallfunc)unary_vectorcall;
    return (PyObject *)self;
}

static int unary_traverse(UnaryObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->graph);
    Py_VISIT(self->op);
    Py_VISIT(self->dict);
    Py_VISIT(self->fallback);
    Py_VISIT(self->attrs);
    Py_VISIT(self->kattrs);
    return 0;
}

static int unary_clear(UnaryObject *self) {
    Py_CLEAR(self->graph);
    Py_CLEAR(self->op);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->attrs);
    Py_CLEAR(self->kattrs);
    return 0;
}

static void unary_dealloc(UnaryObject *self) {
    PyObject_GC_UnTrack(self);
    unary_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *unary_repr(UnaryObject *self) {
    PyObject *name = PyObject_GetAttr(self->op, s_name);
    if (name == NULL) return NULL;
    PyObject *r = PyUnicode_FromFormat("<dynet_api function %S>", name);
    Py_DECREF(name);
    return r;
}

static PyObject *unary_get_op(UnaryObject *self, void *closure) {
    Py_INCREF(self->op);
    return self->op;
}

static PyGetSetDef unary_getset[] = {
    {"op", (getter)unary_get_op, NULL, "the op table entry", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject UnaryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynet_api._fastgraph.Unary",
    .tp_basicsize = sizeof(UnaryObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Unary(graph, op, kind=1, fallback=None, attrs=None): f(x) adds op(x) to graph; kind 2: f(x, y) "
              "adds op(x, y), kind 3: f([x, ...]) adds op(x, ...), both with attrs; kind 4: f(x, k) adds op(x) with attrs "
              "((k,),) for an int k; other call forms go to fallback.",
    .tp_traverse = (traverseproc)unary_traverse,
    .tp_clear = (inquiry)unary_clear,
    .tp_dealloc = (destructor)unary_dealloc,
    .tp_new = unary_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(UnaryObject, vectorcall),
    .tp_dictoffset = offsetof(UnaryObject, dict),
    .tp_repr = (reprfunc)unary_repr,
    .tp_getset = unary_getset,
};

/* ------------------------------------------------------------------ module */

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"expression", "graph", "ops", "fallbacks", NULL};
    PyObject *cls, *graph, *ops, *fb;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!O!:configure", kwlist, &PyType_Type, &cls, &GraphType, &graph,
                                     &PyDict_Type, &ops, &PyDict_Type, &fb))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &ExprType)) {
        PyErr_SetString(PyExc_TypeError, "configure: expression must subclass ExpressionBase");
        return NULL;
    }
    struct { const char *name; PyObject **slot; } want[] = {
        {"add", &op_add}, {"negate", &op_neg}, {"plus_const", &op_plus_c}, {"const_minus", &op_c_minus},
        {"scalar_mult", &op_smul}, {"matmul", &op_matmul}, {"cmult", &op_cmult},
    };
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        PyObject *o = PyDict_GetItemString(ops, want[k].name);
        if (o == NULL) return PyErr_Format(PyExc_KeyError, "configure: ops lacks %s", want[k].name);
        Py_INCREF(o);
        Py_XSETREF(*want[k].slot, o);
    }
    struct { const char *name; PyObject **slot; } fbs[] = {
        {"add", &py_add}, {"radd", &py_radd}, {"sub", &py_sub}, {"rsub", &py_rsub}, {"mul", &py_mul}, {"rmul", &py_rmul},
    };
    for (size_t k = 0; k < sizeof(fbs) / sizeof(fbs[0]); k++) {
        PyObject *o = PyDict_GetItemString(fb, fbs[k].name);
        if (o == NULL) return PyErr_Format(PyExc_KeyError, "configure: fallbacks lacks %s", fbs[k].name);
        Py_INCREF(o);
        Py_XSETREF(*fbs[k].slot, o);
    }
    Py_INCREF(cls);
    Py_XSETREF(expr_cls, (PyTypeObject *)cls);
    fast_dealloc_for(expr_cls);
    Py_INCREF(graph);
    Py_XSETREF(the_graph, (GraphObject *)graph);
    Py_RETURN_NONE;
}

/* format_values(float64 buffer) -> bytes: each value as "%+.8e " (DyNet's model-file text), then "\n".
   The model-file writer's fast path (dynet_api/io.py formats the same text in Python without it). */
static PyObject *format_values(PyObject *mod, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (view.itemsize != 8 || view.format == NULL || strcmp(view.format, "d") != 0) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_TypeError, "format_values: expected a contiguous float64 buffer");
    }
    Py_ssize_t n = view.len / 8;
    const double *v = (const double *)view.buf;
    /* "+1.23456789e+00 " is 16 characters; 3-digit exponents and nan/inf fit in 24 */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 24 + 1);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out), *start = p;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        double x = v[i];
        if (x != x) { memcpy(p, "+nan ", 5); p += 5; }
        else p += snprintf(p, 25, "%+.8e ", x);
    }
    *p++ = '\n';
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (_PyBytes_Resize(&out, p - start) < 0) return NULL;
    return out;
}

/* floats32(list) -> bytearray: a flat list of Python numbers as float32 values (inputVector's fast
   path: numpy converts a list item by item through its generic machinery, 4x the work of the rest
   of the input leaf).  Anything else (a nested list, a string) raises TypeError, and the caller
   takes numpy's path, which gives numpy's own error or conversion. */
static PyObject *floats32(PyObject *mod, PyObject *arg) {
    if (!PyList_CheckExact(arg)) return PyErr_Format(PyExc_TypeError, "floats32: expected a list");
    Py_ssize_t n = PyList_GET_SIZE(arg);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(float));
    if (out == NULL) return NULL;
    float *dst = (float *)PyByteArray_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyList_GET_ITEM(arg, i);
        double v;
        if (PyFloat_CheckExact(x)) v = PyFloat_AS_DOUBLE(x);
        else if (PyLong_CheckExact(x)) {
            v = PyLong_AsDouble(x);
            if (v == -1.0 && PyErr_Occurred()) goto fail;
        } else if (!PySequence_Check(x) && Py_TYPE(x)->tp_as_number && Py_TYPE(x)->tp_as_number->nb_float) {
            /* a number of another type: numpy's scalars (list(np.random.rand(n)) is a list of them),
             * bools, float subclasses; anything array-like takes numpy's own path */
            v = PyFloat_AsDouble(x);
            if (v == -1.0 && PyErr_Occurred()) goto fail;
        } else {
            PyErr_Format(PyExc_TypeError, "floats32: item %zd is not a number", i);
            goto fail;
        }
        dst[i] = (float)v;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* csrc/autobatch_plan.c: the C twin of dynet_api/autobatch.py's scheduling */
PyObject *fg_autobatch_plan(PyObject *self, PyObject *args);
/* csrc/autobatch_gather.c: the C twins of autobatch.py's join_sources and scatter_targets */
PyObject *fg_join_sources(PyObject *self, PyObject *args);
PyObject *fg_scatter_targets(PyObject *self, PyObject *args);
/* csrc/lstm_steps.c: the C twin of the LSTM builder's fused run */
PyObject *fg_lstm_steps(PyObject *self, PyObject *args);
extern PyTypeObject StepFirstType; /* step_first.c */

/* clear_list(l): l.clear(), with each item asked for ahead of its release.  renew_cg empties the
 * graph's node list this way: ~50k node tuples (the memo still holds most of them, so each loses
 * only a reference), every one out of cache, made the plain clear a cache miss per node.  The
 * list's item array is kept for the next graph when nothing refilled the list meanwhile (a
 * release that runs code may append to it: the array is detached while the items go). */
static PyObject *clear_list(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "clear_list: a list is needed");
        return NULL;
    }
    PyListObject *l = (PyListObject *)arg;
    Py_ssize_t n = Py_SIZE(l), cap = l->allocated;
    PyObject **items = l->ob_item;
    if (items == NULL) Py_RETURN_NONE;
    l->ob_item = NULL;
    Py_SET_SIZE(l, 0);
    l->allocated = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
#if defined(__GNUC__)
        if (i + 16 < n) __builtin_prefetch(items[i + 16]);
        if (i + 8 < n) { /* a tuple about to be freed: what it releases too (a node's ids) */
            PyObject *t = items[i + 8];
            if (t != NULL && PyTuple_CheckExact(t) && Py_REFCNT(t) == 1 && PyTuple_GET_SIZE(t) > 1)
                __builtin_prefetch(PyTuple_GET_ITEM(t, 1));
        }
#endif
        Py_XDECREF(items[i]);
    }
    if (l->ob_item == NULL && Py_SIZE(l) == 0) {
        l->ob_item = items;  /* empty, its capacity kept */
        l->allocated = cap;
    } else {
        PyMem_Free(items);
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"clear_list", (PyCFunction)clear_list, METH_O,
     "clear_list(l): l.clear(), releasing the items with each one fetched ahead; the list keeps its capacity."},
    {"autobatch_plan", (PyCFunction)fg_autobatch_plan, METH_VARARGS,
     "autobatch_plan(nodes, dims, a, b, strategy, maps, simple, shares, param_op, signature, matmuls): the order "
     "of nodes a..b-1 as lists of node ids, one per kernel call (dynet_api/autobatch.py is the specification)"},
    {"join_sources", (PyCFunction)fg_join_sources, METH_VARARGS,
     "join_sources(col, vals, home, pos, dims): where a joined operand's batch elements lie "
     "(dynet_api/autobatch.py's join_sources is the specification)"},
    {"scatter_targets", (PyCFunction)fg_scatter_targets, METH_VARARGS,
     "scatter_targets(col, bds, ng, home, pos): where a joined operand's gradient goes "
     "(dynet_api/autobatch.py's scatter_targets is the specification)"},
    {"lstm_steps", (PyCFunction)fg_lstm_steps, METH_VARARGS,
     "lstm_steps(nodes, dims, ng, xs, start, h, c, ids, memo, ops): the LSTM builder's fused steps appended "
     "while the layers' memos know their dims (dynet_api/builders/lstm.py's _fused_run is the specification)"},
    {"format_values", (PyCFunction)format_values, METH_O,
     "format_values(a): the float64 values of a as DyNet's model-file line ('%+.8e ' each, then a newline)."},
    {"floats32", (PyCFunction)floats32, METH_O,
     "floats32(list): a flat list of numbers (floats, ints, numpy scalars) as a bytearray of float32 values "
     "(else TypeError)."},
    {"new_expression", (PyCFunction)(void (*)(void))new_expression, METH_FASTCALL,
     "new_expression(i, v): the Expression of node i of graph version v (not tracked by the garbage collector)."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(expression, graph, ops, fallbacks): the classes, graph, ops and Python operator fallbacks to use."},
    {"configure_leaves", (PyCFunction)(void (*)(void))configure_leaves, METH_VARARGS | METH_KEYWORDS,
     "configure_leaves(parameters, mutable, parameter_op, lookup_op, row_dims): the classes, ops and row-Dim cache "
     "of the parameter and lookup leaves."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_fastgraph", "The graph-construction hot path of dynet_api in C (optional).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__fastgraph(void) {
    /* object's own __new__, so ``object.__new__(Expression)`` (the cheap way to make one in
     * Python, used by graph.py and the builders) stays valid with this base. */
    ExprType.tp_new = PyBaseObject_Type.tp_new;
    if (PyType_Ready(&ExprType) < 0 || PyType_Ready(&GraphType) < 0 || PyType_Ready(&UnaryType) < 0 ||
        PyType_Ready(&LookupType) < 0 || PyType_Ready(&StepFirstType) < 0)
        return NULL;
    s_node = PyUnicode_InternFromString("_node");
    s_shape = PyUnicode_InternFromString("_shape");
    s_forward_to = PyUnicode_InternFromString("forward_to");
    s_nograd = PyUnicode_InternFromString("nograd");
    s_name = PyUnicode_InternFromString("name");
    s_d = PyUnicode_InternFromString("d");
    one = PyLong_FromLong(1);
    s_st = PyUnicode_InternFromString("_st");
    s_supported = PyUnicode_InternFromString("supported");
    s_backend = PyUnicode_InternFromString("backend");
    s_dim_attr = PyUnicode_InternFromString("dim");
    s_bd = PyUnicode_InternFromString("bd");
    s_kind = PyUnicode_InternFromString("_kind");
    s_parameter = PyUnicode_InternFromString("parameter");
    s_lookup = PyUnicode_InternFromString("lookup");
    empty = PyTuple_New(0);
    if (!one || !s_node || !s_shape || !s_forward_to || !s_nograd || !s_name || !s_d || !s_st || !s_supported ||
        !s_backend || !s_dim_attr || !s_bd || !s_kind || !s_parameter || !s_lookup || !empty)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&ExprType);
    Py_INCREF(&GraphType);
    Py_INCREF(&UnaryType);
    Py_INCREF(&LookupType);
    Py_INCREF(&StepFirstType);
    if (PyModule_AddObject(m, "ExpressionBase", (PyObject *)&ExprType) < 0 ||
        PyModule_AddObject(m, "GraphBase", (PyObject *)&GraphType) < 0 ||
        PyModule_AddObject(m, "Unary", (PyObject *)&UnaryType) < 0 ||
        PyModule_AddObject(m, "Lookup", (PyObject *)&LookupType) < 0 ||
        PyModule_AddObject(m, "StepFirst", (PyObject *)&StepFirstType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *cap = PyCapsule_New((void *)(DyPackedViewFn)pk_view, DY_PACKED_VIEW_CAPSULE, NULL);
    if (cap == NULL || PyModule_AddObject(m, "_packed_view", cap) < 0) {
        Py_XDECREF(cap);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
