/* A window's numeric statistics in C: PSI bin counts, the KS statistic D and Wasserstein-1 of
 * sorted window values against a sorted reference summary (driftline/engine/kernels.py).
 *
 * Why: at a 1000-value window the numpy kernels (_numeric_stats, stacked_arrays) cost ~40 us a
 * feature, nearly all of it the fixed cost of ~40 numpy calls; the arithmetic is a few us. Here
 * each window row is one pass: each value's ranks counted on from the previous value's (see
 * search_lt), then the KS and Wasserstein terms of that value and of the stretch before it.
 *
 * The same floats as the numpy path, bit for bit: every float expression is the numpy code's,
 * with the same operands in the same order (compiled with -ffp-contract=off: no fused
 * multiply-adds), and the stretch terms are summed in numpy's pairwise order with the reduction's
 * initial 0.0 (np.sum is ``0.0 + pairwise(all)``: blocks of at most 128 values summed in 8
 * partial sums, split at half rounded down to a multiple of 8). Integer results (ranks, counts)
 * are exact however found. Two numpy selections are written as the numpy code's docstrings show
 * they may be: the KS maxima are taken over the first value of each run of equal values only (the
 * others cannot exceed it), and the crossing point is clipped with plain comparisons (np.maximum
 * and np.minimum may differ in the sign of a zero there, which cannot reach a result: each result
 * ends in a sum that starts at +0.0).
 *
 * Safety (the windows come from clients, the buffers from any caller): every buffer is checked
 * for type (float64 / native signed integers of pointer size), dimensions, shapes and contiguous
 * rows before use; every index read is bounded by construction (ranks in [0, n], crossing ranks
 * in [1, n], whatever the reference holds, sorted or not); a window that is not sorted or holds
 * a NaN is refused (ValueError) rather than computed; sizes whose products could overflow are
 * refused. No Python code runs between taking the buffers and releasing them (the results are
 * made into Python objects after), so nothing can resize or free them meanwhile, and the module
 * has no state: calls are re-entrant. The GIL is held throughout (microseconds of work). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define HAVE_SSE2 1
#endif

/* the pairwise sum's leaf: numpy's PW_BLOCKSIZE */
#define BLOCK 128

/* ---- numpy's pairwise summation, fed by a source of values in order ---- */

typedef struct Source Source;
struct Source {
    /* write the next ``m`` (<= BLOCK) values of the sequence to ``out`` */
    void (*fill)(Source *src, double *out, Py_ssize_t m);
};

/* numpy's pairwise_sum of one leaf (n <= BLOCK): below 8 values one running sum from 0.0, else
 * 8 partial sums combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the rest in order */
static double leaf_sum(const double *a, Py_ssize_t n) {
    if (n < 8) {
        double t = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) t += a[i];
        return t;
    }
    double r[8];
    Py_ssize_t i;
    for (i = 0; i < 8; i++) r[i] = a[i];
    for (i = 8; i < n - (n % 8); i += 8)
        for (int j = 0; j < 8; j++) r[j] += a[i + j];
    double t = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) t += a[i];
    return t;
}

/* numpy's pairwise_sum of the next ``n`` values of ``src`` (taken in order, left half first) */
static double tree_sum(Source *src, Py_ssize_t n) {
    if (n <= BLOCK) {
        double buf[BLOCK];
        src->fill(src, buf, n);
        return leaf_sum(buf, n);
    }
    Py_ssize_t n2 = n / 2;
    n2 -= n2 % 8;
    double left = tree_sum(src, n2); /* two statements: C leaves the order of + operands open */
    double right = tree_sum(src, n - n2);
    return left + right;
}

/* np.sum of a float64 vector: the reduction's initial 0.0 plus the pairwise sum of all values */
static double np_sum(Source *src, Py_ssize_t n) {
    return 0.0 + tree_sum(src, n);
}

typedef struct {
    Source base;
    const double *a;
} ArraySource;

static void array_fill(Source *src, double *out, Py_ssize_t m) {
    ArraySource *s = (ArraySource *)src;
    memcpy(out, s->a, (size_t)m * sizeof(double));
    s->a += m;
}

/* ---- ranks ---- */

/* #{r < v} for r sorted, known to be >= lo: steps of 1, 2, 4, ... from lo, then a binary search
 * of the last step. Any r gives an index in [lo, n] (the loops are bounded by n, not by r). */
