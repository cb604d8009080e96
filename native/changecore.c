/* The ChangeDetector's work in C: the same recursion as detectors/change.py, value by value.
 *
 * Why: the numpy implementation computes a span of values on a (block, hypothesis) grid and runs
 * only the boundaries in Python; at <= 24 hypotheses the numpy calls cost far more than the
 * arithmetic (2.2-3.7 us a value). Here each value is a loop over the live hypotheses.
 *
 * Same floating-point operations in the same order as the numpy path (compiled with
 * -ffp-contract=off: no fused multiply-adds), so the state agrees with it to the last bit save
 * for exp/log: this file uses the C library's, numpy may use its own SIMD ones (an ulp apart).
 * The numpy path's span structure (at most 256 values, cut at a detection and at the switch
 * from the 0/1 model) is followed too: at a span's end the hypotheses with a non-finite weight
 * are dropped, as the numpy path's commit does. Plain CPython C API and the buffer protocol.
 *
 * Safety (the values come from clients; a state may come from a tampered pickle): every method
 * refuses re-entry while another runs (Python code it calls, such as the tie helper, a
 * __float__ or a finaliser, gets a RuntimeError instead of resizing arrays in use); a failed
 * __init__ leaves the core as it was; load() checks every index and size before use; an
 * exception mid-update leaves the state of the values fed before it. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define SPAN 256
#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define NOINLINE __declspec(noinline)
#else
#define NOINLINE
#endif
#define CENTRE_OF 5

typedef struct {
    PyObject_HEAD
    /* settings */
    int k, max_runs, min_gap;
    double threshold, log_1mq, log_prune, log_odds, kk, kb, clip, log_2pi, sqrt_pi_2;
    double born_bin, born_l0, born_l1, prior_l0, prior_l1;
    Py_ssize_t keep;
    PyObject *tie; /* tie(j_end: list[float], room: int) -> list[int]: numpy's choice */
    /* counters and recurrences */
    long long index, n, n_invalid, segment_start;
    int binary, last_detected;
    double last, ads, sn, ss, sq;
    double recent[CENTRE_OF];
    int nrecent;
    /* hypotheses, in birth order */
    Py_ssize_t nh, cap;
    long long *start;
    double *J0, *C, *L0, *S0, *Q0, *T0, *mu0, *t1;
    char *slope;
    double *jend, *tmp; /* scratch, cap each */
    char *mask;
    int bl;
    double bs, bq, bt;
    /* recent winsorised values and their indices (the change point's refinement) */
    double *bx, *rs; /* rs: the refinement's scratch, 2 (bufcap + 1) */
    long long *bi;
    Py_ssize_t nbuf, bufcap;
    /* change points */
    long long *cps;
    Py_ssize_t ncp, cpcap;
    int span; /* values in the current span */
    double scale; /* the noise scale after the last value ... */
    int scale_ok; /* ... while the sums it came from are unchanged */
    double lognf[64]; /* log(i): the decision's screen */
    int busy; /* a method is running: Python code it calls (the tie helper, a __float__, a
               * finaliser the garbage collector runs) must not call back into this core */
} Core;

/* limits on the settings and on a loaded state, so that no size or index arithmetic can
 * overflow (far above anything a detector needs: 24 runs of 16 values by default) */
#define MAX_SETTING (1 << 24)
#define MAX_KEEP ((Py_ssize_t)1 << 40)
#define MAX_INDEX ((long long)1 << 62)

static double npmax(double a, double b) { /* np.maximum: NaN propagates, a on ties */
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    return a >= b ? a : b;
}

static double npmin(double a, double b) {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    return a <= b ? a : b;
}

/* numpy's pairwise sum of a contiguous float64 array (8 partial sums up to 128 values) */
static double pairwise(const double *a, Py_ssize_t n) {
    if (n < 8) {
        double t = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) t += a[i];
        return t;
    }
    if (n <= 128) {
        double r[8];
        Py_ssize_t i;
        for (i = 0; i < 8; i++) r[i] = a[i];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double t = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) t += a[i];
        return t;
    }
    Py_ssize_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

static int grow_runs(Core *s, Py_ssize_t need) {
    if (need <= s->cap) return 0;
    if (need > PY_SSIZE_T_MAX / 32) { PyErr_NoMemory(); return -1; }
    Py_ssize_t cap = s->cap ? s->cap : 8;
    while (cap < need) cap *= 2;
    double **fs[] = {&s->J0, &s->C, &s->L0, &s->S0, &s->Q0, &s->T0, &s->mu0, &s->t1,
                     &s->jend, &s->tmp};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        double *p = PyMem_Realloc(*fs[i], cap * sizeof(double));
        if (!p) { PyErr_NoMemory(); return -1; }
        *fs[i] = p;
    }
    long long *st = PyMem_Realloc(s->start, cap * sizeof(long long));
    if (!st) { PyErr_NoMemory(); return -1; }
    s->start = st;
    char *sl = PyMem_Realloc(s->slope, cap);
    if (!sl) { PyErr_NoMemory(); return -1; }
    s->slope = sl;
    char *mk = PyMem_Realloc(s->mask, cap);
    if (!mk) { PyErr_NoMemory(); return -1; }
    s->mask = mk;
    s->cap = cap;
    return 0;
}

static void clear_runs(Core *s) {
    s->nh = 0;
    s->scale_ok = 0;
    s->bl = 0;
    s->bs = s->bq = s->bt = 0.0;
    s->sn = s->ss = s->sq = 0.0;
}

static void reset_core(Core *s) {
    s->index = s->n = s->n_invalid = s->segment_start = 0;
    s->binary = 1;
    s->last_detected = 0;
    s->last = Py_NAN;
    s->ads = 0.0;
    s->nrecent = 0;
    s->nbuf = 0;
    s->ncp = 0;
    s->span = 0;
    clear_runs(s);
}

