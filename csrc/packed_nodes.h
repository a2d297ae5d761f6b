/* The graph's nodes as dynet_api._fastgraph keeps them until Python code reads cg.nodes.
 *
 * A graph built through the C add paths holds its nodes in flat arrays (op, attrs, input ids)
 * instead of one (op, ids, attrs) tuple and one ids tuple per node: the tuples, made in memory
 * the previous graph had just released (out of cache), were a third of a Tree-LSTM graph's
 * construction.  cg.nodes makes the tuples on first read (the backend contract is unchanged:
 * nodes[j] == (op, input ids, attrs)); a backend in C may read the arrays instead, through the
 * function in the capsule below, while no Python code has asked for the list.
 *
 * Shared by fastgraph.c (which owns the arrays) and the cpu_eigen backend (contract.cpp). */
#pragma once

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    PyObject *op;     /* the OpDef (a reference held by the graph) */
    PyObject *attrs;  /* the attribute tuple (held), or NULL for None */
    Py_ssize_t i0;    /* the node's input ids are ids[i0 .. i0 + na) */
    Py_ssize_t na;
} DyPackedNode;

typedef struct {
    Py_ssize_t n;               /* nodes [0, n) */
    const DyPackedNode *nodes;  /* valid until the graph changes */
    const Py_ssize_t *ids;
} DyPackedView;

/* 1 and *out filled when graph (a dynet_api._fastgraph.GraphBase) holds its nodes packed; 0 when
 * its cg.nodes list holds them (or graph is no GraphBase).  Never sets a Python error. */
typedef int (*DyPackedViewFn)(PyObject *graph, DyPackedView *out);

/* The capsule (PyCapsule_Import) holding a DyPackedViewFn. */
#define DY_PACKED_VIEW_CAPSULE "dynet_api._fastgraph._packed_view"

#ifdef __cplusplus
}
#endif
