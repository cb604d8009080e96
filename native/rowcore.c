/* The feature columns of a batch of records in C (collectors/columns_native.py): the numeric
 * values into a caller's float64 matrix, the categorical values into the caller's object
 * arrays.
 *
 * Why: building the columns in Python (an object matrix of every value, then one astype, then
 * each categorical column sliced out, type-checked and copied) cost about 1 us of the 7 a
 * 25-feature record costs on /ingest and in the SDK's log(). Here each value is read once and
 * written straight into its column.
 *
 * Identical or nothing: every function either gives exactly the columns the Python path gives
 * (collectors/ingest.py::_matrix_columns) or returns None, and the caller then runs the Python
 * path unchanged. A numeric value is taken only where numpy's astype(float64) of an object is
 * trivially the same: a float (and a float subclass whose __float__ is float's own, or of the
 * `scalar` type, numpy.float64, whose stored value numpy reads), None (NaN, numpy's bits), an
 * exact int or a bool (float(v): PyLong_AsDouble, correctly rounded; an int too large for a
 * double declines). Anything else (a numeric string, another numpy scalar, a list) declines.
 * A dict row must be an exact dict whose keys are all exact str and hold every feature;
 * anything else declines. Categorical values are stored as they are; for each column the
 * result says whether every value is an exact str, where engine/records.py::categorical_column
 * takes the values as they are (the caller reads any other column with it).
 *
 * Safety: arguments are checked before any value is read (types; each output buffer's format,
 * shape, contiguity and writability; the object arrays hold None only; sizes checked against
 * overflow), and the rows' items are taken only once the buffers are held. The loop over the
 * rows allocates nothing and runs no Python code (str keys compare in C, slots and floats are
 * read in place, a slot of an object array is replaced by a value that its row still holds,
 * so the reference given up frees nothing), so no finaliser or __eq__ can change a row under
 * it. Every reference taken is released on every path (the
 * tests check the inputs' reference counts). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define DECLINE 0
#define TAKEN 1

/* numpy's NaN for None (NPY_NAN: positive, quiet; the bits the tests compare) */
static double the_nan(void) {
    uint64_t bits = 0x7ff8000000000000ULL;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* One numeric value as numpy's astype(float64) of an object converts it, or DECLINE. */
static inline int as_double(PyObject *v, PyTypeObject *scalar, double nan, double *out) {
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return TAKEN;
    }
    if (v == Py_None) {
        *out = nan;
        return TAKEN;
    }
    if (PyLong_CheckExact(v) || PyBool_Check(v)) {
        double d = PyLong_AsDouble(v); /* what int.__float__ does: correctly rounded */
        if (d == -1.0 && PyErr_Occurred()) { /* OverflowError: astype raises it; decline */
            PyErr_Clear();
            return DECLINE;
        }
        *out = d;
        return TAKEN;
    }
    if (PyFloat_Check(v)) {
        PyTypeObject *t = Py_TYPE(v);
        /* numpy reads a numpy.float64 (and its subclasses) as stored, and calls __float__ of
         * any other object: take a subclass only where that __float__ is float's own */
        if ((scalar != NULL && PyType_IsSubtype(t, scalar)) ||
            (t->tp_as_number != NULL &&
             t->tp_as_number->nb_float == PyFloat_Type.tp_as_number->nb_float)) {
            *out = PyFloat_AS_DOUBLE(v);
            return TAKEN;
        }
    }
    return DECLINE;
}

/* An error raised while reading: a decline for an Exception, passed on for anything else
 * (KeyboardInterrupt, SystemExit). Returns 0 to decline, -1 to raise. */