/* add one hypothesis at the end (birth order) */
static int push(Core *s, long long start, double j0, double mu0, char slope, double t1) {
    if (grow_runs(s, s->nh + 1) < 0) return -1;
    Py_ssize_t i = s->nh++;
    s->start[i] = start;
    s->J0[i] = j0;
    s->C[i] = 0.0;
    s->L0[i] = s->S0[i] = s->Q0[i] = s->T0[i] = 0.0;
    s->mu0[i] = mu0;
    s->slope[i] = slope;
    s->t1[i] = t1;
    return 0;
}

static int begin(Core *s, long long first, double mu0, double t1) {
    s->nh = 0;
    if (s->binary) {
        if (push(s, first, 0.0, mu0, 0, t1) < 0) return -1;
    } else {
        if (push(s, first, s->prior_l0, mu0, 0, t1) < 0) return -1;
        if (push(s, first, s->prior_l1, mu0, 1, t1) < 0) return -1;
    }
    s->bl = 0;
    s->bs = s->bq = s->bt = 0.0;
    return 0;
}

/* the numpy path's commit: hypotheses whose weight is not finite are dropped */
static void end_span(Core *s) {
    Py_ssize_t w = 0;
    for (Py_ssize_t i = 0; i < s->nh; i++) {
        if (!isfinite(s->J0[i])) continue;
        if (w != i) {
            s->start[w] = s->start[i]; s->J0[w] = s->J0[i]; s->C[w] = s->C[i];
            s->L0[w] = s->L0[i]; s->S0[w] = s->S0[i]; s->Q0[w] = s->Q0[i];
            s->T0[w] = s->T0[i]; s->mu0[w] = s->mu0[i]; s->slope[w] = s->slope[i];
            s->t1[w] = s->t1[i];
        }
        w++;
    }
    s->nh = w;
    s->span = 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ``sorted(v)`` as Python gives it (with NaN, Python's own sort decides: call it) */
static int ranked_of(const double *v, Py_ssize_t n, double *out) {
    int has_nan = 0;
    for (Py_ssize_t i = 0; i < n; i++) has_nan |= isnan(v[i]);
    if (!has_nan) {
        memcpy(out, v, n * sizeof(double));
        qsort(out, n, sizeof(double), cmp_double);
        return 0;
    }
    PyObject *lst = PyList_New(n);
    if (!lst) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (!f) { Py_DECREF(lst); return -1; }
        PyList_SET_ITEM(lst, i, f);
    }
    if (PyList_Sort(lst) < 0) { Py_DECREF(lst); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) out[i] = PyFloat_AS_DOUBLE(PyList_GET_ITEM(lst, i));
    Py_DECREF(lst);
    return 0;
}

/* survivors of a tie across the cut: numpy's argpartition, through the Python helper */
static int tie_mask(Core *s, const double *v, Py_ssize_t n, int room, char *mask) {
    PyObject *lst = PyList_New(n);
    if (!lst) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (!f) { Py_DECREF(lst); return -1; }
        PyList_SET_ITEM(lst, i, f);
    }
    PyObject *got = PyObject_CallFunction(s->tie, "Oi", lst, room);
    Py_DECREF(lst);
    if (!got) return -1;
    PyObject *seq = PySequence_Tuple(got); /* a copy: no code it runs can resize it */
    Py_DECREF(got);
    if (!seq) return -1;
    memset(mask, 0, n);
    Py_ssize_t m = PyTuple_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < m; i++) {
        Py_ssize_t j = PyNumber_AsSsize_t(PyTuple_GET_ITEM(seq, i), PyExc_IndexError);
        if (j == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (j < 0 || j >= n) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_IndexError, "tie helper index out of range");
            return -1;
        }
        mask[j] = 1;
    }
    Py_DECREF(seq);
    return 0;
}

/* ChangeDetector._prune: which of the ``n`` log weights ``j`` survive (``mask``, 1 keeps) with
 * ``born`` newborns to come, and their log normaliser (``lse``) */
static int prune_mask(Core *s, const double *j, Py_ssize_t n, int born, char *mask,
                      double *lse_out) {
    double top = j[0];
    for (Py_ssize_t i = 1; i < n; i++) if (j[i] > top) top = j[i];
    for (Py_ssize_t i = 0; i < n; i++) s->tmp[i] = exp(j[i] - top);
    *lse_out = top + log(pairwise(s->tmp, n));
    double floor_ = top + s->log_prune, cut = floor_;
    Py_ssize_t room = s->max_runs - born;
    int all = 0;
    if (n > room) {
        double *ranked = s->tmp;
        if (ranked_of(j, n, ranked) < 0) return -1;
        if (ranked[n - room - 1] >= floor_) {
            cut = ranked[n - room];
            if (ranked[n - room - 1] == cut) return tie_mask(s, j, n, (int)room, mask);
        } else if (ranked[0] >= floor_) {
            all = 1;
        }
    } else {
        double mn = j[0];
        for (Py_ssize_t i = 1; i < n; i++) if (j[i] < mn) mn = j[i];
        if (mn >= floor_) all = 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) mask[i] = all ? 1 : (cut <= j[i]);
    return 0;
}

/* a block boundary: normalise, prune, carry the block's sums into the survivors, then the
 * newborns (their first value is the one about to be fed, index ``gi``; their prior mean the
 * value before it, ``s->last``). It fails (an exception from the tie helper, no memory) only
 * before it has changed anything. */
