/* An int object's value read in place where CPython keeps it in one digit (below 2**30 in
 * magnitude: every node id and most attributes), without a call into the interpreter: the
 * executor reads tens of thousands of node ids per graph, and PyLong_AsLong's calls were ~2% of
 * a Tree-LSTM update.  C and C++ (fastgraph.c, the cpu_eigen contract). */
#ifndef DY_SMALL_INT_H
#define DY_SMALL_INT_H

#include <Python.h>
#if PY_VERSION_HEX < 0x030B0000
#include <longintrepr.h>
#endif

/* 1 with *out set when o is an exact int of at most one digit; 0 otherwise (nothing set, no error:
 * the caller then reads it the general way). */
static inline int dy_small_int(PyObject *o, long *out) {
    if (!PyLong_CheckExact(o)) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)o)) return 0;
    *out = (long)PyUnstable_Long_CompactValue((PyLongObject *)o);
    return 1;
#else
    switch (Py_SIZE(o)) {
        case 0: *out = 0; return 1;
        case 1: *out = (long)((PyLongObject *)o)->ob_digit[0]; return 1;
        case -1: *out = -(long)((PyLongObject *)o)->ob_digit[0]; return 1;
        default: return 0;
    }
#endif
}

/* PyLong_AsLong(o), PyLong_AsSsize_t(o) and PyLong_AsLongLong(o), the one-digit case read in place. */
static inline long dy_as_long(PyObject *o) {
    long v;
    return dy_small_int(o, &v) ? v : PyLong_AsLong(o);
}
static inline Py_ssize_t dy_as_ssize(PyObject *o) {
    long v;
    return dy_small_int(o, &v) ? (Py_ssize_t)v : PyLong_AsSsize_t(o);
}
static inline long long dy_as_long_long(PyObject *o) {
    long v;
    return dy_small_int(o, &v) ? (long long)v : PyLong_AsLongLong(o);
}

#endif