static int decline_or_raise(void) {
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* The output matrix: a writable, C-contiguous float64 buffer of shape (k, n). */
static int get_out(PyObject *out, Py_ssize_t k, Py_ssize_t n, Py_buffer *view) {
    if (PyObject_GetBuffer(out, view, PyBUF_FULL_RO) < 0) return -1;
    const char *fmt = view->format ? view->format : "B";
    int is_double = view->itemsize == 8 &&
        (!strcmp(fmt, "d") || !strcmp(fmt, "=d") || !strcmp(fmt, "@d")
#if PY_LITTLE_ENDIAN
         || !strcmp(fmt, "<d")
#else
         || !strcmp(fmt, ">d")
#endif
        );
    const char *why = NULL;
    if (view->readonly) why = "is read-only";
    else if (!is_double) why = "is not float64";
    else if (view->ndim != 2 || view->shape[0] != k || view->shape[1] != n) why = "has another shape";
    else if (!PyBuffer_IsContiguous(view, 'C')) why = "is not C-contiguous";
    else if (n && k > PY_SSIZE_T_MAX / 8 / n) why = "is too large";
    else if (view->len != k * n * 8) why = "has another size";
    if (why) {
        PyErr_Format(PyExc_ValueError, "out %s: expected a writable C-contiguous float64 "
                     "matrix of shape (%zd, %zd)", why, k, n);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* rows: a list or tuple; its size */
static int get_rows(PyObject *rows, Py_ssize_t *n) {
    if (!PyList_Check(rows) && !PyTuple_Check(rows)) {
        PyErr_Format(PyExc_TypeError, "rows must be a list or a tuple, got %.100s",
                     Py_TYPE(rows)->tp_name);
        return -1;
    }
    *n = PySequence_Fast_GET_SIZE(rows);
    return 0;
}

/* The rows' items, read once the outputs are held (acquiring a buffer may run code, which
 * might resize a list): -1 with the error set if there are no longer n of them. */
static int row_items(PyObject *rows, Py_ssize_t n, PyObject ***items) {
    if (PySequence_Fast_GET_SIZE(rows) != n) {
        PyErr_SetString(PyExc_RuntimeError, "rows changed size while the outputs were read");
        return -1;
    }
    *items = PySequence_Fast_ITEMS(rows); /* NULL for an empty list: never read then */
    return 0;
}

/* The categorical outputs: a tuple of kc writable C-contiguous 1-D object arrays of n slots,
 * each slot None (numpy.empty(n, object)); views[0:*got] acquired (released by the caller). */
static int get_objects(PyObject *seq, Py_ssize_t kc, Py_ssize_t n, Py_buffer *views,
                       Py_ssize_t *got) {
    *got = 0;
    if (!PyTuple_CheckExact(seq) || PyTuple_GET_SIZE(seq) != kc) {
        PyErr_Format(PyExc_TypeError, "cat_out must be a tuple of %zd object arrays", kc);
        return -1;
    }
    for (Py_ssize_t j = 0; j < kc; j++) {
        Py_buffer *v = &views[j];
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(seq, j), v, PyBUF_FULL_RO) < 0) return -1;
        (*got)++;
        const char *fmt = v->format ? v->format : "B";
        const char *why = NULL;
        if (v->readonly) why = "is read-only";
        else if (strcmp(fmt, "O") || v->itemsize != (Py_ssize_t)sizeof(PyObject *))
            why = "is not an object array";
        else if (v->ndim != 1 || v->shape[0] != n) why = "has another shape";
        else if (!PyBuffer_IsContiguous(v, 'C') || v->len != n * v->itemsize)
            why = "is not C-contiguous";
        else
            for (Py_ssize_t i = 0; i < n && why == NULL; i++)
                if (((PyObject **)v->buf)[i] != Py_None) why = "holds another value than None";
        if (why) {
            PyErr_Format(PyExc_ValueError, "cat_out[%zd] %s: expected a writable C-contiguous "
                         "object array of %zd Nones (numpy.empty(%zd, object))", j, why, n, n);
            return -1;
        }
    }
    return 0;
}

/* value into slot: the slot held None or a value stored by this call, which its row still
 * holds, so the reference given up frees nothing (and runs no code) */
static inline void store(PyObject **slot, PyObject *value) {
    PyObject *old = *slot;
    *slot = Py_NewRef(value);
    Py_DECREF(old);
}

static int check_names(PyObject *names, const char *what) {
    if (!PyTuple_CheckExact(names)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *s = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_CheckExact(s)) {
            PyErr_Format(PyExc_TypeError, "%s must hold str, got %.100s", what,
                         Py_TYPE(s)->tp_name);
            return -1;
        }
        if (PyObject_Hash(s) == -1) return -1; /* cached from here on: no hashing in the loop */
    }
    return 0;
}

static int check_scalar(PyObject *scalar, PyTypeObject **out) {
    if (scalar == Py_None) {
        *out = NULL;
        return 0;
    }
    if (!PyType_Check(scalar) || !PyType_IsSubtype((PyTypeObject *)scalar, &PyFloat_Type)) {
        PyErr_SetString(PyExc_TypeError, "scalar must be a subclass of float or None");
        return -1;
    }
    *out = (PyTypeObject *)scalar;
    return 0;
}