static int boundary(Core *s, long long gi, double tpos) {
    Py_ssize_t n = s->nh;
    if (grow_runs(s, n + 2) < 0) return -1;
    double *j = s->jend, lse, d = s->log_1mq;
    char *mask = s->mask;
    for (Py_ssize_t i = 0; i < n; i++) j[i] = s->J0[i] + s->C[i];
    if (prune_mask(s, j, n, s->binary ? 1 : 2, mask, &lse) < 0) return -1;
    double kf = (double)s->k;
    Py_ssize_t w = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        s->start[w] = s->start[i];
        s->J0[w] = (j[i] - lse) + d;
        s->L0[w] = s->L0[i] + kf;
        s->S0[w] = s->S0[i] + s->bs;
        s->Q0[w] = s->Q0[i] + s->bq;
        s->T0[w] = s->T0[i] + s->bt;
        s->mu0[w] = s->mu0[i];
        s->slope[w] = s->slope[i];
        s->t1[w] = s->t1[i];
        w++;
    }
    s->nh = w;
    if (s->binary) {
        if (push(s, gi, s->born_bin, s->last, 0, tpos) < 0) return -1;
    } else {
        if (push(s, gi, s->born_l0, s->last, 0, tpos) < 0) return -1;
        if (push(s, gi, s->born_l1, s->last, 1, tpos) < 0) return -1;
    }
    s->bl = 0;
    return 0;
}

/* the noise scale after the values summed so far (ChangeDetector._scales) */
static double scale_of(double sqrt_pi_2, double n, double a, double sn, double ss, double sq, double last) {
    double noise;
    if (n > 1 && a > 0)
        noise = a / (n - 1) * sqrt_pi_2;
    else
        noise = (isfinite(last) && last != 0) ? fabs(last) * 0.1 : 1.0;
    double var = 0.0;
    if (sn > 1) {
        double mean = ss / sn;
        var = npmax(sq / sn - mean * mean, 0.0) * sn / (sn - 1);
    }
    return npmax(noise, sqrt(var));
}

/* the recent-values buffer (and the refinement's scratch) at capacity ``cap`` >= nbuf */
static int buf_cap(Core *s, Py_ssize_t cap) {
    double *bx = PyMem_Realloc(s->bx, cap * sizeof(double));
    if (!bx) { PyErr_NoMemory(); return -1; }
    s->bx = bx;
    long long *bi = PyMem_Realloc(s->bi, cap * sizeof(long long));
    if (!bi) { PyErr_NoMemory(); return -1; }
    s->bi = bi;
    double *rs = PyMem_Realloc(s->rs, 2 * (cap + 1) * sizeof(double));
    if (!rs) { PyErr_NoMemory(); return -1; }
    s->rs = rs;
    s->bufcap = cap;
    return 0;
}

/* room for everything feeding one value may need, taken before anything changes (so that no
 * allocation can fail with the value half fed); the boundary reserves its own */
static int reserve_slow(Core *s) {
    if (s->nbuf == s->bufcap && !(s->bufcap >= 2 * s->keep && s->keep > 0)) {
        Py_ssize_t cap = s->bufcap ? 2 * s->bufcap : 64;
        if (cap > 2 * s->keep) cap = 2 * s->keep;
        if (cap < 2) cap = 2;
        if (buf_cap(s, cap) < 0) return -1;
    }
    if (s->ncp == s->cpcap) {
        Py_ssize_t cap = s->cpcap ? 2 * s->cpcap : 16;
        long long *p = PyMem_Realloc(s->cps, cap * sizeof(long long));
        if (!p) { PyErr_NoMemory(); return -1; }
        s->cps = p;
        s->cpcap = cap;
    }
    return grow_runs(s, 2);
}

static inline int reserve(Core *s) {
    if (s->nbuf < s->bufcap && s->ncp < s->cpcap && s->cap >= 2) return 0; /* the usual case */
    return reserve_slow(s);
}

static void remember(Core *s, double x, long long gi) {
    if (s->nbuf == s->bufcap) { /* full at 2 keep (reserve() saw to it): keep the last keep */
        memmove(s->bx, s->bx + s->nbuf - s->keep, s->keep * sizeof(double));
        memmove(s->bi, s->bi + s->nbuf - s->keep, s->keep * sizeof(long long));
        s->nbuf = s->keep;
    }
    s->bx[s->nbuf] = x;
    s->bi[s->nbuf] = gi;
    s->nbuf++;
}

static Py_ssize_t buf_first(const Core *s) {
    return s->nbuf > s->keep ? s->nbuf - s->keep : 0;
}

/* ChangeDetector._refine: the split of the recent values into two regimes that fits best,
 * within one block either side of ``start`` */
static void refine(Core *s, long long old, long long start, long long now, long long *out) {
    long long k = s->k;
    *out = start;
    if (k == 1) return;
    long long lo = start - (now - start + 1) - k;
    if (old > lo) lo = old;
    Py_ssize_t b0 = buf_first(s), p = b0;
    while (p < s->nbuf && s->bi[p] < lo) p++;
    Py_ssize_t n = s->nbuf - p;
    if (n < 2) return;
    const double *x = s->bx + p;
    const long long *xi = s->bi + p;
    double *c1 = s->rs, *c2 = c1 + n + 1; /* n <= nbuf <= bufcap */
    c1[0] = c2[0] = 0.0;
    c1[1] = x[0];
    c2[1] = x[0] * x[0];
    for (Py_ssize_t i = 1; i < n; i++) {
        c1[i + 1] = c1[i] + x[i];
        c2[i + 1] = c2[i] + x[i] * x[i];
    }
    long long gt = start - k > old ? start - k : old;
    int found = 0, best_nan = 0;
    double best_cost = 0.0;
    long long best_dist = 0, best_at = start;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (!(xi[j] > gt && xi[j] < start + k && xi[j] <= now)) continue;
        double ln = (double)j, rn = (double)(n - j);
        double ls = c1[j], rs = c1[n] - c1[j];
        double cost;
        if (s->binary) {
            double cnt[2] = {ln, rn}, ones[2] = {ls, rs}, nll[2];
            for (int q = 0; q < 2; q++) {
                double c = cnt[q], o = ones[q];
                double pr = c > 0 ? o / (c > 1.0 ? c : 1.0) : 0.5;
                double a = o > 0 ? o * log(pr > 0 ? pr : 1.0) : 0.0;
                double b = c - o > 0 ? (c - o) * log(pr < 1 ? 1 - pr : 1.0) : 0.0;
                nll[q] = -(a + b);
            }
            cost = nll[0] + nll[1];
        } else {
            double lq = c2[j], rq = c2[n] - c2[j];
            cost = (lq - ls * ls / npmax(ln, 1.0)) + (rq - rs * rs / npmax(rn, 1.0));
        }
        long long dist = xi[j] > start ? xi[j] - start : start - xi[j];
        int nan = isnan(cost), better;
        if (!found) better = 1;
        else if (nan != best_nan) better = !nan;  /* NaN sorts last */
        else if (!nan && cost != best_cost) better = cost < best_cost;
        else better = dist < best_dist;
        if (better) {
            found = 1; best_nan = nan; best_cost = cost; best_dist = dist; best_at = xi[j];
        }
    }
    *out = best_at;
}

