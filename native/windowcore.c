/* A window's numeric statistics in C: PSI bin counts, the KS statistic D and Wasserstein-1 of
 * sorted window values against a sorted reference summary (driftline/engine/kernels.py).
 *
 * Why: at a 1000-value window the numpy kernels (_numeric_stats, stacked_arrays) cost ~40 us a
 * feature, nearly all of it the fixed cost of ~40 numpy calls; the arithmetic is a few us. Here
 * each window row is one pass: each value's ranks counted on from the previous value's (see
 * search_lt), then the KS and Wasserstein terms of that value and of the stretch before it.
 * The second function, rank_update, ranks the values arriving between windows for the
 * cumulative quantile-rank histograms (kernels.rank_update; its own comment is further down).
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
#include <stdint.h>
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

/* search_lt's reach for ``w`` sorted values found in turn in ``n`` reference values (w >= 1):
 * about twice the mean step, 0 (gallop) when that is above 30 */
static Py_ssize_t reach_for(Py_ssize_t n, Py_ssize_t w) {
    Py_ssize_t reach = 8;
    while (reach <= 32 && reach < 2 * (n / w) + 4) reach <<= 1;
    if (reach < 2 * (n / w) + 4) reach = 0; /* mean steps above 30: gallop */
    return reach;
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
    st.reach = reach_for(n, w);
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

/* ---- the arrival side's quantile ranks (kernels.rank_update) ---- */

/* A sorted batch of arriving values ranked against a RankReference: each value's right rank
 * R = #{ref <= v} (through j = #{distinct <= v}: R = below[j], or j without ties), its bucket
 * (#{limits < R}), the sum of the R, and for each run of values tied to a distinct reference
 * value the van der Corput spread of its ranks over the value's jump [L/n, R/n] (by occurrence
 * index: seen[d] before, advanced after). rank_update's Python code, expression for expression:
 * the bucket counts are integers (exact however found); the sum is float(sum R) / n, plus
 * (np.sum over runs of (R - L) (reduceat(u) - c)) / n, each sum in numpy's order; the runs in a
 * jump some bound cuts are re-binned value by value against the bounds inside the jump.
 *
 * seen is written last, once every check has passed: a refused call (ValueError) has changed
 * nothing but the caller's counts buffer, and the numpy code can run instead. Safety as for
 * stats: every buffer checked before use; every index read bounded by construction (j in
 * [0, m], buckets in [0, len(limits)], the cut tables' buckets checked, and the two written
 * buffers, seen and counts, sharing no memory with any other, so nothing checked can change);
 * the results identical to the numpy code's for what RankReference.build makes of a sorted
 * reference (numpy's order: NaN last), and never out of bounds whatever the tables hold. */

/* each byte mirrored (rev8[0x01] = 0x80): filled once, when the module is imported */
static unsigned char rev8[256];

static void fill_rev8(void) {
    for (unsigned b = 0; b < 256; b++) {
        unsigned r = 0;
        for (int i = 0; i < 8; i++) r |= ((b >> i) & 1u) << (7 - i);
        rev8[b] = (unsigned char)r;
    }
}

/* the low 16 bits of x mirrored behind the binary point: _REV16[x & 65535] exactly */
static inline double rev16(unsigned long long x) {
    unsigned b = ((unsigned)rev8[x & 0xffu] << 8) | rev8[(x >> 8) & 0xffu];
    return (double)b * (1.0 / 65536.0);
}

/* detectors.quantile_rank.tie_unit of k = m - 1: the digits added from the lowest, as it adds
 * them (its further steps for a larger batch maximum add 0.0, which changes nothing) */
static inline double vdc(unsigned long long m) {
    double out = rev16(m);
    double scale = 1.0;
    while (m >= 65536) {
        m >>= 16;
        scale /= 65536.0;
        out += rev16(m) * scale;
    }
    return out;
}

/* u of occurrences m - 1, m, m + 1, ... in turn */
typedef struct {
    Source base;
    unsigned long long m;
} Units;

static void units_fill(Source *src, double *out, Py_ssize_t cnt) {
    Units *u = (Units *)src;
    for (Py_ssize_t i = 0; i < cnt; i++) out[i] = vdc(u->m++);
}

/* one run of batch values tied to distinct reference value d */
typedef struct {
    Py_ssize_t d, len;    /* distinct index, values */
    long long k0, lo, hi;  /* seen[d] before; the jump [lo, hi] */
} Run;

/* The rank-sum term of each run in turn, (R - L) (reduceat(u) - c): np.add.reduceat sums a
 * segment as its first value plus numpy's pairwise sum of the rest (checked by the tests). */
typedef struct {
    Source base;
    const Run *run;
} Terms;

static void terms_fill(Source *src, double *out, Py_ssize_t cnt) {
    Terms *t = (Terms *)src;
    for (Py_ssize_t i = 0; i < cnt; i++) {
        const Run *r = t->run++;
        unsigned long long m = (unsigned long long)r->k0 + 1;
        double su = vdc(m);
        if (r->len > 1) {
            Units rest = {{units_fill}, m + 1};
            su += tree_sum(&rest.base, r->len - 1);
        }
        out[i] = (double)(r->hi - r->lo) * (su - (double)r->len);
    }
}

/* a 1-D buffer, contiguous */
typedef struct {
    Py_buffer view;
    int held;
    const char *buf;
    Py_ssize_t len;
} Vec;

/* kind 'd': float64; 'q': native signed 8-byte integers; 'i': signed 4- or 8-byte */
static int get_vec(PyObject *obj, const char *name, char kind, int writable, Vec *x) {
    const char *what = kind == 'd' ? "float64" : kind == 'q' ? "int64" : "int32 or int64";
    if (PyObject_GetBuffer(obj, &x->view, writable ? PyBUF_RECORDS : PyBUF_RECORDS_RO) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError)
            || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a %s%s buffer", name,
                         writable ? "writable " : "", what);
        }
        return -1;
    }
    x->held = 1;
    Py_buffer *v = &x->view;
    int ok = kind == 'd' ? v->itemsize == 8 && is_f8(v->format)
           : is_int(v->format) && (v->itemsize == 8 || (kind == 'i' && v->itemsize == 4));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be %s", name, what);
        return -1;
    }
    if (v->ndim != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be 1-D, not %d-D", name, v->ndim);
        return -1;
    }
    x->len = v->shape[0];
    if (x->len > 1 && v->strides[0] != v->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s must be contiguous", name);
        return -1;
    }
    x->buf = (const char *)v->buf;
    return 0;
}