/* ---- dict rows ------------------------------------------------------------------------ */

enum { FAILED = -1, DECLINED = 0, DONE = 1 };

/* the feature f of (numeric, categorical) */
#define FEATURE(f) PyTuple_GET_ITEM((f) < kn ? numeric : categorical, (f) < kn ? (f) : (f) - kn)

/* The result: per categorical column whether all its values are exact str, when the rows were
 * taken; None when declined; NULL with the error set when one was raised. */
static PyObject *finish(int status, const char *all_str, Py_ssize_t kc) {
    if (status == FAILED) return NULL;
    if (status == DECLINED) return Py_NewRef(Py_None);
    PyObject *res = PyList_New(kc);
    for (Py_ssize_t j = 0; res != NULL && j < kc; j++)
        PyList_SET_ITEM(res, j, PyBool_FromLong(all_str[j]));
    return res;
}

/* The output buffers: out (k x n float64) and cat_out (kc object arrays), acquired together;
 * all_str: kc flags set to 1. Returns -1 with the error set (nothing left acquired). */
typedef struct {
    Py_buffer out;
    Py_buffer *cats;
    Py_ssize_t ncats;
    char *all_str;
} Outputs;

static void release_outputs(Outputs *o, int have_out) {
    for (Py_ssize_t j = 0; j < o->ncats; j++) PyBuffer_Release(&o->cats[j]);
    if (have_out) PyBuffer_Release(&o->out);
    PyMem_Free(o->cats);
    PyMem_Free(o->all_str);
}

static int get_outputs(Outputs *o, PyObject *out, PyObject *cat_out, Py_ssize_t kn,
                       Py_ssize_t kc, Py_ssize_t n) {
    o->ncats = 0;
    o->cats = PyMem_Calloc((size_t)kc + 1, sizeof(Py_buffer));
    o->all_str = PyMem_Malloc((size_t)kc + 1);
    if (o->cats == NULL || o->all_str == NULL) {
        PyErr_NoMemory();
        release_outputs(o, 0);
        return -1;
    }
    memset(o->all_str, 1, (size_t)kc + 1);
    if (get_out(out, kn, n, &o->out) < 0) {
        release_outputs(o, 0);
        return -1;
    }
    if (get_objects(cat_out, kc, n, o->cats, &o->ncats) < 0) {
        release_outputs(o, 1);
        return -1;
    }
    return 0;
}

static const char dict_doc[] =
    "dict_columns(rows, numeric, categorical, out, cat_out, scalar) -> list[bool] | None\n\n"
    "rows: a list of the records' features dicts; numeric, categorical: tuples of feature\n"
    "names (str); out: a writable C-contiguous float64 matrix (len(numeric), len(rows)),\n"
    "filled with the numeric columns; cat_out: a tuple of one numpy.empty(len(rows), object)\n"
    "per categorical feature, filled with its values as they are; scalar: a float subclass\n"
    "read as stored (numpy.float64) or None. Returns, per categorical feature, whether every\n"
    "value is an exact str; or None (the outputs then partly written) where the Python path\n"
    "must decide: a row that is no exact dict, has a key that is no exact str or lacks a\n"
    "feature, a numeric value astype(float64) might read otherwise.";

/* The rows' values into the outputs. A row with the first row's very key objects in the same
 * order is read by position from one pass over its entries; any other row by name. The two
 * agree because every key is an exact str: a lookup by name finds the one key equal to it, at
 * the position it has in the first row (and so _columns_by_position, which takes rows whose
 * keys equal the first row's, reads the same values too). */