/* median of the last 5 raw values (the numpy path's min/max network) */
static double centre_of(const Core *s) {
    if (s->nrecent < CENTRE_OF) return Py_NAN;
    const double *h = s->recent;
    double a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    double f = npmax(npmin(a, b), npmin(c, d)), g = npmin(npmax(a, b), npmax(c, d));
    return npmax(npmin(e, f), npmin(npmax(e, f), g));
}

/* the log predictive of ``x`` under each hypothesis (noise variance ``sig2``), summed within
 * the block. Kept out of line: compiled apart from the rest of feed, the hot loop keeps its
 * registers (inlined, gcc -O3 spilled more: 2.4% more instructions a value) */
NOINLINE static void predictives(Core *s, double x, double sig2) {
    int r = s->bl;
    double rf = (double)r, excl = r ? s->bs : 0.0, texcl = r ? s->bt : 0.0;
    double kk = s->kk, kb = s->kb;
    Py_ssize_t nh = s->nh;
    for (Py_ssize_t i = 0; i < nh; i++) {
        double length = s->L0[i] + rf, sx = s->S0[i] + excl, lp;
        if (s->binary) {
            lp = log(x == 1.0 ? sx + 1.0 : length - sx + 1.0) - log(length + 2.0);
        } else {
            double mean, spread, m0 = s->mu0[i];
            double a = kk + length;
            if (s->slope[i]) {
                double stx = (s->T0[i] + texcl) - s->t1[i] * sx;
                double r1 = m0 * kk + sx;
                double a12 = length * (length - 1.0) / 2.0;
                double a22 = kb + (length - 1.0) * length * (2.0 * length - 1.0) / 6.0;
                double det = a * a22 - a12 * a12;
                mean = (a22 * r1 - a12 * stx + length * (a * stx - a12 * r1)) / det;
                spread = (a22 - 2.0 * length * a12 + length * length * a) / det;
            } else {
                mean = (m0 * kk + sx) / a;
                spread = 1.0 / a;
            }
            double var = sig2 * (spread + 1.0);
            double dm = mean - x;
            dm = dm * dm;
            lp = (log(var) + s->log_2pi) * -0.5;
            lp = lp - dm / (var * 2.0);
        }
        s->C[i] = r ? s->C[i] + lp : lp;
    }
}

/* feed one valid value; *hit: 1 a new change, 2 the same change seen again, 0 none */
static int feed(Core *s, double raw, long long gi, int *hit) {
    *hit = 0;
    double x = raw, prev = s->last;
    double nb = (double)s->n, tpos = nb;
    /* the block boundary before this value, first: it reads none of what the recurrences
     * change, and when it fails the value is not fed at all */
    if (!(s->span == 0 && s->nh == 0) && s->bl == s->k && boundary(s, gi, tpos) < 0) return -1;
    /* recurrences: winsorise against the scale before the value, then the scale after it */
    if (!s->binary) {
        double sb = s->scale_ok ? s->scale
                    : scale_of(s->sqrt_pi_2, nb, s->ads, s->sn, s->ss, s->sq, prev);
        double band = s->clip * sb;
        double centre = centre_of(s);
        double lo = centre - band, hi = centre + band;
        if (x < lo) x = lo;
        else if (x > hi) x = hi;
    }
    if (s->nrecent == CENTRE_OF) {
        memmove(s->recent, s->recent + 1, (CENTRE_OF - 1) * sizeof(double));
        s->recent[CENTRE_OF - 1] = raw;
    } else {
        s->recent[s->nrecent++] = raw;
    }
    double dd = isnan(prev) ? 0.0 : fabs(x - prev);
    s->ads += dd;
    s->ss += x;
    s->sq += x * x;
    s->sn += 1.0;
    s->last = x;
    double sc = scale_of(s->sqrt_pi_2, nb + 1.0, s->ads, s->sn, s->ss, s->sq, x);
    double sig2 = sc * sc;
    s->scale = sc;
    s->scale_ok = 1;
    s->n++;
    if (s->span == 0 && s->nh == 0 && begin(s, gi, isnan(prev) ? x : prev, tpos) < 0) return -1;
    s->span++;
    predictives(s, x, sig2);
    int r = s->bl;
    Py_ssize_t nh = s->nh;
    if (r) {
        s->bs += x;
        s->bq += x * x;
        s->bt += tpos * x;
    } else {
        s->bs = x;
        s->bq = x * x;
        s->bt = tpos * x;
    }
    s->bl = r + 1;
    remember(s, x, gi);
    /* decision: has the regime most likely begun well after the current one's start? */
    long long thr = s->segment_start + s->min_gap;
    double best_old = -Py_HUGE_VAL, best_fresh = -Py_HUGE_VAL;
    Py_ssize_t nf = 0, bf = -1;
    for (Py_ssize_t i = 0; i < nh; i++) {
        double v = s->J0[i] + s->C[i];
        if (isnan(v)) return 0; /* numpy's max is NaN: no decision */
        if (s->start[i] > thr) {
            nf++;
            if (bf < 0 || v > best_fresh) { best_fresh = v; bf = i; }
        } else if (v > best_old) {
            best_old = v;
        }
    }
    if (nf == 0) return 0;
    double top = best_fresh > best_old ? best_fresh : best_old;
    if (!isfinite(top)) return 0;
    /* screen (a necessary condition, with a margin for rounding) */
    double lognf = nf < 64 ? s->lognf[nf] : log((double)nf);
    if (!(best_fresh + lognf > best_old + s->log_odds - 1e-9)) return 0;
    double sf = 0.0, sa = 0.0;
    for (Py_ssize_t i = 0; i < nh; i++) {
        double w = exp(s->J0[i] + s->C[i] - top);
        sa += w;
        if (s->start[i] > thr) sf += w;
    }
    if (!(sf / sa > s->threshold)) return 0;
    if (gi - s->start[bf] + 1 < s->min_gap) return 0;
    /* a change: the current regime restarts at the best fresh run */
    long long old = s->segment_start;
    if (s->ncp && s->cps[s->ncp - 1] > old) old = s->cps[s->ncp - 1];
    if (s->ncp == 0 && old < 0) old = 0;
    long long bstart = s->start[bf];
    s->segment_start = bstart;
    long long cp;
    refine(s, old, bstart, gi, &cp);
    s->sn = s->L0[bf] + (double)s->bl;
    s->ss = s->S0[bf] + s->bs;
    s->sq = s->Q0[bf] + s->bq;
    s->scale_ok = 0;
    if (s->ncp && cp - s->cps[s->ncp - 1] < s->min_gap) {
        *hit = 2;
        return 0;
    }
    s->cps[s->ncp++] = cp; /* reserve() made the room */
    *hit = 1;
    return 0;
}