/* whether two buffers share memory (each written one must not: the tables are checked once) */
static int overlap(const Vec *a, const Vec *b) {
    if (!a->held || !b->held || a->len == 0 || b->len == 0) return 0;
    uintptr_t a0 = (uintptr_t)a->buf, b0 = (uintptr_t)b->buf;
    uintptr_t a1 = a0 + (uintptr_t)(a->len * a->view.itemsize);
    uintptr_t b1 = b0 + (uintptr_t)(b->len * b->view.itemsize);
    return a0 < b1 && b0 < a1;
}

static inline long long int_at(const Vec *x, Py_ssize_t i) {
    if (x->view.itemsize == 4) return ((const int32_t *)x->buf)[i];
    return ((const int64_t *)x->buf)[i];
}

/* j = #{distinct <= v} of each sorted value: the values are walked in CHAINS stretches at once,
 * each value found from the last one of its stretch (search_lt, then one comparison: distinct
 * values are never equal, so only d[left] can equal v). A walk's searches wait on each other
 * (each starts where the last ended: ~30 cycles a value, measured 10 us a 1000 values against
 * 5000 with the branches predicted); the core overlaps the stretches' walks. Every j is in
 * [0, m] whatever d and s hold. */
#define CHAINS 4
static void find_right(const double *d, Py_ssize_t m, const double *s, Py_ssize_t w,
                       Py_ssize_t *j) {
    const Py_ssize_t reach = reach_for(m, w);
    const Py_ssize_t chains = w >= 16 * CHAINS ? CHAINS : 1;
    const Py_ssize_t seg = w / chains;
    Py_ssize_t at[CHAINS] = {0};
    for (Py_ssize_t c = 1; c < chains; c++) at[c] = gallop_lt(d, 0, m, s[c * seg]);
    for (Py_ssize_t i = 0; i < seg; i++)
        for (Py_ssize_t c = 0; c < chains; c++) {
            Py_ssize_t k = c * seg + i;
            double v = s[k];
            Py_ssize_t left = search_lt(d, at[c], m, v, reach);
            j[k] = left + (left < m && d[left] <= v);
            at[c] = left; /* the next search's start: not waiting for d[left] */
        }
    Py_ssize_t last = at[chains - 1];
    for (Py_ssize_t k = chains * seg; k < w; k++) { /* the rest, on the last stretch */
        double v = s[k];
        last = search_lt(d, last, m, v, reach);
        j[k] = last + (last < m && d[last] <= v);
    }
}

