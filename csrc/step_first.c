/* Trainer.update's dispatch in C (dynet_api/trainers.py): the backend's trainer step first, the
 * Python update if there is none or it declines.  The Python method that does the same,
 * Trainer.update without the accelerator, is the specification; this type only saves its frame,
 * which cost a small update (one 64x64 parameter) a twentieth of its time.
 *
 * StepFirst(python_update, spec) is a method descriptor: trainer.update() calls
 * trainer._backend_step(trainer) and returns None when that returns True, else returns
 * python_update(trainer) (the update in Python, for every case a backend step declines).  Any
 * other call form (arguments, keywords) goes to spec, the Python method, which raises as Python
 * does.  Its __doc__, __name__, __qualname__ and __wrapped__ are spec's, for help() and Sphinx. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *python_update, *spec, *step_name;
    vectorcallfunc vectorcall;
    /* the last trainer class seen, its version tag and the offset of its _backend_step slot
     * (-1: read by attribute lookup) */
    PyTypeObject *seen;
    unsigned int seen_version;
    Py_ssize_t step_offset;
} StepFirstObject;

/* The offset of t's writable object slot `name` (its member descriptor, found without running
 * Python code), or -1: a class with its own attribute hooks, a property, no slot. */
static Py_ssize_t slot_offset(PyTypeObject *t, PyObject *name) {
    if (t->tp_getattro != PyObject_GenericGetAttr) return -1;
    PyObject *d = _PyType_Lookup(t, name); /* borrowed */
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    return m->type == T_OBJECT_EX ? m->offset : -1;
}

/* trainer._backend_step (new reference), from its slot while the class stays as learned (its
 * version tag: CPython renews it when an attribute of the class or a base changes); else, and
 * for an empty slot (which raises), by attribute lookup. */
static PyObject *backend_step_of(StepFirstObject *self, PyObject *tr) {
    PyTypeObject *t = Py_TYPE(tr);
    if (t != self->seen || t->tp_version_tag != self->seen_version ||
        !PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG)) {
        self->step_offset = slot_offset(t, self->step_name);
        int valid = t->tp_version_tag != 0 && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG);
        self->seen = valid ? t : NULL;
        self->seen_version = t->tp_version_tag;
    }
    if (self->step_offset >= 0) {
        PyObject *v = *(PyObject **)((char *)tr + self->step_offset);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(tr, self->step_name);
}

/* f(x): a builtin taking one argument (a backend's step, METH_O) called through its C function,
 * as the interpreter would after its checks (a tenth of a small update's dispatch); any other
 * callable as Python calls it. */
static PyObject *call_one(PyObject *f, PyObject *x) {
    const int kinds = METH_VARARGS | METH_KEYWORDS | METH_NOARGS | METH_O | METH_FASTCALL;
    if (PyCFunction_CheckExact(f) && (PyCFunction_GET_FLAGS(f) & kinds) == METH_O) {
        PyObject *r = PyCFunction_GET_FUNCTION(f)(PyCFunction_GET_SELF(f), x);
        if (r == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "a trainer's _backend_step returned NULL without an exception");
        return r;
    }
    return PyObject_CallOneArg(f, x);
}

static PyObject *step_first_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    StepFirstObject *self = (StepFirstObject *)self_;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n != 1 || kwnames) return PyObject_Vectorcall(self->spec, args, nargsf, kwnames);
    PyObject *tr = args[0];
    PyObject *step = backend_step_of(self, tr);
    if (!step) return NULL;
    if (step != Py_None) {
        PyObject *r = call_one(step, tr);
        Py_DECREF(step);
        if (!r) return NULL;
        int done = r == Py_True ? 1 : r == Py_False ? 0 : PyObject_IsTrue(r);
        Py_DECREF(r);
        if (done < 0) return NULL;
        if (done) Py_RETURN_NONE;
    } else {
        Py_DECREF(step);
    }
    return PyObject_CallOneArg(self->python_update, tr);
}

static PyObject *step_first_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"python_update", "spec", NULL};
    PyObject *python_update, *spec;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:StepFirst", kwlist, &python_update, &spec)) return NULL;
    if (!PyCallable_Check(python_update) || !PyCallable_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "StepFirst(python_update, spec): both must be callable");
        return NULL;
    }
    StepFirstObject *self = (StepFirstObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->step_name = PyUnicode_InternFromString("_backend_step");
    if (!self->step_name) {
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(python_update);
    Py_INCREF(spec);
    self->python_update = python_update;
    self->spec = spec;
    self->vectorcall = step_first_call;
    self->seen = NULL;
    self->step_offset = -1;
    return (PyObject *)self;
}

static int step_first_traverse(StepFirstObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->python_update);
    Py_VISIT(self->spec);
    return 0;
}

static int step_first_clear(StepFirstObject *self) {
    Py_CLEAR(self->python_update);
    Py_CLEAR(self->spec);
    return 0;
}

static void step_first_dealloc(StepFirstObject *self) {
    PyObject_GC_UnTrack(self);
    step_first_clear(self);
    Py_CLEAR(self->step_name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* trainer.update: the descriptor bound to the trainer (the interpreter's method calls skip this,
 * as they do for functions: Py_TPFLAGS_METHOD_DESCRIPTOR). */
static PyObject *step_first_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *spec_attr(StepFirstObject *self, const char *name) { return PyObject_GetAttrString(self->spec, name); }
static PyObject *step_first_doc(StepFirstObject *self, void *c) { return spec_attr(self, "__doc__"); }
static PyObject *step_first_name(StepFirstObject *self, void *c) { return spec_attr(self, "__name__"); }
static PyObject *step_first_qualname(StepFirstObject *self, void *c) { return spec_attr(self, "__qualname__"); }
static PyObject *step_first_module(StepFirstObject *self, void *c) { return spec_attr(self, "__module__"); }

static PyGetSetDef step_first_getset[] = {
    {"__doc__", (getter)step_first_doc, NULL, NULL, NULL},
    {"__name__", (getter)step_first_name, NULL, NULL, NULL},
    {"__qualname__", (getter)step_first_qualname, NULL, NULL, NULL},
    {"__module__", (getter)step_first_module, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef step_first_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(StepFirstObject, spec), READONLY, "the Python method this dispatch follows"},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(StepFirstObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject StepFirstType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynet_api._fastgraph.StepFirst",
    .tp_basicsize = sizeof(StepFirstObject),
    .tp_dealloc = (destructor)step_first_dealloc,
    .tp_vectorcall_offset = offsetof(StepFirstObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "StepFirst(python_update, spec): Trainer.update's dispatch (the backend's trainer step, else the "
              "update in Python).",
    .tp_traverse = (traverseproc)step_first_traverse,
    .tp_clear = (inquiry)step_first_clear,
    .tp_members = step_first_members,
    .tp_getset = step_first_getset,
    .tp_descr_get = step_first_get,
    .tp_new = step_first_new,
};