/* feed ``m`` values. On an error (an exception from the tie helper, no memory) the state is
 * that of the values before the one that failed (or through it, if it was fed): the counters
 * and the index agree, and the next call carries on from there. */
static int feed_all(Core *s, const double *v, Py_ssize_t m, PyObject *found) {
    Py_ssize_t last_valid = -1, last_found = -1, done = m;
    int rc = 0;
    s->span = 0;
    for (Py_ssize_t p = 0; p < m; p++) {
        double raw = v[p];
        if (!isfinite(raw)) { s->n_invalid++; continue; }
        if ((rc = reserve(s)) < 0) { done = p; break; }
        if (s->binary && raw != 0.0 && raw != 1.0) {
            if (s->span) end_span(s);
            s->binary = 0;
            clear_runs(s);
        } else if (s->span == SPAN) {
            end_span(s);
        }
        int hit;
        long long n0 = s->n;
        rc = feed(s, raw, s->index + p, &hit);
        if (s->n != n0) last_valid = p;
        if (rc < 0) { done = p + (s->n != n0); break; }
        if (hit) {
            end_span(s);
            if (hit == 1) {
                last_found = p;
                PyObject *at = PyLong_FromSsize_t(p);
                rc = at ? PyList_Append(found, at) : -1;
                Py_XDECREF(at);
                if (rc < 0) { done = p + 1; break; }
            }
        }
    }
    if (s->span) end_span(s);
    if (last_valid >= 0) s->last_detected = last_found >= 0 && last_found == last_valid;
    s->index += done;
    return rc;
}

/* --- the Python type ------------------------------------------------------------------------ */

static PyObject *not_ready(void) {
    PyErr_SetString(PyExc_RuntimeError, "Core.__init__ was not called");
    return NULL;
}

/* enter a method: refused before __init__ and while another method of this core runs (the
 * Python code a method may call must not resize or rewrite the arrays under it) */
static int enter(Core *s) {
    if (!s->tie) { not_ready(); return -1; }
    if (s->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Core called back while it is running");
        return -1;
    }
    s->busy = 1;
    return 0;
}

/* leave a method with its result (computed before the call, so before busy is cleared) */
static PyObject *leave(Core *s, PyObject *result) {
    s->busy = 0;
    return result;
}

static int Core_init(Core *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"block", "max_runs", "min_gap", "threshold", "log_1mq", "log_prune",
                            "log_odds", "kk", "kb", "clip", "born_bin", "born_l0", "born_l1",
                            "prior_l0", "prior_l1", "log_2pi", "sqrt_pi_2", "keep", "tie",
                            NULL};
    /* parsed into a copy: a call that fails leaves an initialised core as it was */
    Core c;
    PyObject *tie;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiiddddddddddddddnO", names, &c.k, &c.max_runs,
                                     &c.min_gap, &c.threshold, &c.log_1mq, &c.log_prune,
                                     &c.log_odds, &c.kk, &c.kb, &c.clip, &c.born_bin,
                                     &c.born_l0, &c.born_l1, &c.prior_l0, &c.prior_l1,
                                     &c.log_2pi, &c.sqrt_pi_2, &c.keep, &tie))
        return -1;
    if (c.k < 1 || c.max_runs < 3 || c.min_gap < 1 || c.keep < 1 || c.k > MAX_SETTING
        || c.max_runs > MAX_SETTING || c.keep > MAX_KEEP) {
        PyErr_SetString(PyExc_ValueError,
                        "block, min_gap, keep >= 1 and max_runs >= 3 (block, max_runs <= 2**24, "
                        "keep <= 2**40)");
        return -1;
    }
    if (!PyCallable_Check(tie)) {
        PyErr_SetString(PyExc_TypeError, "tie must be callable");
        return -1;
    }
    if (s->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Core called back while it is running");
        return -1;
    }
    if (grow_runs(s, c.max_runs + 4) < 0) return -1;
    s->k = c.k; s->max_runs = c.max_runs; s->min_gap = c.min_gap; s->keep = c.keep;
    s->threshold = c.threshold; s->log_1mq = c.log_1mq; s->log_prune = c.log_prune;
    s->log_odds = c.log_odds; s->kk = c.kk; s->kb = c.kb; s->clip = c.clip;
    s->born_bin = c.born_bin; s->born_l0 = c.born_l0; s->born_l1 = c.born_l1;
    s->prior_l0 = c.prior_l0; s->prior_l1 = c.prior_l1; s->log_2pi = c.log_2pi;
    s->sqrt_pi_2 = c.sqrt_pi_2;
    Py_INCREF(tie);
    Py_XSETREF(s->tie, tie);
    for (int i = 1; i < 64; i++) s->lognf[i] = log((double)i);
    s->lognf[0] = -Py_HUGE_VAL;
    reset_core(s);
    return 0;
}