#define RUNS 64
#define SCRATCH 512
enum { V_VALUES, V_DISTINCT, V_BELOW, V_LIMITS, V_BOUNDS, V_CUT_AT, V_CUT_FIRST, V_CUT_BUCKET,
       V_SEEN, V_COUNTS, N_VEC };

PyDoc_STRVAR(rank_update_doc,
"rank_update(values, distinct, below, n, limits, bounds, cut_at, cut_first, cut_bucket, seen,\n"
"            counts) -> rank sum\n\n"
"kernels.rank_update of sorted values (float64, ascending, no NaN) against a RankReference's\n"
"fields: the bucket counts written into counts (int64, len(limits) + 1), the rank sum returned\n"
"(the same float) and the occurrence counters seen (int64, one per distinct value) advanced;\n"
"seen and counts may share no memory with the other buffers. below: int32 or int64 jump starts (len(distinct) + 1) or None;\n"
"limits, cut_at, cut_first, cut_bucket int64; bounds float64. All 1-D and contiguous.\n"
"TypeError / ValueError for buffers it does not take, unsorted or NaN values, or tables no\n"
"RankReference.build makes (limits or cut_at descending, buckets out of range, negative\n"
"counters, jump starts not ascending): seen is then unchanged.");

static PyObject *rank_update(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    static const char *names[N_VEC] = {"values", "distinct", "below", "limits", "bounds",
                                       "cut_at", "cut_first", "cut_bucket", "seen", "counts"};
    static const char kinds[N_VEC] = {'d', 'd', 'i', 'q', 'd', 'q', 'q', 'q', 'q', 'q'};
    static const int arg_of[N_VEC] = {0, 1, 2, 4, 5, 6, 7, 8, 9, 10};
    if (nargs != 11) {
        PyErr_Format(PyExc_TypeError, "rank_update() takes 11 arguments (%zd given)", nargs);
        return NULL;
    }
    Vec vec[N_VEC];
    Run small_runs[RUNS];
    Run *runs = small_runs;
    /* run starts (w + 1), their ranks (w) and values (w) */
    Py_ssize_t small_scratch[3 * SCRATCH + 1];
    void *scratch = small_scratch;
    Py_ssize_t nruns = 0, cap = RUNS;
    double total = 0.0;
    int ok = 0;
    memset(vec, 0, sizeof vec);
    Py_ssize_t n = PyLong_AsSsize_t(args[3]);
    if (n == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "n must be an int");
        }
        return NULL;
    }
    if (n <= 0) {
        PyErr_Format(PyExc_ValueError, "n must be positive, not %zd", n);
        return NULL;
    }
    for (int i = 0; i < N_VEC; i++) {
        if (i == V_BELOW && args[2] == Py_None) continue;
        if (get_vec(args[arg_of[i]], names[i], kinds[i], i >= V_SEEN, &vec[i]) < 0) goto done;
    }
    for (int o = V_SEEN; o <= V_COUNTS; o++)
        for (int i = 0; i < N_VEC; i++)
            if (i != o && overlap(&vec[o], &vec[i])) {
                PyErr_Format(PyExc_ValueError, "%s must not share memory with %s", names[o],
                             names[i]);
                goto done;
            }
    {
        const double *s = (const double *)vec[V_VALUES].buf;
        const double *dv = (const double *)vec[V_DISTINCT].buf;
        const double *bounds = (const double *)vec[V_BOUNDS].buf;
        const int64_t *limits = (const int64_t *)vec[V_LIMITS].buf;
        const int64_t *cut_at = (const int64_t *)vec[V_CUT_AT].buf;
        const int64_t *cut_first = (const int64_t *)vec[V_CUT_FIRST].buf;
        const int64_t *cut_bucket = (const int64_t *)vec[V_CUT_BUCKET].buf;
        int64_t *seen = (int64_t *)vec[V_SEEN].buf, *counts = (int64_t *)vec[V_COUNTS].buf;
        const Vec *below = vec[V_BELOW].held ? &vec[V_BELOW] : NULL;
        Py_ssize_t w = vec[V_VALUES].len, m = vec[V_DISTINCT].len, nb = vec[V_LIMITS].len;
        Py_ssize_t ncut = vec[V_CUT_AT].len;
        if (m < 1) {
            PyErr_SetString(PyExc_ValueError, "distinct must not be empty");
            goto done;
        }
        if (below && below->len != m + 1) {
            PyErr_Format(PyExc_ValueError, "below must have len(distinct) + 1 = %zd values, "
                         "not %zd", m + 1, below->len);
            goto done;
        }
        if (vec[V_BOUNDS].len != nb || vec[V_COUNTS].len != nb + 1) {
            PyErr_Format(PyExc_ValueError, "bounds must have len(limits) = %zd values and "
                         "counts len(limits) + 1", nb);
            goto done;
        }
        if (vec[V_CUT_FIRST].len != ncut || vec[V_CUT_BUCKET].len != ncut) {
            PyErr_SetString(PyExc_ValueError, "cut_at, cut_first and cut_bucket must have one "
                            "length");
            goto done;
        }
        if (vec[V_SEEN].len != m) {
            PyErr_Format(PyExc_ValueError, "seen must have len(distinct) = %zd counters, not "
                         "%zd", m, vec[V_SEEN].len);
            goto done;
        }
        for (Py_ssize_t b = 1; b < nb; b++)
            if (limits[b] < limits[b - 1]) {
                PyErr_SetString(PyExc_ValueError, "limits must be ascending");
                goto done;
            }
        for (Py_ssize_t c = 0; c < ncut; c++)
            if ((c && cut_at[c] < cut_at[c - 1]) || cut_first[c] < 0 || cut_first[c] > nb
                || cut_bucket[c] < 0 || cut_bucket[c] > nb) {
                PyErr_SetString(PyExc_ValueError, "cut_at must be ascending and cut_first, "
                                "cut_bucket buckets of limits");
                goto done;
            }
        for (Py_ssize_t b = 0; b <= nb; b++) counts[b] = 0;
        if (w == 0) {
            ok = 1;
            goto done;
        }
        if (s[0] != s[0]) goto unsorted;
        /* pass 1: the runs of equal values (no branch on the data: their lengths are random),
         * and whether the values are sorted and NaN-free */
        if (w > SCRATCH) {
            scratch = PyMem_Malloc((size_t)w * (2 * sizeof(Py_ssize_t) + sizeof(double))
                                   + sizeof(Py_ssize_t));
            if (!scratch) { PyErr_NoMemory(); goto done; }
        }
        Py_ssize_t *starts = (Py_ssize_t *)scratch, *rights = starts + w + 1;
        double *vals = (double *)(rights + w);
        Py_ssize_t nv = 1;
        int bad = 0;
        starts[0] = 0;
        vals[0] = s[0];
        for (Py_ssize_t i = 1; i < w; i++) {
            bad |= !(s[i] >= s[i - 1]);
            starts[nv] = i;
            vals[nv] = s[i];
            nv += s[i] != s[i - 1];
        }
        if (bad) goto unsorted;
        starts[nv] = w;
        /* pass 2: each run's rank, bucket and share of the sum, and the tied runs */
        find_right(dv, m, vals, nv, rights);
        Py_ssize_t bucket = 0;
        long long prev_right = 0;
        unsigned long long rsum = 0; /* wraps as numpy's int64 sum would */
        for (Py_ssize_t q = 0; q < nv; q++) {
            double v = vals[q];
            Py_ssize_t j = rights[q], c = starts[q + 1] - starts[q];
            long long right = below ? int_at(below, j) : (long long)j;
            if (right < prev_right) {
                PyErr_SetString(PyExc_ValueError, "below must be ascending");
                goto done;
            }
            prev_right = right;
            while (bucket < nb && limits[bucket] < right) bucket++;
            counts[bucket] += c;
            rsum += (unsigned long long)right * (unsigned long long)c;
            /* tied: rank_update's distinct.take(j - 1, mode="clip") == v */
            if (dv[j > 0 ? j - 1 : 0] == v) {
                if (j == 0) {
                    PyErr_SetString(PyExc_ValueError, "distinct must be ascending");
                    goto done;
                }
                if (nruns == cap) {
                    Run *more = PyMem_Malloc((size_t)cap * 2 * sizeof(Run));
                    if (!more) { PyErr_NoMemory(); goto done; }
                    memcpy(more, runs, (size_t)nruns * sizeof(Run));
                    if (runs != small_runs) PyMem_Free(runs);
                    runs = more;
                    cap *= 2;
                }
                Run *r = &runs[nruns++];
                r->d = j - 1;
                r->len = c;
                r->hi = right;
            }
        }
        total = (double)(long long)rsum / (double)n;
        if (nruns == 0) {
            ok = 1;
            goto done;
        }
        /* pass 3: each tied run's jump and earlier occurrences, checked before anything is kept */
        for (Py_ssize_t q = 0; q < nruns; q++) {
            Run *r = &runs[q];
            r->lo = below ? int_at(below, r->d) : (long long)r->d;
            r->k0 = seen[r->d];
            if (r->k0 < 0 || r->k0 > LLONG_MAX - 1 - (long long)r->len) {
                PyErr_Format(PyExc_ValueError, "seen[%zd] = %lld is not an occurrence count",
                             r->d, r->k0);
                goto done;
            }
            if (r->lo < 0 || r->lo > r->hi) {
                PyErr_SetString(PyExc_ValueError, "below must be ascending");
                goto done;
            }
        }
        Terms terms = {{terms_fill}, runs};
        double tied = np_sum(&terms.base, nruns);
        total = total + tied / (double)n;
        /* the runs in a cut jump: their ranks against the bounds inside it (both ascending) */
        Py_ssize_t c = 0;
        for (Py_ssize_t q = 0; q < nruns && c < ncut; q++) {
            const Run *r = &runs[q];
            while (c < ncut && cut_at[c] < r->d) c++;
            if (c == ncut || cut_at[c] != r->d) continue;
            Py_ssize_t first = (Py_ssize_t)cut_first[c], last = (Py_ssize_t)cut_bucket[c];
            double lo = (double)r->lo, span = (double)(r->hi - r->lo), fn = (double)n;
            unsigned long long mm = (unsigned long long)r->k0 + 1;
            for (Py_ssize_t t = 0; t < r->len; t++) {
                double rank = (lo + vdc(mm + (unsigned long long)t) * span) / fn;
                int prev = 0;
                for (Py_ssize_t b = first; b < last; b++) {
                    int le = rank <= bounds[b];
                    counts[b] += le - prev;
                    prev = le;
                }
                counts[last] -= prev;
            }
        }
        /* everything checked: the occurrences are kept */
        for (Py_ssize_t q = 0; q < nruns; q++) seen[runs[q].d] = runs[q].k0 + runs[q].len;
        ok = 1;
        goto done;
    }
unsorted:
    PyErr_SetString(PyExc_ValueError, "values are not sorted ascending or hold a NaN");
done:
    for (int i = 0; i < N_VEC; i++)
        if (vec[i].held) PyBuffer_Release(&vec[i].view);
    if (runs != small_runs) PyMem_Free(runs);
    if (scratch != small_scratch) PyMem_Free(scratch);
    return ok ? PyFloat_FromDouble(total) : NULL;
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
    {"rank_update", (PyCFunction)(void (*)(void))rank_update, METH_FASTCALL, rank_update_doc},
    {"_pairwise_sum", (PyCFunction)pairwise_sum, METH_O, pairwise_doc},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_windowcore", "A window's numeric statistics, compiled.", -1, methods
};

PyMODINIT_FUNC PyInit__windowcore(void) {
    fill_rev8();
    return PyModule_Create(&module);
}