static int dict_rows(PyObject **items, Py_ssize_t n, PyObject *numeric, PyObject *categorical,
                     PyTypeObject *scalar, Outputs *o) {
    Py_ssize_t kn = PyTuple_GET_SIZE(numeric), kc = PyTuple_GET_SIZE(categorical);
    Py_ssize_t k = kn + kc;
    if (n == 0) return DONE;
    PyObject *first = items[0];
    if (!PyDict_CheckExact(first)) return DECLINED;
    Py_ssize_t width = PyDict_GET_SIZE(first);
    if (width > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) / 2) {
        PyErr_NoMemory();
        return FAILED;
    }
    /* the first row's keys, then each row's values by position, then each feature's position */
    PyObject **keys = PyMem_Calloc(2 * (size_t)width + 1, sizeof(PyObject *));
    Py_ssize_t *where = PyMem_Calloc((size_t)k + 1, sizeof(Py_ssize_t));
    int status = DECLINED;
    if (keys == NULL || where == NULL) {
        PyErr_NoMemory();
        status = FAILED;
        goto done;
    }
    PyObject **row_vals = keys + width;
    Py_ssize_t pos = 0, j = 0;
    PyObject *key, *value;
    while (PyDict_Next(first, &pos, &key, &value)) {
        if (j == width || !PyUnicode_CheckExact(key)) goto done;
        keys[j++] = key;
    }
    if (j != width) goto done;
    for (Py_ssize_t f = 0; f < k; f++) {
        PyObject *name = FEATURE(f);
        where[f] = -1;
        for (Py_ssize_t t = 0; t < width && where[f] < 0; t++)
            if (keys[t] == name || PyUnicode_Compare(keys[t], name) == 0) where[f] = t;
        if (where[f] < 0) goto done; /* the first row lacks a feature */
    }
    const double nan = the_nan();
    double *out = (double *)o->out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = items[i];
        if (!PyDict_CheckExact(row)) goto done;
        int same = PyDict_GET_SIZE(row) == width;
        pos = 0;
        j = 0;
        while (PyDict_Next(row, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key)) goto done;
            if (same && j < width && key == keys[j]) row_vals[j++] = value;
            else same = 0;
        }
        for (Py_ssize_t f = 0; f < k; f++) {
            PyObject *v;
            if (same) {
                v = row_vals[where[f]];
            } else {
                v = PyDict_GetItemWithError(row, FEATURE(f)); /* borrowed */
                if (v == NULL) { /* a missing feature (or an error): the Python path reads it */
                    if (PyErr_Occurred() && decline_or_raise() < 0) status = FAILED;
                    goto done;
                }
            }
            if (f < kn) {
                if (as_double(v, scalar, nan, &out[f * n + i]) == DECLINE) goto done;
            } else {
                store((PyObject **)o->cats[f - kn].buf + i, v);
                o->all_str[f - kn] &= (char)PyUnicode_CheckExact(v);
            }
        }
    }
    status = DONE;
done:
    PyMem_Free(keys);
    PyMem_Free(where);
    return status;
}

static PyObject *dict_columns(PyObject *self, PyObject *args) {
    PyObject *rows, *numeric, *categorical, *out, *cat_out, *scalar_arg;
    if (!PyArg_ParseTuple(args, "OOOOOO:dict_columns", &rows, &numeric, &categorical, &out,
                          &cat_out, &scalar_arg))
        return NULL;
    Py_ssize_t n;
    PyTypeObject *scalar;
    if (get_rows(rows, &n) < 0 || check_names(numeric, "numeric") < 0 ||
        check_names(categorical, "categorical") < 0 || check_scalar(scalar_arg, &scalar) < 0)
        return NULL;
    Py_ssize_t kn = PyTuple_GET_SIZE(numeric), kc = PyTuple_GET_SIZE(categorical);
    Outputs o;
    if (get_outputs(&o, out, cat_out, kn, kc, n) < 0) return NULL;
    Py_INCREF(rows); /* nothing in the loop runs Python code; held all the same */
    PyObject **items;
    int status = row_items(rows, n, &items) < 0
                     ? FAILED : dict_rows(items, n, numeric, categorical, scalar, &o);
    Py_DECREF(rows);
    PyObject *res = finish(status, o.all_str, kc);
    release_outputs(&o, 1);
    return res;
}

/* ---- msgspec Struct rows -------------------------------------------------------------- */

/* The member descriptors' slots: each an object slot (T_OBJECT_EX, as msgspec's fields are)
 * of cls within its instances, read in place as PyMember_GetOne would read it. */