static int Core_traverse(Core *s, visitproc visit, void *arg) {
    Py_VISIT(s->tie);
    return 0;
}

static int Core_clear(Core *s) {
    Py_CLEAR(s->tie);
    return 0;
}

static void Core_dealloc(Core *s) {
    PyObject_GC_UnTrack(s);
    Py_CLEAR(s->tie);
    double *fs[] = {s->J0, s->C, s->L0, s->S0, s->Q0, s->T0, s->mu0, s->t1, s->jend, s->tmp,
                    s->bx, s->rs};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) PyMem_Free(fs[i]);
    PyMem_Free(s->start);
    PyMem_Free(s->slope);
    PyMem_Free(s->mask);
    PyMem_Free(s->bi);
    PyMem_Free(s->cps);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* the buffer formats of a native float64 */
static int is_f8(const char *f) {
    if (f[0] == '@' || f[0] == '=') f++;
#if PY_LITTLE_ENDIAN
    else if (f[0] == '<') f++;
#else
    else if (f[0] == '>' || f[0] == '!') f++;
#endif
    return f[0] == 'd' && f[1] == 0;
}

static PyObject *Core_update_(Core *s, PyObject *values) {
    PyObject *found = PyList_New(0);
    if (!found) return NULL;
    int rc;
    if (PyFloat_Check(values) || PyLong_Check(values)) {
        double v = PyFloat_AsDouble(values);
        if (v == -1.0 && PyErr_Occurred()) { Py_DECREF(found); return NULL; }
        rc = feed_all(s, &v, 1, found);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(values, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            Py_DECREF(found);
            return NULL;
        }
        if (view.itemsize != 8 || !view.format || !is_f8(view.format)) {
            PyBuffer_Release(&view);
            Py_DECREF(found);
            PyErr_SetString(PyExc_TypeError, "update() needs contiguous float64 values");
            return NULL;
        }
        rc = feed_all(s, (const double *)view.buf, view.len / 8, found);
        PyBuffer_Release(&view);
    }
    if (rc < 0) { Py_DECREF(found); return NULL; }
    return found;
}

static PyObject *Core_update(Core *s, PyObject *values) {
    if (enter(s) < 0) return NULL;
    return leave(s, Core_update_(s, values));
}

static PyObject *Core_reset(Core *s, PyObject *Py_UNUSED(ignored)) {
    if (enter(s) < 0) return NULL;
    reset_core(s);
    s->busy = 0;
    Py_RETURN_NONE;
}

static PyObject *list_d(const double *v, Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (!f) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, f);
    }
    return l;
}

static PyObject *list_ll(const long long *v, Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyLong_FromLongLong(v[i]);
        if (!f) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, f);
    }
    return l;
}

static int put(PyObject *d, const char *key, PyObject *v) {
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

/* every piece of state, in the numpy path's attribute names (lists for its arrays) */
static PyObject *list_bool(const char *v, Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(l, i, PyBool_FromLong(v[i]));
    return l;
}

static PyObject *Core_state_(Core *s) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    Py_ssize_t nh = s->nh, b0 = buf_first(s);
    if (put(d, "_index", PyLong_FromLongLong(s->index)) < 0
        || put(d, "_n", PyLong_FromLongLong(s->n)) < 0
        || put(d, "_n_invalid", PyLong_FromLongLong(s->n_invalid)) < 0
        || put(d, "_binary", PyBool_FromLong(s->binary)) < 0
        || put(d, "_last", PyFloat_FromDouble(s->last)) < 0
        || put(d, "_ads", PyFloat_FromDouble(s->ads)) < 0
        || put(d, "_segment_start", PyLong_FromLongLong(s->segment_start)) < 0
        || put(d, "_last_detected", PyBool_FromLong(s->last_detected)) < 0
        || put(d, "_change_points", list_ll(s->cps, s->ncp)) < 0
        || put(d, "_recent", list_d(s->recent, s->nrecent)) < 0
        || put(d, "_buf_x", list_d(s->bx + b0, s->nbuf - b0)) < 0
        || put(d, "_buf_i", list_ll(s->bi + b0, s->nbuf - b0)) < 0
        || put(d, "_start", list_ll(s->start, nh)) < 0
        || put(d, "_J0", list_d(s->J0, nh)) < 0
        || put(d, "_C", list_d(s->C, nh)) < 0
        || put(d, "_L0", list_d(s->L0, nh)) < 0
        || put(d, "_S0", list_d(s->S0, nh)) < 0
        || put(d, "_Q0", list_d(s->Q0, nh)) < 0
        || put(d, "_mu0", list_d(s->mu0, nh)) < 0
        || put(d, "_T0", list_d(s->T0, nh)) < 0
        || put(d, "_slope", list_bool(s->slope, nh)) < 0
        || put(d, "_t1", list_d(s->t1, nh)) < 0
        || put(d, "_bl", PyLong_FromLong(s->bl)) < 0
        || put(d, "_bs", PyFloat_FromDouble(s->bs)) < 0
        || put(d, "_bq", PyFloat_FromDouble(s->bq)) < 0
        || put(d, "_bt", PyFloat_FromDouble(s->bt)) < 0
        || put(d, "_seg", Py_BuildValue("(ddd)", s->sn, s->ss, s->sq)) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *Core_state(Core *s, PyObject *Py_UNUSED(ignored)) {
    if (enter(s) < 0) return NULL;
    return leave(s, Core_state_(s));
}

/* --- load(state): the inverse of state() (pickling) ---------------------------------------- */

/* A state may be tampered with or truncated: every value is read into a strong reference (the
 * arrays as tuples, so no code a __float__ / __index__ runs can resize them), every index is
 * checked against the stream's, and nothing is kept unless all of it is good. */

static PyObject *item(PyObject *d, const char *key) { /* a new reference */
    PyObject *k = PyUnicode_FromString(key);
    if (!k) return NULL;
    PyObject *v = PyDict_GetItemWithError(d, k);
    Py_DECREF(k);
    if (v) Py_INCREF(v);
    else if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "state has no %s", key);
    return v;
}

static int bad_state(const char *what) {
    PyErr_Format(PyExc_ValueError, "state: %s out of range", what);
    return -1;
}

static int get_ll(PyObject *d, const char *key, long long lo, long long hi, long long *out) {
    PyObject *v = item(d, key);
    if (!v) return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (*out == -1 && PyErr_Occurred()) return -1;
    return (*out < lo || *out > hi) ? bad_state(key) : 0;
}

static int get_d(PyObject *d, const char *key, double *out) {
    PyObject *v = item(d, key);
    if (!v) return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *seq_of(PyObject *d, const char *key) { /* a tuple (a copy) */
    PyObject *v = item(d, key);
    if (!v) return NULL;
    PyObject *t = PySequence_Tuple(v);
    Py_DECREF(v);
    return t;
}

static int fill_d(PyObject *tup, double *out) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tup); i++) {
        out[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tup, i));
        if (out[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static int fill_ll(PyObject *tup, long long *out, long long lo, long long hi, const char *what) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tup); i++) {
        out[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(tup, i));
        if (out[i] == -1 && PyErr_Occurred()) return -1;
        if (out[i] < lo || out[i] > hi) return bad_state(what);
    }
    return 0;
}