static inline Py_ssize_t gallop_lt(const double *r, Py_ssize_t lo, Py_ssize_t n, double v) {
    if (lo >= n || !(r[lo] < v)) return lo;
    Py_ssize_t last = lo, step = 1, hi = lo + 1; /* r[last] < v */
    while (hi < n && r[hi] < v) {
        last = hi;
        step <<= 1;
        hi = last + step;
    }
    if (hi > n) hi = n;
    lo = last + 1;
    while (lo < hi) {
        Py_ssize_t mid = lo + ((hi - lo) >> 1);
        if (r[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* #{r <= v}, known to be >= lo: as gallop_lt */
static inline Py_ssize_t gallop_le(const double *r, Py_ssize_t lo, Py_ssize_t n, double v) {
    if (lo >= n || !(r[lo] <= v)) return lo;
    Py_ssize_t last = lo, step = 1, hi = lo + 1;
    while (hi < n && r[hi] <= v) {
        last = hi;
        step <<= 1;
        hi = last + step;
    }
    if (hi > n) hi = n;
    lo = last + 1;
    while (lo < hi) {
        Py_ssize_t mid = lo + ((hi - lo) >> 1);
        if (r[mid] <= v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The window's values are found in the reference in order, each from the last one's rank: on
 * fresh windows the branches of a search (gallop or binary) go either way at random, and their
 * mispredictions were about half the kernel's time (~22 us a 1000-value row against 5000
 * reference values; 5-8 us when the same window was fed again and the predictor had learnt it).
 * So the next ``reach`` reference values (a power of two from 8 to 64, about twice the mean step
 * n / w) are compared with the value all at once and counted, without a branch on the data; a
 * step past them (rare) gallops on. Measured on 16 windows in turn, CPU us a 7 x 1000 stack
 * against 5000 (20 000) values: gallop 145-168 (222-248), counting 77-86 (131-141); one row of
 * 10 000 against 5000, 91 -> 80. With mean steps above 30 (w far below n) the gallop is kept:
 * there are few searches. */

#if HAVE_SSE2
/* minus the count of p[i] < v (i < 8), in two lanes */
static inline __m128i lt8(const double *p, __m128d v) {
    __m128i a = _mm_add_epi64(_mm_castpd_si128(_mm_cmplt_pd(_mm_loadu_pd(p), v)),
                              _mm_castpd_si128(_mm_cmplt_pd(_mm_loadu_pd(p + 2), v)));
    __m128i b = _mm_add_epi64(_mm_castpd_si128(_mm_cmplt_pd(_mm_loadu_pd(p + 4), v)),
                              _mm_castpd_si128(_mm_cmplt_pd(_mm_loadu_pd(p + 6), v)));
    return _mm_add_epi64(a, b);
}

/* #{i < 8 blocks: p[i] < v} */
static inline Py_ssize_t count_lt(const double *p, int blocks, double v) {
    __m128d vv = _mm_set1_pd(v);
    __m128i acc = lt8(p, vv);
    for (int i = 1; i < blocks; i++) acc = _mm_add_epi64(acc, lt8(p + 8 * i, vv));
    acc = _mm_add_epi64(acc, _mm_unpackhi_epi64(acc, acc));
    return -(Py_ssize_t)_mm_cvtsi128_si32(acc); /* at most 64: the low 32 bits hold it */
}
#else
static inline Py_ssize_t count_lt(const double *p, int blocks, double v) {
    Py_ssize_t c = 0;
    for (int i = 0; i < 8 * blocks; i++) c += p[i] < v;
    return c;
}
#endif

/* #{r < v} for r sorted, known to be >= lo: counted over [lo, lo + reach) when the answer lies
 * there, else galloped (reach 0: always). In [lo, n] whatever r holds: the count is at most
 * reach, and lo + reach <= n is checked before r[lo + reach - 1] or any of the counted values
 * is read. */
static inline Py_ssize_t search_lt(const double *r, Py_ssize_t lo, Py_ssize_t n, double v,
                                   Py_ssize_t reach) {
    if (reach == 0 || n - lo < reach) return gallop_lt(r, lo, n, v);
    if (r[lo + reach - 1] < v) return gallop_lt(r, lo + reach, n, v);
    switch (reach) { /* one case a row: a constant count, unrolled */
    case 8: return lo + count_lt(r + lo, 1, v);
    case 16: return lo + count_lt(r + lo, 2, v);
    case 32: return lo + count_lt(r + lo, 4, v);
    default: return lo + count_lt(r + lo, 8, v);
    }
}

/* np.searchsorted(s, v, "left") on a NaN-free sorted s: numpy orders NaN above everything, so
 * a NaN edge counts every value */
static Py_ssize_t count_below(const double *s, Py_ssize_t w, double v) {
    Py_ssize_t lo = 0, hi = w;
    int nan = v != v;
    while (lo < hi) {
        Py_ssize_t mid = lo + ((hi - lo) >> 1);
        if (s[mid] < v || (nan && s[mid] == s[mid])) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- one window row ---- */

/* A walk along one sorted window: the ranks of value ``k`` in the reference, its Wasserstein
 * term g = (s_k - mu) R - c[R] and the KS maxima so far; each fill() step moves to value k + 1
 * and gives the Wasserstein term of the stretch [s_k, s_{k+1}) (kernels._stretches). */
typedef struct {
    Source base;
    const double *s, *ref, *c;
    Py_ssize_t w, n;
    double fw, fn, mu;
    Py_ssize_t k, right, left; /* #{ref <= s_k}, #{ref < s_k} */
    double g, right_n;         /* g_k; right / n of the run s_k belongs to */
    Py_ssize_t j, jrem, dq, dr; /* j = ceil((k+1) n / w) = (t + w - 1) div w, remainder */
    Py_ssize_t reach;           /* search_lt's */
    long long t;                /* (k+1) n */
    double d_plus, d_minus;
    int bad;                    /* s not sorted (or NaN): refused after the walk */
} Walk;

static void walk_fill(Source *src, double *out, Py_ssize_t m) {
    Walk *st = (Walk *)src;
    const double *s = st->s, *ref = st->ref, *c = st->c;
    const Py_ssize_t n = st->n, w = st->w;
    const double fw = st->fw, fn = st->fn, mu = st->mu;
    Py_ssize_t k = st->k, right = st->right, left = st->left;
    Py_ssize_t j = st->j, jrem = st->jrem;
    long long t = st->t;
    double g = st->g, right_n = st->right_n, d_plus = st->d_plus, d_minus = st->d_minus;
    int bad = st->bad;
    for (Py_ssize_t i = 0; i < m; i++) {
        /* value k + 1 (k + 1 <= w - 1: fill is asked for w - 1 stretches in all) */
        double a = s[k], b = s[k + 1];
        Py_ssize_t lo = right, nleft = left, nright = right;
        if (!(b >= a)) bad = 1; /* unsorted or NaN: the ranks below stay in [0, n] anyway */
        if (b != a) {
            /* a new run of equal values: the last one's KS term (end k + 1, kernels' at_cur) */
            double after = (double)(k + 1) / fw;
            double dm = after - right_n;
            if (dm > d_minus) d_minus = dm;
            nleft = search_lt(ref, right, n, b, st->reach);
            nright = gallop_le(ref, nleft, n, b);
            right_n = (double)nright / fn;
            double left_n = nleft == nright ? right_n : (double)nleft / fn;
            double dp = left_n - after; /* before[k + 1] == after[k] */
            if (dp > d_plus) d_plus = dp;
        }
        double g1 = (b - mu) * (double)nright - c[nright];
        /* the stretch [a, b): kernels._wasserstein and _stretches, expression for expression */
        Py_ssize_t hi = nleft;
        Py_ssize_t cnt = j > lo ? j : lo;
        Py_ssize_t top = hi > lo ? hi : lo;
        if (cnt > top) cnt = top;
        double q = ref[j - 1]; /* 1 <= j <= n */
        q = a > q ? a : q; /* as maxsd and minsd compute them: no branch */
        q = b < q ? b : q;
        double gq = (q - mu) * (double)cnt - c[cnt];
        double cn = (double)t / fw;
        double mid = (g + g1) - gq * 2.0;
        double span = (a - q) + (b - q);
        out[i] = mid - span * cn;
        /* on to the next stretch */
        g = g1;
        left = nleft;
        right = nright;
        k++;
        t += n;
        j += st->dq;
        jrem += st->dr;
        if (jrem >= w) {
            jrem -= w;
            j++;
        }
    }
    st->k = k; st->right = right; st->left = left; st->j = j; st->jrem = jrem; st->t = t;
    st->g = g; st->right_n = right_n; st->d_plus = d_plus; st->d_minus = d_minus;
    st->bad = bad;
}

/* Bin counts, D and W of one row; -1 when the window is not sorted or holds a NaN. The counts
 * come first and are exact for any window (the searches stay in [0, w]). */
static int row_stats(const double *s, Py_ssize_t w, const double *ref, Py_ssize_t n,
                     const double *c, const double *edges, Py_ssize_t e, Py_ssize_t *counts,
                     double *d_out, double *w_out) {
    Py_ssize_t prev = 0;
    for (Py_ssize_t i = 0; i < e; i++) {
        Py_ssize_t at = count_below(s, w, edges[i]);
        counts[i] = at - prev;
        prev = at;
    }
    counts[e] = w - prev;
    if (w == 0 || n == 0) {
        *d_out = *w_out = Py_NAN;
        return 0;
    }
    if (s[0] != s[0]) return -1;
    Walk st;
    st.base.fill = walk_fill;
    st.s = s; st.ref = ref; st.c = c; st.w = w; st.n = n;
    st.fw = (double)w; st.fn = (double)n;
    st.mu = ref[n / 2];
    st.k = 0;
    st.left = gallop_lt(ref, 0, n, s[0]);
    st.right = gallop_le(ref, st.left, n, s[0]);
    st.right_n = (double)st.right / st.fn;
    double left_n = st.left == st.right ? st.right_n : (double)st.left / st.fn;
    st.d_plus = left_n - (double)0 / st.fw;
    st.d_minus = -Py_HUGE_VAL;
    st.g = (s[0] - st.mu) * (double)st.right - c[st.right];
    double g0 = st.g;
    /* j of stretch 0: ceil(n / w) as (n + w - 1) div w, then + n per stretch */
    st.t = (long long)n;
    st.j = (Py_ssize_t)(((long long)n + w - 1) / w);
    st.jrem = (Py_ssize_t)(((long long)n + w - 1) % w);
    st.dq = n / w;
    st.dr = n % w;
    st.bad = 0;
    st.reach = 8;
    while (st.reach <= 32 && st.reach < 2 * (n / w) + 4) st.reach <<= 1;
    if (st.reach < 2 * (n / w) + 4) st.reach = 0; /* mean steps above 30: gallop */
    double total = np_sum(&st.base, w - 1);
    if (st.bad) return -1;
    /* the last run's KS term (end w) */
    double dm = (double)w / st.fw - st.right_n;
    if (dm > st.d_minus) st.d_minus = dm;
    /* Python's max(d_plus, d_minus, 0.0): the first of the largest */
    double d = st.d_plus;
    if (st.d_minus > d) d = st.d_minus;
    if (0.0 > d) d = 0.0;
    Py_ssize_t top = st.right; /* #{ref <= s[w-1]} */
    double tail = (c[n] - c[top]) - (double)(n - top) * (s[w - 1] - st.mu);
    double wass = total + g0;
    wass = wass + tail;
    *d_out = d;
    *w_out = wass / st.fn;
    return 0;
}

/* ---- buffers ---- */

/* the buffer formats of a native float64 */
static int is_f8(const char *f) {
    if (!f) return 0;
    if (f[0] == '@' || f[0] == '=') f++;
#if PY_LITTLE_ENDIAN
    else if (f[0] == '<') f++;
#else
    else if (f[0] == '>' || f[0] == '!') f++;
#endif
    return f[0] == 'd' && f[1] == 0;
}

/* a native signed integer (numpy's intp is 'l' or 'q'); the item size is checked apart */
static int is_int(const char *f) {
    if (!f) return 0;
    if (f[0] == '@') f++;
    return (f[0] == 'l' || f[0] == 'q' || f[0] == 'n' || f[0] == 'i') && f[1] == 0;
}

/* a float64 matrix (or a vector: one row) whose rows are contiguous */
typedef struct {
    Py_buffer view;
    int held;
    const char *base;
    Py_ssize_t rows, len, stride;
} Rows;

static int get_rows(PyObject *obj, const char *name, Rows *m) {
    if (PyObject_GetBuffer(obj, &m->view, PyBUF_RECORDS_RO) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a float64 buffer", name);
        }
        return -1;
    }
    m->held = 1;
    Py_buffer *v = &m->view;
    if (v->itemsize != 8 || !is_f8(v->format)) {
        PyErr_Format(PyExc_TypeError, "%s must be float64", name);
        return -1;
    }
    if (v->ndim == 1) {
        m->rows = 1;
        m->len = v->shape[0];
        m->stride = 0;
        if (m->len > 1 && v->strides[0] != 8) {
            PyErr_Format(PyExc_ValueError, "%s must be contiguous", name);
            return -1;
        }
    } else if (v->ndim == 2) {
        m->rows = v->shape[0];
        m->len = v->shape[1];
        m->stride = v->strides[0];
        if (m->len > 1 && m->rows > 0 && v->strides[1] != 8) {
            PyErr_Format(PyExc_ValueError, "%s must have contiguous rows", name);
            return -1;
        }
    } else {
        PyErr_Format(PyExc_ValueError, "%s must be 1-D or 2-D, not %d-D", name, v->ndim);
        return -1;
    }
    m->base = (const char *)v->buf;
    return 0;
}

static const double *row_of(const Rows *m, Py_ssize_t r) {
    return (const double *)(m->base + r * m->stride); /* r < m->rows: inside the buffer */
}

static PyObject *list_of(const double *v, Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (!f) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, f);
    }
    return l;
}

#define SMALL 16

PyDoc_STRVAR(stats_doc,
"stats(windows, refs, sums, edges, rows, counts) -> (D list, Wasserstein list)\n\n"
"For each window row i (sorted ascending, no NaN) against reference row r = rows[i] (all rows\n"
"in order when rows is None): the PSI bin counts into counts[i] (#{window < edge} differences,\n"
"open outer bins), the KS statistic D and the Wasserstein-1 distance, the same floats as\n"
"kernels._numeric_stats. windows: k x w (or w); refs: K x n sorted summaries (or n); sums:\n"
"K x (n+1) centred cumulative sums (kernels.centred_sums); edges: K x e; rows: k native\n"
"integers or None; counts: writable C-contiguous intp, k x (e+1) (or e+1). Rows of the\n"
"float64 buffers may be strided but must be contiguous within. D and W are NaN for an empty\n"
"window or reference.");

static PyObject *stats(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "stats() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    Rows win = {0}, ref = {0}, sums = {0}, edges = {0};
    Py_buffer rows_view, counts_view;
    int rows_held = 0, counts_held = 0;
    Py_ssize_t small_rows[SMALL];
    double small_out[2 * SMALL];
    Py_ssize_t *ids = small_rows;
    double *out = small_out;
    PyObject *result = NULL;
    Py_ssize_t k = 0, w, nref, n, e, bad_row = -1;
    Py_ssize_t *cbase;
    int shape_ok;

    if (get_rows(args[0], "windows", &win) < 0 || get_rows(args[1], "refs", &ref) < 0
        || get_rows(args[2], "sums", &sums) < 0 || get_rows(args[3], "edges", &edges) < 0)
        goto done;
    k = win.rows;
    w = win.len;
    nref = ref.rows;
    n = ref.len;
    e = edges.len;
    if (sums.rows != nref || edges.rows != nref) {
        PyErr_Format(PyExc_ValueError, "refs, sums and edges must have one number of rows "
                     "(%zd, %zd, %zd)", nref, sums.rows, edges.rows);
        goto done;
    }
    if (sums.len != n + 1) {
        PyErr_Format(PyExc_ValueError, "sums must have n + 1 = %zd values a row, not %zd",
                     n + 1, sums.len);
        goto done;
    }
    /* (w - 1) n + w must fit a long long (the crossing ranks), and the galloping steps stay
     * below 3 n; buffers of doubles are far smaller than either bound */
    if (n > PY_SSIZE_T_MAX / 4 || (w > 1 && (long long)n > (LLONG_MAX / 2) / (long long)w)) {
        PyErr_SetString(PyExc_ValueError, "window and reference too large");
        goto done;
    }
    if (k > SMALL) {
        ids = PyMem_Malloc((size_t)k * sizeof(Py_ssize_t));
        out = PyMem_Malloc((size_t)k * 2 * sizeof(double));
        if (!ids || !out) { PyErr_NoMemory(); goto done; }
    }
    /* the row indices, checked and copied first: the counts written below might alias them */
    if (args[4] == Py_None) {
        if (k != nref) {
            PyErr_Format(PyExc_ValueError, "rows=None needs one window row per reference row "
                         "(%zd windows, %zd references)", k, nref);
            goto done;
        }
        for (Py_ssize_t i = 0; i < k; i++) ids[i] = i;
    } else {
        if (PyObject_GetBuffer(args[4], &rows_view, PyBUF_RECORDS_RO) < 0) goto done;
        rows_held = 1;
        if (rows_view.itemsize != sizeof(Py_ssize_t) || !is_int(rows_view.format)
            || rows_view.ndim != 1) {
            PyErr_SetString(PyExc_TypeError, "rows must be a 1-D intp buffer or None");
            goto done;
        }
        if (rows_view.shape[0] != k) {
            PyErr_Format(PyExc_ValueError, "rows has %zd entries for %zd window rows",
                         rows_view.shape[0], k);
            goto done;
        }
        for (Py_ssize_t i = 0; i < k; i++) {
            Py_ssize_t r;
            memcpy(&r, (const char *)rows_view.buf + i * rows_view.strides[0], sizeof r);
            if (r < 0 || r >= nref) {
                PyErr_Format(PyExc_ValueError, "rows[%zd] = %zd is not a reference row "
                             "(0 to %zd)", i, r, nref - 1);
                goto done;
            }
            ids[i] = r;
        }
    }
    if (PyObject_GetBuffer(args[5], &counts_view,
                           PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    counts_held = 1;
    if (counts_view.itemsize != sizeof(Py_ssize_t) || !is_int(counts_view.format)) {
        PyErr_SetString(PyExc_TypeError, "counts must be intp");
        goto done;
    }
    shape_ok = counts_view.ndim == 2
        ? counts_view.shape[0] == k && counts_view.shape[1] == e + 1
        : counts_view.ndim == 1 && k == 1 && counts_view.shape[0] == e + 1;
    if (!shape_ok) {
        PyErr_Format(PyExc_ValueError, "counts must be %zd x %zd (windows x edges + 1)", k, e + 1);
        goto done;
    }
    cbase = (Py_ssize_t *)counts_view.buf;
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t r = ids[i];
        if (row_stats(row_of(&win, i), w, row_of(&ref, r), n, row_of(&sums, r),
                      row_of(&edges, r), e, cbase + i * (e + 1), &out[i], &out[k + i]) < 0) {
            bad_row = i;
            break;
        }
    }
    result = Py_None; /* computed: the Python objects are made once the buffers are released */

done:
    if (counts_held) PyBuffer_Release(&counts_view);
    if (rows_held) PyBuffer_Release(&rows_view);
    if (win.held) PyBuffer_Release(&win.view);
    if (ref.held) PyBuffer_Release(&ref.view);
    if (sums.held) PyBuffer_Release(&sums.view);
    if (edges.held) PyBuffer_Release(&edges.view);
    if (result) {
        result = NULL;
        if (bad_row >= 0) {
            PyErr_Format(PyExc_ValueError, "window row %zd is not sorted ascending or holds a "
                         "NaN", bad_row);
        } else {
            PyObject *d = list_of(out, k), *wl = d ? list_of(out + k, k) : NULL;
            if (d && wl) result = PyTuple_Pack(2, d, wl);
            Py_XDECREF(d);
            Py_XDECREF(wl);
        }
    }
    if (ids != small_rows) PyMem_Free(ids);
    if (out != small_out) PyMem_Free(out);
    return result;
}

PyDoc_STRVAR(pairwise_doc,
"_pairwise_sum(values) -> float\n\n"
"np.sum of a contiguous float64 vector as this kernel sums (tests: numpy's pairwise order).");

static PyObject *pairwise_sum(PyObject *Py_UNUSED(mod), PyObject *arg) {
    Rows v = {0};
    if (get_rows(arg, "values", &v) < 0) {
        if (v.held) PyBuffer_Release(&v.view);
        return NULL;
    }
    if (v.view.ndim != 1) {
        PyBuffer_Release(&v.view);
        PyErr_SetString(PyExc_ValueError, "values must be 1-D");
        return NULL;
    }
    ArraySource src = {{array_fill}, (const double *)v.base};
    double t = np_sum(&src.base, v.len);
    PyBuffer_Release(&v.view);
    return PyFloat_FromDouble(t);
}

static PyMethodDef methods[] = {
    {"stats", (PyCFunction)(void (*)(void))stats, METH_FASTCALL, stats_doc},
    {"_pairwise_sum", (PyCFunction)pairwise_sum, METH_O, pairwise_doc},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_windowcore", "A window's numeric statistics, compiled.", -1, methods
};

PyMODINIT_FUNC PyInit__windowcore(void) {
    return PyModule_Create(&module);
}