static int check_members(PyObject *members, PyTypeObject *cls, const char *what,
                         Py_ssize_t *offsets) {
    if (!PyTuple_CheckExact(members)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(members); i++) {
        PyObject *d = PyTuple_GET_ITEM(members, i);
        if (!Py_IS_TYPE(d, &PyMemberDescr_Type) ||
            !PyType_IsSubtype(cls, PyDescr_TYPE(d))) {
            PyErr_Format(PyExc_TypeError, "%s must hold member descriptors of %.100s", what,
                         cls->tp_name);
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & ~READONLY) != 0 ||
            m->offset < (Py_ssize_t)sizeof(PyObject) ||
            m->offset > cls->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)) {
            PyErr_Format(PyExc_TypeError, "%s: %.100s is no plain object slot", what, m->name);
            return -1;
        }
        offsets[i] = m->offset;
    }
    return 0;
}

static const char struct_doc[] =
    "struct_columns(rows, cls, numeric, categorical, out, cat_out, scalar)\n"
    "    -> list[bool] | None\n\n"
    "rows: a list or tuple of instances of exactly cls (a msgspec Struct type); numeric,\n"
    "categorical: tuples of cls's member descriptors (cls.__dict__[field]); out, cat_out,\n"
    "scalar and the result as for dict_columns. Declines for a row of another type, an unset\n"
    "field or a numeric value astype(float64) might read otherwise.";

static int struct_rows(PyObject **items, Py_ssize_t n, PyTypeObject *cls, Py_ssize_t kn,
                       Py_ssize_t kc, const Py_ssize_t *offsets, PyTypeObject *scalar,
                       Outputs *o) {
    const double nan = the_nan();
    double *out = (double *)o->out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (Py_TYPE(items[i]) != cls) return DECLINED;
        char *row = (char *)items[i];
        for (Py_ssize_t f = 0; f < kn; f++) {
            PyObject *v = *(PyObject **)(row + offsets[f]);
            if (v == NULL || as_double(v, scalar, nan, &out[f * n + i]) == DECLINE)
                return DECLINED;
        }
        for (Py_ssize_t f = 0; f < kc; f++) {
            PyObject *v = *(PyObject **)(row + offsets[kn + f]);
            if (v == NULL) return DECLINED;
            store((PyObject **)o->cats[f].buf + i, v);
            o->all_str[f] &= (char)PyUnicode_CheckExact(v);
        }
    }
    return DONE;
}

static PyObject *struct_columns(PyObject *self, PyObject *args) {
    PyObject *rows, *cls_arg, *numeric, *categorical, *out, *cat_out, *scalar_arg;
    if (!PyArg_ParseTuple(args, "OO!OOOOO:struct_columns", &rows, &PyType_Type, &cls_arg,
                          &numeric, &categorical, &out, &cat_out, &scalar_arg))
        return NULL;
    PyTypeObject *cls = (PyTypeObject *)cls_arg, *scalar;
    Py_ssize_t n;
    if (get_rows(rows, &n) < 0 || check_scalar(scalar_arg, &scalar) < 0) return NULL;
    if (!PyTuple_CheckExact(numeric) || !PyTuple_CheckExact(categorical)) {
        PyErr_SetString(PyExc_TypeError, "numeric and categorical must be tuples");
        return NULL;
    }
    Py_ssize_t kn = PyTuple_GET_SIZE(numeric), kc = PyTuple_GET_SIZE(categorical);
    Py_ssize_t *offsets = PyMem_Calloc((size_t)(kn + kc) + 1, sizeof(Py_ssize_t));
    if (offsets == NULL) return PyErr_NoMemory();
    Outputs o;
    if (check_members(numeric, cls, "numeric", offsets) < 0 ||
        check_members(categorical, cls, "categorical", offsets + kn) < 0 ||
        get_outputs(&o, out, cat_out, kn, kc, n) < 0) {
        PyMem_Free(offsets);
        return NULL;
    }
    Py_INCREF(rows);
    PyObject **items;
    int status = row_items(rows, n, &items) < 0
                     ? FAILED : struct_rows(items, n, cls, kn, kc, offsets, scalar, &o);
    Py_DECREF(rows);
    PyObject *res = finish(status, o.all_str, kc);
    release_outputs(&o, 1);
    PyMem_Free(offsets);
    return res;
}

static PyMethodDef methods[] = {
    {"dict_columns", dict_columns, METH_VARARGS, dict_doc},
    {"struct_columns", struct_columns, METH_VARARGS, struct_doc},
    {NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowcore", "The compiled column builder of the record paths.", -1,
    methods, NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC PyInit__rowcore(void) { return PyModule_Create(&module); }