static int load_(Core *s, PyObject *d) {
    static const char *runs[] = {"_start", "_J0", "_C", "_L0", "_S0", "_Q0", "_mu0", "_T0",
                                 "_slope", "_t1"};
    enum { NSEQ = 15 };
    static const char *other[] = {"_recent", "_buf_x", "_buf_i", "_change_points", "_seg"};
    PyObject *seqs[NSEQ] = {NULL};
    int rc = -1;
    long long index, n, n_invalid, seg_start, bl, binary, detected;
    double last, ads, bs, bq, bt, segv[3];
    for (int i = 0; i < NSEQ; i++)
        if (!(seqs[i] = seq_of(d, i < 10 ? runs[i] : other[i - 10]))) goto done;
    if (get_ll(d, "_index", 0, MAX_INDEX, &index) < 0
        || get_ll(d, "_n", 0, index, &n) < 0
        || get_ll(d, "_n_invalid", 0, index - n, &n_invalid) < 0
        || get_ll(d, "_segment_start", 0, index, &seg_start) < 0
        || get_ll(d, "_binary", 0, 1, &binary) < 0
        || get_ll(d, "_last_detected", 0, 1, &detected) < 0
        || get_ll(d, "_bl", 0, s->k, &bl) < 0 || get_d(d, "_last", &last) < 0
        || get_d(d, "_ads", &ads) < 0 || get_d(d, "_bs", &bs) < 0
        || get_d(d, "_bq", &bq) < 0 || get_d(d, "_bt", &bt) < 0)
        goto done;
    Py_ssize_t nh = PyTuple_GET_SIZE(seqs[0]);
    for (int i = 1; i < 10; i++) {
        if (PyTuple_GET_SIZE(seqs[i]) != nh) {
            PyErr_SetString(PyExc_ValueError, "state arrays of different lengths");
            goto done;
        }
    }
    PyObject *recent = seqs[10], *bx = seqs[11], *bi = seqs[12], *cps = seqs[13];
    Py_ssize_t nr = PyTuple_GET_SIZE(recent), nbuf = PyTuple_GET_SIZE(bx);
    Py_ssize_t ncp = PyTuple_GET_SIZE(cps);
    if (nr > CENTRE_OF || PyTuple_GET_SIZE(bi) != nbuf || nbuf > s->keep
        || PyTuple_GET_SIZE(seqs[14]) != 3 || ncp > index + 1) {
        PyErr_SetString(PyExc_ValueError, "state of the wrong shape");
        goto done;
    }
    if (fill_d(seqs[14], segv) < 0) goto done;
    /* the arrays, straight into the core's (a failure below resets it) */
    reset_core(s);
    if (grow_runs(s, nh) < 0) goto done;
    if (fill_ll(seqs[0], s->start, 0, index, "_start") < 0) goto done;
    double *dst[] = {NULL, s->J0, s->C, s->L0, s->S0, s->Q0, s->mu0, s->T0, NULL, s->t1};
    for (int i = 1; i < 10; i++) if (dst[i] && fill_d(seqs[i], dst[i]) < 0) goto done;
    for (Py_ssize_t i = 0; i < nh; i++) {
        int t = PyObject_IsTrue(PyTuple_GET_ITEM(seqs[8], i));
        if (t < 0) goto done;
        s->slope[i] = (char)t;
    }
    if (fill_d(recent, s->recent) < 0) goto done;
    if (nbuf) {
        if (buf_cap(s, 2 * s->keep) < 0) goto done;
        if (fill_d(bx, s->bx) < 0 || fill_ll(bi, s->bi, 0, index, "_buf_i") < 0) goto done;
    }
    if (ncp) {
        long long *p = PyMem_Realloc(s->cps, ncp * sizeof(long long));
        if (!p) { PyErr_NoMemory(); goto done; }
        s->cps = p;
        s->cpcap = ncp;
        if (fill_ll(cps, s->cps, 0, index, "_change_points") < 0) goto done;
    }
    s->nh = nh;
    s->nrecent = (int)nr;
    s->nbuf = nbuf;
    s->ncp = ncp;
    s->sn = segv[0]; s->ss = segv[1]; s->sq = segv[2];
    s->index = index; s->n = n; s->n_invalid = n_invalid; s->segment_start = seg_start;
    s->binary = (int)binary; s->last_detected = (int)detected; s->bl = (int)bl;
    s->last = last; s->ads = ads; s->bs = bs; s->bq = bq; s->bt = bt;
    rc = 0;
done:
    for (int i = 0; i < NSEQ; i++) Py_XDECREF(seqs[i]);
    if (rc < 0) reset_core(s);
    return rc;
}

static PyObject *Core_load(Core *s, PyObject *d) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "load() needs the dict state() gave");
        return NULL;
    }
    if (enter(s) < 0) return NULL;
    int rc = load_(s, d);
    s->busy = 0;
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* (start, log weight) of every hypothesis kept: what run_lengths() needs */
static PyObject *Core_runs_(Core *s) {
    double *j = s->jend;
    for (Py_ssize_t i = 0; i < s->nh; i++) j[i] = s->J0[i] + s->C[i];
    PyObject *a = list_ll(s->start, s->nh);
    if (!a) return NULL;
    PyObject *b = list_d(j, s->nh);
    if (!b) { Py_DECREF(a); return NULL; }
    return Py_BuildValue("(NN)", a, b);
}

static PyObject *Core_runs(Core *s, PyObject *Py_UNUSED(ignored)) {
    if (enter(s) < 0) return NULL;
    return leave(s, Core_runs_(s));
}

/* _prune(j_end, born) -> (kept positions, their shifted log weights): the boundary's pruning
 * alone, for the tests (against ChangeDetector._prune) */
static PyObject *Core_prune_(Core *s, PyObject *lst, int born) {
    PyObject *tup = PySequence_Tuple(lst); /* a copy: a __float__ cannot resize it */
    if (!tup) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(tup);
    if (n < 1 || born < 0 || born >= s->max_runs) {
        Py_DECREF(tup);
        PyErr_SetString(PyExc_ValueError, "need 1+ weights and 0 <= born < max_runs");
        return NULL;
    }
    if (grow_runs(s, n) < 0) { Py_DECREF(tup); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        s->jend[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tup, i));
        if (s->jend[i] == -1.0 && PyErr_Occurred()) { Py_DECREF(tup); return NULL; }
    }
    Py_DECREF(tup);
    double lse;
    if (prune_mask(s, s->jend, n, born, s->mask, &lse) < 0) return NULL;
    PyObject *kept = PyList_New(0), *vals = PyList_New(0);
    if (!kept || !vals) { Py_XDECREF(kept); Py_XDECREF(vals); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!s->mask[i]) continue;
        PyObject *a = PyLong_FromSsize_t(i), *b = PyFloat_FromDouble((s->jend[i] - lse) + s->log_1mq);
        int bad = !a || !b || PyList_Append(kept, a) < 0 || PyList_Append(vals, b) < 0;
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (bad) { Py_DECREF(kept); Py_DECREF(vals); return NULL; }
    }
    return Py_BuildValue("(NN)", kept, vals);
}

static PyObject *Core_prune(Core *s, PyObject *args) {
    PyObject *lst;
    int born;
    if (!PyArg_ParseTuple(args, "O!i", &PyList_Type, &lst, &born)) return NULL;
    if (enter(s) < 0) return NULL;
    return leave(s, Core_prune_(s, lst, born));
}

static PyObject *Core_get_n(Core *s, void *c) { return PyLong_FromLongLong(s->n); }
static PyObject *Core_get_n_invalid(Core *s, void *c) { return PyLong_FromLongLong(s->n_invalid); }
static PyObject *Core_get_detected(Core *s, void *c) { return PyBool_FromLong(s->last_detected); }
static PyObject *Core_get_binary(Core *s, void *c) { return PyBool_FromLong(s->binary); }
static PyObject *Core_get_detections(Core *s, void *c) { return PyLong_FromSsize_t(s->ncp); }
static PyObject *Core_get_cps(Core *s, void *c) {
    if (s->busy) { /* a list's allocation may run code (a finaliser): not from a callback */
        PyErr_SetString(PyExc_RuntimeError, "Core called back while it is running");
        return NULL;
    }
    s->busy = 1;
    return leave(s, list_ll(s->cps, s->ncp));
}
static PyObject *Core_get_cp(Core *s, void *c) {
    if (!s->ncp) Py_RETURN_NONE;
    return PyLong_FromLongLong(s->cps[s->ncp - 1]);
}

static PyGetSetDef Core_getset[] = {
    {"n", (getter)Core_get_n, NULL, "valid values fed", NULL},
    {"n_invalid", (getter)Core_get_n_invalid, NULL, "invalid values skipped", NULL},
    {"last_detected", (getter)Core_get_detected, NULL, "the last valid value triggered", NULL},
    {"binary", (getter)Core_get_binary, NULL, "every valid value so far was 0 or 1", NULL},
    {"detections", (getter)Core_get_detections, NULL, "changes detected", NULL},
    {"change_points", (getter)Core_get_cps, NULL, "estimated starts of the changes", NULL},
    {"change_point", (getter)Core_get_cp, NULL, "the latest change point or None", NULL},
    {NULL}
};

static PyMethodDef Core_methods[] = {
    {"update", (PyCFunction)Core_update, METH_O, "feed float64 values; the batch positions of detections"},
    {"reset", (PyCFunction)Core_reset, METH_NOARGS, "forget everything"},
    {"state", (PyCFunction)Core_state, METH_NOARGS, "the state in the numpy path's names"},
    {"runs", (PyCFunction)Core_runs, METH_NOARGS, "(starts, log weights) of the hypotheses"},
    {"load", (PyCFunction)Core_load, METH_O, "restore what state() gave (pickling)"},
    {"_prune", (PyCFunction)Core_prune, METH_VARARGS, "the boundary's pruning alone (tests)"},
    {NULL}
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "driftline.detectors._changecore.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_doc = "ChangeDetector's recursion in C (see detectors/change.py)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_changecore", "ChangeDetector's compiled core.", -1, NULL
};

PyMODINIT_FUNC PyInit__changecore(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
