/*
 * Exact RNS polynomial kernels for mpclr: negacyclic NTT laid out exactly as SEAL 4.1 lays it out
 * (bit-reversed root table, Cooley-Tukey forward, Gentleman-Sande inverse), and element-wise modular
 * arithmetic. Everything is exact 64-bit integer arithmetic (a 64x64->128 product; no floating point,
 * no long double), so results are identical on every platform. The GIL is released while computing,
 * so parties simulated in threads use both cores.
 *
 * Arrays are C-contiguous uint64 of shape (..., k, n) for k = len(moduli): row r is reduced modulo
 * moduli[r % k], so a stack of polynomials is one call. Moduli must be below 2^62 (SEAL's limit: 61 bits).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__SIZEOF_INT128__)
typedef unsigned __int128 u128;
static inline uint64_t mulhi64(uint64_t a, uint64_t b) { return (uint64_t)(((u128)a * b) >> 64); }
static inline void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    u128 p = (u128)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
}
#else
/* Portable fallback: schoolbook product on 32-bit limbs. */
static inline void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
static inline uint64_t mulhi64(uint64_t a, uint64_t b)
{
    uint64_t hi, lo;
    mul64(a, b, &hi, &lo);
    return hi;
}
#endif

/* Shoup: w_shoup = floor(w * 2^64 / q) precomputed; returns x * w mod q for x < 2^64, q < 2^63. */
static inline uint64_t mul_shoup(uint64_t x, uint64_t w, uint64_t w_shoup, uint64_t q)
{
    uint64_t est = mulhi64(x, w_shoup);
    uint64_t r = x * w - est * q;
    return r >= q ? r - q : r;
}

/* Barrett reduction of the 128-bit value (hi, lo) < q^2 with ratio = floor(2^128 / q) = (r1, r0). */
static inline uint64_t barrett128(uint64_t hi, uint64_t lo, uint64_t r1, uint64_t r0, uint64_t q)
{
    /* Quotient estimate floor((hi*2^64 + lo) * (r1*2^64 + r0) / 2^128), dropping the lowest
       partial product's low word (error at most 2 multiples of q, corrected below). */
    uint64_t c_hi, c_lo, t_hi, t_lo, carry;
    uint64_t lo_r0_hi = mulhi64(lo, r0);
    mul64(lo, r1, &c_hi, &c_lo);
    uint64_t s = c_lo + lo_r0_hi;
    carry = s < c_lo;
    uint64_t acc_hi = c_hi + carry;
    mul64(hi, r0, &t_hi, &t_lo);
    uint64_t s2 = s + t_lo;
    carry = s2 < s;
    acc_hi += t_hi + carry;
    uint64_t quot = hi * r1 + acc_hi;
    uint64_t r = lo - quot * q;
    while (r >= q) r -= q;
    return r;
}

typedef struct {
    Py_buffer view;
    int held;
} buf_t;

static int get_buf(PyObject *obj, buf_t *b, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s uint64 buffer", name,
                     writable ? " writable" : "");
        return -1;
    }
    b->held = 1;
    if (b->view.itemsize != 8 || b->view.len % 8 != 0) {
        PyErr_Format(PyExc_TypeError, "%s must hold 8-byte unsigned integers", name);
        return -1;
    }
    return 0;
}

static void release(buf_t *bufs, int count)
{
    for (int i = 0; i < count; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].view);
}

#define NELEM(b) ((Py_ssize_t)((b).view.len / 8))
#define U64(b) ((uint64_t *)(b).view.buf)

static int check_shape(Py_ssize_t total, Py_ssize_t n, Py_ssize_t rows, const char *name)
{
    if (n <= 0 || (n & (n - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "n must be a positive power of two");
        return -1;
    }
    if (total != rows * n) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd values; expected %zd rows x %zd", name, total, rows, n);
        return -1;
    }
    return 0;
}

/* Harvey's lazy butterflies: values stay in [0, 4q) inside the transform (q < 2^62), fully reduced at
   the end; mul_shoup_lazy returns x * w mod q in [0, 2q). */
static inline uint64_t mul_shoup_lazy(uint64_t x, uint64_t w, uint64_t w_shoup, uint64_t q)
{
    return x * w - mulhi64(x, w_shoup) * q;
}

static void ntt_forward_row(uint64_t *a, Py_ssize_t n, const uint64_t *w, const uint64_t *ws, uint64_t q)
{
    const uint64_t two_q = 2 * q;
    Py_ssize_t gap = n >> 1;
    for (Py_ssize_t m = 1; m < n; m <<= 1, gap >>= 1) {
        for (Py_ssize_t i = 0; i < m; i++) {
            const uint64_t W = w[m + i], Ws = ws[m + i];
            uint64_t *restrict x = a + 2 * i * gap, *restrict y = x + gap;
            for (Py_ssize_t j = 0; j < gap; j++) {
                uint64_t u = x[j];
                u -= (u >= two_q) ? two_q : 0;
                uint64_t v = mul_shoup_lazy(y[j], W, Ws, q);
                x[j] = u + v;
                y[j] = u + two_q - v;
            }
        }
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        uint64_t u = a[j];
        u -= (u >= two_q) ? two_q : 0;
        a[j] = u - ((u >= q) ? q : 0);
    }
}

static void ntt_inverse_row(uint64_t *a, Py_ssize_t n, const uint64_t *w, const uint64_t *ws, uint64_t q,
                            uint64_t ninv, uint64_t ninv_s)
{
    /* w[m + i] holds the inverse of the forward root used by group i of stage m. Inputs in [0, q);
       values stay in [0, 2q) between stages. */
    const uint64_t two_q = 2 * q;
    Py_ssize_t gap = 1;
    for (Py_ssize_t m = n >> 1; m >= 1; m >>= 1, gap <<= 1) {
        for (Py_ssize_t i = 0; i < m; i++) {
            const uint64_t W = w[m + i], Ws = ws[m + i];
            uint64_t *restrict x = a + 2 * i * gap, *restrict y = x + gap;
            for (Py_ssize_t j = 0; j < gap; j++) {
                uint64_t u = x[j], v = y[j];
                uint64_t s = u + v;
                x[j] = s - ((s >= two_q) ? two_q : 0);
                y[j] = mul_shoup_lazy(u + two_q - v, W, Ws, q);
            }
        }
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        uint64_t r = mul_shoup_lazy(a[j], ninv, ninv_s, q);
        a[j] = r - ((r >= q) ? q : 0);
    }
}

static PyObject *py_ntt(PyObject *args, int inverse)
{
    PyObject *o_data, *o_w, *o_ws, *o_q, *o_ninv = NULL, *o_ninvs = NULL;
    Py_ssize_t n;
    buf_t b[6];
    memset(b, 0, sizeof b);
    if (inverse) {
        if (!PyArg_ParseTuple(args, "OOOOOOn", &o_data, &o_w, &o_ws, &o_q, &o_ninv, &o_ninvs, &n)) return NULL;
    } else {
        if (!PyArg_ParseTuple(args, "OOOOn", &o_data, &o_w, &o_ws, &o_q, &n)) return NULL;
    }
    if (get_buf(o_data, &b[0], 1, "data") || get_buf(o_w, &b[1], 0, "roots") ||
        get_buf(o_ws, &b[2], 0, "roots_shoup") || get_buf(o_q, &b[3], 0, "moduli") ||
        (inverse && (get_buf(o_ninv, &b[4], 0, "n_inv") || get_buf(o_ninvs, &b[5], 0, "n_inv_shoup")))) {
        release(b, 6);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[3]);
    Py_ssize_t rows = (n > 0 && k > 0) ? NELEM(b[0]) / n : 0;
    if (k == 0 || rows % k != 0) {
        PyErr_SetString(PyExc_ValueError, "data must hold a whole number of polynomials (rows = m * len(moduli))");
        release(b, 6);
        return NULL;
    }
    if (check_shape(NELEM(b[0]), n, rows, "data") || check_shape(NELEM(b[1]), n, k, "roots") ||
        check_shape(NELEM(b[2]), n, k, "roots_shoup") ||
        (inverse && (NELEM(b[4]) != k || NELEM(b[5]) != k))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "n_inv must hold one value per row");
        release(b, 6);
        return NULL;
    }
    uint64_t *data = U64(b[0]), *w = U64(b[1]), *ws = U64(b[2]), *q = U64(b[3]);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        Py_ssize_t t = r % k;
        if (inverse)
            ntt_inverse_row(data + r * n, n, w + t * n, ws + t * n, q[t], U64(b[4])[t], U64(b[5])[t]);
        else
            ntt_forward_row(data + r * n, n, w + t * n, ws + t * n, q[t]);
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
}

static PyObject *ntt_forward(PyObject *self, PyObject *args) { return py_ntt(args, 0); }
static PyObject *ntt_inverse(PyObject *self, PyObject *args) { return py_ntt(args, 1); }

enum { OP_ADD, OP_SUB, OP_MUL };

/* out = a (op) b, row r modulo moduli[r % k]; b may also be a single polynomial (k rows) broadcast over
   the stack in a. ratios holds floor(2^128 / q) as (high, low) per modulus. */
static PyObject *py_elementwise(PyObject *args, int op)
{
    PyObject *o_out, *o_a, *o_b, *o_q, *o_ratio = NULL;
    Py_ssize_t n;
    buf_t b[5];
    memset(b, 0, sizeof b);
    if (op == OP_MUL) {
        if (!PyArg_ParseTuple(args, "OOOOOn", &o_out, &o_a, &o_b, &o_q, &o_ratio, &n)) return NULL;
    } else {
        if (!PyArg_ParseTuple(args, "OOOOn", &o_out, &o_a, &o_b, &o_q, &n)) return NULL;
    }
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_a, &b[1], 0, "a") || get_buf(o_b, &b[2], 0, "b") ||
        get_buf(o_q, &b[3], 0, "moduli") || (op == OP_MUL && get_buf(o_ratio, &b[4], 0, "ratios"))) {
        release(b, 5);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[3]);
    Py_ssize_t rows = (n > 0 && k > 0) ? NELEM(b[1]) / n : 0;
    Py_ssize_t brows = (n > 0) ? NELEM(b[2]) / n : 0;
    if (k == 0 || rows % k != 0 || (brows != rows && brows != k)) {
        PyErr_SetString(PyExc_ValueError, "a must hold m * len(moduli) rows and b as many or len(moduli)");
        release(b, 5);
        return NULL;
    }
    if (check_shape(NELEM(b[0]), n, rows, "out") || check_shape(NELEM(b[1]), n, rows, "a") ||
        check_shape(NELEM(b[2]), n, brows, "b") || (op == OP_MUL && NELEM(b[4]) != 2 * k)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "ratios must hold two values per row");
        release(b, 5);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *a = U64(b[1]), *bb = U64(b[2]), *q = U64(b[3]);
    uint64_t *ratio = op == OP_MUL ? U64(b[4]) : NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        Py_ssize_t t = r % k;
        uint64_t m = q[t];
        uint64_t *o = out + r * n, *x = a + r * n, *y = bb + (brows == rows ? r : t) * n;
        if (op == OP_ADD) {
            for (Py_ssize_t j = 0; j < n; j++) {
                uint64_t s = x[j] + y[j];
                o[j] = s >= m ? s - m : s;
            }
        } else if (op == OP_SUB) {
            for (Py_ssize_t j = 0; j < n; j++) o[j] = x[j] >= y[j] ? x[j] - y[j] : x[j] + m - y[j];
        } else {
            uint64_t r1 = ratio[2 * t], r0 = ratio[2 * t + 1];
            for (Py_ssize_t j = 0; j < n; j++) {
                uint64_t hi, lo;
                mul64(x[j], y[j], &hi, &lo);
                o[j] = barrett128(hi, lo, r1, r0, m);
            }
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 5);
    Py_RETURN_NONE;
}

static PyObject *add_mod(PyObject *self, PyObject *args) { return py_elementwise(args, OP_ADD); }
static PyObject *sub_mod(PyObject *self, PyObject *args) { return py_elementwise(args, OP_SUB); }
static PyObject *mul_mod(PyObject *self, PyObject *args) { return py_elementwise(args, OP_MUL); }

/* out[p, r, :] = c[p, :] mod moduli[r] for signed 64-bit coefficients c of shape (m, n): lifts small
   polynomials (errors, secrets, smudging noise) into RNS form. out has shape (m, k, n). */
static PyObject *lift_signed(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_c, *o_q;
    Py_ssize_t n;
    buf_t b[3];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOn", &o_out, &o_c, &o_q, &n)) return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_c, &b[1], 0, "coefficients") || get_buf(o_q, &b[2], 0, "moduli")) {
        release(b, 3);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[2]);
    Py_ssize_t polys = n > 0 ? NELEM(b[1]) / n : 0;
    if (n <= 0 || k == 0 || polys * n != NELEM(b[1]) || NELEM(b[0]) != polys * k * n) {
        PyErr_SetString(PyExc_ValueError, "out must have shape (m, len(moduli), n) for coefficients (m, n)");
        release(b, 3);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *q = U64(b[2]);
    const int64_t *c = (const int64_t *)b[1].view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = 0; p < polys; p++) {
        for (Py_ssize_t r = 0; r < k; r++) {
            uint64_t m = q[r];
            uint64_t *o = out + (p * k + r) * n;
            const int64_t *x = c + p * n;
            for (Py_ssize_t j = 0; j < n; j++) {
                int64_t v = x[j];
                uint64_t mag = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
                uint64_t red = mag < m ? mag : mag % m;
                o[j] = (v < 0 && red) ? m - red : red;
            }
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 3);
    Py_RETURN_NONE;
}

/* The rows of a stack of m * k rows of n values (row r modulo the r % k-th prime), or -1 with
   ValueError(msg) when a holds no such stack. */
static Py_ssize_t stack_rows(const buf_t *a, Py_ssize_t k, Py_ssize_t n, const char *msg)
{
    Py_ssize_t rows = n > 0 ? NELEM(*a) / n : 0;
    if (n <= 0 || k == 0 || rows * n != NELEM(*a) || rows % k) {
        PyErr_SetString(PyExc_ValueError, msg);
        return -1;
    }
    return rows;
}

/* True if every row r of a (m*k, n) holds values below moduli[r % k]. */
static PyObject *all_reduced(PyObject *self, PyObject *args)
{
    PyObject *o_a, *o_q;
    Py_ssize_t n;
    buf_t b[2];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOn", &o_a, &o_q, &n)) return NULL;
    if (get_buf(o_a, &b[0], 0, "a") || get_buf(o_q, &b[1], 0, "moduli")) {
        release(b, 2);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[1]);
    Py_ssize_t rows = stack_rows(&b[0], k, n, "a must hold m * len(moduli) rows of n values");
    if (rows < 0) {
        release(b, 2);
        return NULL;
    }
    const uint64_t *a = U64(b[0]), *q = U64(b[1]);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows && ok; r++) {
        uint64_t m = q[r % k], bad = 0;
        const uint64_t *x = a + r * n;
        for (Py_ssize_t j = 0; j < n; j++) bad |= (uint64_t)(x[j] >= m);
        ok = !bad;
    }
    Py_END_ALLOW_THREADS
    release(b, 2);
    return PyBool_FromLong(ok);
}

/* ---- exact integers of any width for the collective refresh ---------------------------------------
   An integer polynomial is carried as its channels: residues modulo each target prime (rows, coefficient
   domain) and modulo 2^64 (low). The refresh lifts masked values (fast base conversion with an exact wrap
   count), rotates-and-sums them, and rounds public dyadic combinations, all on channels (mpclr.ring.wide). */

static inline uint64_t addmod(uint64_t a, uint64_t b, uint64_t q)
{
    uint64_t s = a + b;
    return s >= q ? s - q : s;
}

static inline uint64_t submod(uint64_t a, uint64_t b, uint64_t q) { return a >= b ? a - b : a + q - b; }

/* floor(w 2^64 / q) for w < q: the Shoup companion of a constant multiplier */
static inline uint64_t shoup_of(uint64_t w, uint64_t q)
{
#if defined(__SIZEOF_INT128__)
    return (uint64_t)(((u128)w << 64) / q);
#else
    /* long division of w * 2^64 by q, bit by bit (constants only: not on a hot path) */
    uint64_t quo = 0, rem = w;
    for (int i = 0; i < 64; i++) {
        uint64_t top = rem >> 63;
        rem <<= 1;
        quo <<= 1;
        if (top || rem >= q) {
            rem -= q;
            quo |= 1;
        }
    }
    return quo;
#endif
}

/* rns_lift(out (K, n), out_low (n,), x (k, n), moduli (K,), inv (k,), hat (k, K),
            qmod (K,), hat_low (k,), q_low, n) -> max |X| / Q
   The centered lift X of x (residues modulo moduli[0..k)) into every channel: X mod moduli[r] and
   X mod 2^64, with X = sum_i y_i Q/q_i - v Q, y_i = x_i inv_i mod q_i, v = round(sum_i y_i / q_i).
   hat[i, r] = (Q/q_i) mod moduli[r], qmod[r] = Q mod moduli[r], hat_low[i] = (Q/q_i) mod 2^64. */
static PyObject *rns_lift(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_low, *o_x, *o_q, *o_inv, *o_hat, *o_qmod, *o_hl;
    unsigned long long q_low;
    Py_ssize_t n;
    buf_t b[9];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOOOOOKn", &o_out, &o_low, &o_x, &o_q, &o_inv, &o_hat, &o_qmod, &o_hl, &q_low, &n))
        return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_low, &b[1], 1, "out_low") || get_buf(o_x, &b[2], 0, "x") ||
        get_buf(o_q, &b[3], 0, "moduli") || get_buf(o_inv, &b[5], 0, "inv") || get_buf(o_hat, &b[6], 0, "hat") ||
        get_buf(o_qmod, &b[7], 0, "qmod") || get_buf(o_hl, &b[8], 0, "hat_low")) {
        release(b, 9);
        return NULL;
    }
    Py_ssize_t K = NELEM(b[3]), k = NELEM(b[5]);
    if (n <= 0 || k < 1 || k > K || k > 16 || NELEM(b[0]) != K * n || NELEM(b[1]) != n || NELEM(b[2]) != k * n ||
        NELEM(b[6]) != k * K || NELEM(b[7]) != K || NELEM(b[8]) != k) {
        PyErr_SetString(PyExc_ValueError, "rns_lift: inconsistent shapes");
        release(b, 9);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *low = U64(b[1]);
    const uint64_t *x = U64(b[2]), *q = U64(b[3]), *inv = U64(b[5]), *hat = U64(b[6]);
    const uint64_t *qmod = U64(b[7]), *hl = U64(b[8]);
    double worst = 0.0;
    uint64_t *hs = (uint64_t *)PyMem_Malloc((k * K + K + k + 1) * sizeof(uint64_t));
    if (!hs) {
        release(b, 9);
        return PyErr_NoMemory();
    }
    uint64_t *qs = hs + k * K, *invs = qs + K;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < K; r++) {
        for (Py_ssize_t i = 0; i < k; i++) hs[i * K + r] = shoup_of(hat[i * K + r], q[r]);
        qs[r] = shoup_of(qmod[r], q[r]);
    }
    for (Py_ssize_t i = 0; i < k; i++) invs[i] = shoup_of(inv[i], q[i]);
    uint64_t y[16];
    for (Py_ssize_t j = 0; j < n; j++) {
        double frac = 0.0;
        for (Py_ssize_t i = 0; i < k; i++) {
            y[i] = mul_shoup(x[i * n + j], inv[i], invs[i], q[i]);
            frac += (double)y[i] / (double)q[i];
        }
        double v = nearbyint(frac);
        double off = frac - v;
        if (off < 0) off = -off;
        if (off > worst) worst = off;
        uint64_t vu = (uint64_t)v;
        uint64_t lw = 0;
        for (Py_ssize_t i = 0; i < k; i++) {
            out[i * n + j] = x[i * n + j];
            lw += y[i] * hl[i];
        }
        low[j] = lw - vu * (uint64_t)q_low;
        for (Py_ssize_t r = k; r < K; r++) {
            uint64_t p = q[r], acc = 0;
            for (Py_ssize_t i = 0; i < k; i++) acc = addmod(acc, mul_shoup(y[i], hat[i * K + r], hs[i * K + r], p), p);
            out[r * n + j] = submod(acc, mul_shoup(vu, qmod[r], qs[r], p), p);
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(hs);
    release(b, 9);
    return PyFloat_FromDouble(worst);
}

/* rns_masks(out (K, n), out_low (n,), words (W, n), moduli (K,), pow64 (W, K), offset (K,),
             offset_low, n): the integers sum_w words[w] 2^(64 w) - offset in every channel (offset = 2^(b-1):
             uniform masks in [-2^(b-1), 2^(b-1)) from b random bits). pow64[w, r] = 2^(64 w) mod moduli[r]. */
static PyObject *rns_masks(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_low, *o_w, *o_q, *o_pow, *o_off;
    unsigned long long off_low;
    Py_ssize_t n;
    buf_t b[7];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOOOKn", &o_out, &o_low, &o_w, &o_q, &o_pow, &o_off, &off_low, &n)) return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_low, &b[1], 1, "out_low") || get_buf(o_w, &b[2], 0, "words") ||
        get_buf(o_q, &b[3], 0, "moduli") || get_buf(o_pow, &b[5], 0, "pow64") || get_buf(o_off, &b[6], 0, "offset")) {
        release(b, 7);
        return NULL;
    }
    Py_ssize_t K = NELEM(b[3]), W = n > 0 ? NELEM(b[2]) / n : 0;
    if (n <= 0 || W < 1 || NELEM(b[2]) != W * n || NELEM(b[0]) != K * n || NELEM(b[1]) != n ||
        NELEM(b[5]) != W * K || NELEM(b[6]) != K) {
        PyErr_SetString(PyExc_ValueError, "rns_masks: inconsistent shapes");
        release(b, 7);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *low = U64(b[1]);
    const uint64_t *w = U64(b[2]), *q = U64(b[3]), *pw = U64(b[5]), *off = U64(b[6]);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < K; r++) {
        uint64_t p = q[r];
        uint64_t *o = out + r * n;
        for (Py_ssize_t j = 0; j < n; j++) o[j] = 0;
        for (Py_ssize_t t = 0; t < W; t++) {
            /* x * 2^(64 t) mod p for any 64-bit word x (Shoup accepts unreduced x) */
            uint64_t c = pw[t * K + r], cs = shoup_of(c, p);
            const uint64_t *x = w + t * n;
            for (Py_ssize_t j = 0; j < n; j++) o[j] = addmod(o[j], mul_shoup(x[j], c, cs, p), p);
        }
        for (Py_ssize_t j = 0; j < n; j++) o[j] = submod(o[j], off[r], p);
    }
    for (Py_ssize_t j = 0; j < n; j++) low[j] = w[j] - (uint64_t)off_low;
    Py_END_ALLOW_THREADS
    release(b, 7);
    Py_RETURN_NONE;
}

/* rns_rotsum(rows (K, n), low (n,), moduli (K,), elts (E,), n): in place, for each Galois element k in
   turn x <- x + sigma_k(x), sigma_k(x)(X) = x(X^k) mod X^n + 1 (a signed permutation of coefficients), in
   every channel. With k = 3^(m 2^j) this is CKKS's rotate-and-sum over slots, on exact integers. */
static PyObject *rns_rotsum(PyObject *self, PyObject *args)
{
    PyObject *o_rows, *o_low, *o_q, *o_e;
    Py_ssize_t n;
    buf_t b[4];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOn", &o_rows, &o_low, &o_q, &o_e, &n)) return NULL;
    if (get_buf(o_rows, &b[0], 1, "rows") || get_buf(o_low, &b[1], 1, "low") || get_buf(o_q, &b[2], 0, "moduli") ||
        get_buf(o_e, &b[3], 0, "elts")) {
        release(b, 4);
        return NULL;
    }
    Py_ssize_t K = NELEM(b[2]), E = NELEM(b[3]);
    if (n <= 0 || (n & (n - 1)) || NELEM(b[0]) != K * n || NELEM(b[1]) != n) {
        PyErr_SetString(PyExc_ValueError, "rns_rotsum: rows (K, n) and low (n,), n a power of two");
        release(b, 4);
        return NULL;
    }
    const uint64_t *elts = U64(b[3]);
    for (Py_ssize_t t = 0; t < E; t++) {
        if (elts[t] % 2 == 0 || elts[t] >= (uint64_t)(2 * n)) {
            PyErr_SetString(PyExc_ValueError, "rns_rotsum: Galois elements must be odd and below 2n");
            release(b, 4);
            return NULL;
        }
    }
    uint64_t *rows = U64(b[0]), *low = U64(b[1]);
    const uint64_t *q = U64(b[2]);
    uint64_t *tmp = (uint64_t *)PyMem_Malloc(n * sizeof(uint64_t));
    if (!tmp) {
        release(b, 4);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    uint64_t mask = (uint64_t)(2 * n - 1);
    for (Py_ssize_t t = 0; t < E; t++) {
        uint64_t k = elts[t];
        for (Py_ssize_t r = 0; r <= K; r++) {
            uint64_t *x = r < K ? rows + r * n : low;
            uint64_t p = r < K ? q[r] : 0; /* 0: modulo 2^64 */
            for (Py_ssize_t j = 0; j < n; j++) {
                uint64_t idx = ((uint64_t)j * k) & mask;
                if (idx < (uint64_t)n) tmp[idx] = x[j];
                else tmp[idx - n] = p ? (x[j] ? p - x[j] : 0) : (uint64_t)0 - x[j];
            }
            if (p)
                for (Py_ssize_t j = 0; j < n; j++) x[j] = addmod(x[j], tmp[j], p);
            else
                for (Py_ssize_t j = 0; j < n; j++) x[j] += tmp[j];
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(tmp);
    release(b, 4);
    Py_RETURN_NONE;
}

/* rns_combine(out (K, n), rows (T, K, n), lows (T, n), coeffs (T, K), coeffs_low (T,), shift, inv2s (K,),
               moduli (K,), n): out[r] = round(sum_t a_t v_t / 2^shift) mod moduli[r] (half up),
   for 0 <= shift <= 64; coeffs[t, r] = a_t mod moduli[r], coeffs_low[t] = a_t mod 2^64, inv2s[r] = 2^-shift
   mod moduli[r]. The remainder sum mod 2^shift comes exactly from the 2^64 channel. */
static PyObject *rns_combine(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_rows, *o_lows, *o_c, *o_cl, *o_inv, *o_q;
    int shift;
    Py_ssize_t n;
    buf_t b[7];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOOiOOn", &o_out, &o_rows, &o_lows, &o_c, &o_cl, &shift, &o_inv, &o_q, &n))
        return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_rows, &b[1], 0, "rows") || get_buf(o_lows, &b[2], 0, "lows") ||
        get_buf(o_c, &b[3], 0, "coeffs") || get_buf(o_cl, &b[4], 0, "coeffs_low") || get_buf(o_inv, &b[5], 0, "inv2s") ||
        get_buf(o_q, &b[6], 0, "moduli")) {
        release(b, 7);
        return NULL;
    }
    Py_ssize_t K = NELEM(b[6]), T = NELEM(b[4]);
    if (n <= 0 || shift < 0 || shift > 64 || T < 1 || NELEM(b[0]) != K * n || NELEM(b[1]) != T * K * n ||
        NELEM(b[2]) != T * n || NELEM(b[3]) != T * K || NELEM(b[5]) != K) {
        PyErr_SetString(PyExc_ValueError, "rns_combine: inconsistent shapes or shift out of [0, 64]");
        release(b, 7);
        return NULL;
    }
    uint64_t *out = U64(b[0]);
    const uint64_t *rows = U64(b[1]), *lows = U64(b[2]), *c = U64(b[3]), *cl = U64(b[4]), *inv = U64(b[5]);
    const uint64_t *q = U64(b[6]);
    uint64_t *rem = (uint64_t *)PyMem_Malloc(n * sizeof(uint64_t));
    if (!rem) {
        release(b, 7);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    uint64_t rmask = shift == 64 ? ~(uint64_t)0 : (((uint64_t)1 << shift) - 1);
    for (Py_ssize_t j = 0; j < n; j++) {
        uint64_t lw = 0;
        for (Py_ssize_t t = 0; t < T; t++) lw += lows[t * n + j] * cl[t];
        rem[j] = lw & rmask;
    }
    for (Py_ssize_t r = 0; r < K; r++) {
        uint64_t p = q[r], one_s = shoup_of(1, p), inv_s = shoup_of(inv[r], p);
        uint64_t *o = out + r * n;
        for (Py_ssize_t j = 0; j < n; j++) o[j] = 0;
        for (Py_ssize_t t = 0; t < T; t++) {
            uint64_t a = c[t * K + r], as = shoup_of(a, p);
            const uint64_t *x = rows + (t * K + r) * n;
            for (Py_ssize_t j = 0; j < n; j++) o[j] = addmod(o[j], mul_shoup(x[j], a, as, p), p);
        }
        if (shift > 0)
            for (Py_ssize_t j = 0; j < n; j++) {
                uint64_t carry = (rem[j] >> (shift - 1)) & 1;
                uint64_t d = submod(o[j], mul_shoup(rem[j], 1, one_s, p), p);
                o[j] = addmod(mul_shoup(d, inv[r], inv_s, p), carry, p);
            }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(rem);
    release(b, 7);
    Py_RETURN_NONE;
}

/* ---- bit packing for the wire ------------------------------------------------------------------------
   Residues modulo a b-bit prime travel in b bits, not 64 (the train preset's 50-bit primes: 22 % fewer
   bytes). Row r of a (m*k, n) stack uses widths[r % k] bits per value, little-endian bit order, each row
   padded to whole bytes. */

static Py_ssize_t packed_row_bytes(Py_ssize_t n, uint64_t w) { return (Py_ssize_t)((n * (Py_ssize_t)w + 7) / 8); }

static int check_widths(const uint64_t *w, Py_ssize_t k)
{
    for (Py_ssize_t i = 0; i < k; i++)
        if (w[i] < 1 || w[i] > 64) {
            PyErr_Format(PyExc_ValueError, "bit width %llu out of range 1..64", (unsigned long long)w[i]);
            return -1;
        }
    return 0;
}

/* pack_bits(a, widths, n) -> bytes */
static PyObject *pack_bits(PyObject *self, PyObject *args)
{
    PyObject *o_a, *o_w;
    Py_ssize_t n;
    buf_t b[2];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOn", &o_a, &o_w, &n)) return NULL;
    if (get_buf(o_a, &b[0], 0, "a") || get_buf(o_w, &b[1], 0, "widths")) {
        release(b, 2);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[1]);
    const uint64_t *a = U64(b[0]), *w = U64(b[1]);
    Py_ssize_t rows = stack_rows(&b[0], k, n, "a must hold m * len(widths) rows of n values");
    if (rows < 0 || check_widths(w, k)) {
        release(b, 2);
        return NULL;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t r = 0; r < rows; r++) total += packed_row_bytes(n, w[r % k]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (!out) {
        release(b, 2);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    int too_wide = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows && !too_wide; r++) {
        uint64_t width = w[r % k];
        uint64_t limit = width == 64 ? ~(uint64_t)0 : (((uint64_t)1 << width) - 1);
        const uint64_t *x = a + r * n;
        /* pieces of at most 32 bits keep the accumulator inside 64 bits on every compiler */
        unsigned lo_bits = width > 32 ? 32 : (unsigned)width, hi_bits = (unsigned)width - lo_bits;
        uint64_t acc = 0;
        unsigned nbits = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            if (x[j] > limit) {
                too_wide = 1;
                break;
            }
            acc |= (x[j] & (((uint64_t)1 << lo_bits) - 1)) << nbits;
            nbits += lo_bits;
            while (nbits >= 8) {
                *dst++ = (unsigned char)acc;
                acc >>= 8;
                nbits -= 8;
            }
            if (hi_bits) {
                acc |= (x[j] >> 32) << nbits;
                nbits += hi_bits;
                while (nbits >= 8) {
                    *dst++ = (unsigned char)acc;
                    acc >>= 8;
                    nbits -= 8;
                }
            }
        }
        if (nbits) *dst++ = (unsigned char)acc;
    }
    Py_END_ALLOW_THREADS
    release(b, 2);
    if (too_wide) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_ValueError, "a value does not fit its row's bit width");
        return NULL;
    }
    return out;
}

/* unpack_bits(out, raw, offset, widths, n): fill out (m*k rows of n) from raw[offset:]; returns the
   number of bytes read. raw must hold at least that many bytes after offset. */
static PyObject *unpack_bits(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_raw, *o_w;
    Py_ssize_t offset, n;
    buf_t b[2];
    Py_buffer raw;
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOnOn", &o_out, &o_raw, &offset, &o_w, &n)) return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_w, &b[1], 0, "widths")) {
        release(b, 2);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[1]);
    const uint64_t *w = U64(b[1]);
    Py_ssize_t rows = stack_rows(&b[0], k, n, "out must hold m * len(widths) rows of n values");
    if (rows < 0 || check_widths(w, k)) {
        release(b, 2);
        return NULL;
    }
    if (PyObject_GetBuffer(o_raw, &raw, PyBUF_SIMPLE) < 0) {
        release(b, 2);
        return NULL;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t r = 0; r < rows; r++) total += packed_row_bytes(n, w[r % k]);
    if (offset < 0 || raw.len - offset < total) {
        PyBuffer_Release(&raw);
        release(b, 2);
        PyErr_Format(PyExc_ValueError, "packed data truncated: %zd bytes needed, %zd available", total,
                     raw.len - offset);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)raw.buf + offset;
    uint64_t *o = U64(b[0]);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        uint64_t width = w[r % k];
        uint64_t *x = o + r * n;
        unsigned lo_bits = width > 32 ? 32 : (unsigned)width, hi_bits = (unsigned)width - lo_bits;
        uint64_t acc = 0;
        unsigned nbits = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            while (nbits < lo_bits) {
                acc |= (uint64_t)(*src++) << nbits;
                nbits += 8;
            }
            uint64_t v = acc & (((uint64_t)1 << lo_bits) - 1);
            acc >>= lo_bits;
            nbits -= lo_bits;
            if (hi_bits) {
                while (nbits < hi_bits) {
                    acc |= (uint64_t)(*src++) << nbits;
                    nbits += 8;
                }
                v |= (acc & (((uint64_t)1 << hi_bits) - 1)) << 32;
                acc >>= hi_bits;
                nbits -= hi_bits;
            }
            x[j] = v;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&raw);
    release(b, 2);
    return PyLong_FromSsize_t(total);
}

/* ---------------------------------------------------------------------------------------------
 * Rounded shares (mpclr.ring.rounding): h in RNS -> round(h 2^keep / Q) and back, multi-word
 * integers of 64-bit limbs (little-endian limb order), at most MAXW limbs.
 */
#define MAXW 40

/* acc[0..w) += y * r[0..lr) mod 2^(64 w) (r has lr limbs, lr <= w). */
static inline void mac_limbs(uint64_t *acc, Py_ssize_t w, uint64_t y, const uint64_t *r, Py_ssize_t lr, Py_ssize_t off)
{
    uint64_t carry = 0;
    for (Py_ssize_t j = 0; j < lr && off + j < w; j++) {
        uint64_t hi, lo;
        mul64(y, r[j], &hi, &lo);
        uint64_t s = acc[off + j] + lo;
        uint64_t c = s < lo;
        uint64_t s2 = s + carry;
        c += s2 < s;
        acc[off + j] = s2;
        carry = hi + c;
    }
    for (Py_ssize_t j = off + lr; j < w && carry; j++) {
        uint64_t s = acc[j] + carry;
        carry = s < carry;
        acc[j] = s;
    }
}

static inline void add_bit(uint64_t *acc, Py_ssize_t w, Py_ssize_t bit)
{
    uint64_t carry = (uint64_t)1 << (bit % 64);
    for (Py_ssize_t j = bit / 64; j < w && carry; j++) {
        uint64_t s = acc[j] + carry;
        carry = s < carry;
        acc[j] = s;
    }
}

/* round_high(out, x, moduli, ratios, inv, recip, keep, n): out[c] (keep/64 rounded up limbs) =
   round(2^keep frac(sum_i y_i / q_i)) mod 2^keep, y_i = x_i inv_i mod q_i, with recip[i] = floor(2^(keep+128) / q_i). */
static PyObject *round_high(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_x, *o_q, *o_ratio, *o_inv, *o_recip;
    Py_ssize_t keep, n;
    buf_t b[6];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOOOnn", &o_out, &o_x, &o_q, &o_ratio, &o_inv, &o_recip, &keep, &n)) return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_x, &b[1], 0, "x") || get_buf(o_q, &b[2], 0, "moduli") ||
        get_buf(o_ratio, &b[3], 0, "ratios") || get_buf(o_inv, &b[4], 0, "inv") || get_buf(o_recip, &b[5], 0, "recip")) {
        release(b, 6);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[2]);
    Py_ssize_t w = (keep + 128 + 63) / 64, lv = (keep + 63) / 64;
    if (keep <= 0 || w > MAXW || k == 0 || NELEM(b[3]) != 2 * k || NELEM(b[4]) != k || NELEM(b[5]) != k * w ||
        check_shape(NELEM(b[1]), n, k, "x") || check_shape(NELEM(b[0]), n, lv, "out")) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "round_high: inconsistent sizes");
        release(b, 6);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *x = U64(b[1]), *q = U64(b[2]), *ratio = U64(b[3]), *inv = U64(b[4]), *recip = U64(b[5]);
    Py_ssize_t width = keep + 128;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0; c < n; c++) {
        uint64_t acc[MAXW];
        memset(acc, 0, sizeof acc);
        for (Py_ssize_t i = 0; i < k; i++) {
            uint64_t hi, lo;
            mul64(x[i * n + c], inv[i], &hi, &lo);
            uint64_t y = barrett128(hi, lo, ratio[2 * i], ratio[2 * i + 1], q[i]);
            mac_limbs(acc, w, y, recip + i * w, w, 0);
        }
        add_bit(acc, w, 127); /* round half up at the guard's top bit */
        if (width % 64) acc[w - 1] &= ((uint64_t)1 << (width % 64)) - 1; /* mod 2^(keep + 128) */
        for (Py_ssize_t j = 0; j < lv; j++) out[c * lv + j] = acc[2 + j];
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
}

/* round_back(out, v, moduli, ratios, qlimbs, pow32, keep, n): out[i, c] = floor((v_c Q + 2^(keep-1)) / 2^keep)
   mod q_i; pow32[i, t] = 2^(32 t) mod q_i for t < 2 len(qlimbs). */
static PyObject *round_back(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_v, *o_q, *o_ratio, *o_ql, *o_pw;
    Py_ssize_t keep, n;
    buf_t b[6];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOOOnn", &o_out, &o_v, &o_q, &o_ratio, &o_ql, &o_pw, &keep, &n)) return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_v, &b[1], 0, "v") || get_buf(o_q, &b[2], 0, "moduli") ||
        get_buf(o_ratio, &b[3], 0, "ratios") || get_buf(o_ql, &b[4], 0, "qlimbs") || get_buf(o_pw, &b[5], 0, "pow32")) {
        release(b, 6);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[2]), lq = NELEM(b[4]), lv = (keep + 63) / 64;
    Py_ssize_t w = lv + lq + 1;
    if (keep <= 0 || w > MAXW || k == 0 || NELEM(b[3]) != 2 * k || NELEM(b[5]) != 2 * k * lq ||
        check_shape(NELEM(b[1]), n, lv, "v") || check_shape(NELEM(b[0]), n, k, "out")) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "round_back: inconsistent sizes");
        release(b, 6);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *v = U64(b[1]), *q = U64(b[2]), *ratio = U64(b[3]), *ql = U64(b[4]), *pow32 = U64(b[5]);
    (void)ratio;
    Py_ssize_t a = keep / 64, sh = keep % 64;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0; c < n; c++) {
        uint64_t acc[MAXW], h[MAXW];
        memset(acc, 0, sizeof acc);
        for (Py_ssize_t j = 0; j < lv; j++) mac_limbs(acc, w, v[c * lv + j], ql, lq, j);
        add_bit(acc, w, keep - 1);
        Py_ssize_t lh = w - a;
        for (Py_ssize_t t = 0; t < lh; t++) {
            uint64_t lo_part = acc[a + t] >> sh;
            uint64_t hi_part = (sh && a + t + 1 < w) ? acc[a + t + 1] << (64 - sh) : 0;
            h[t] = lo_part | hi_part;
        }
        if (lh > lq) lh = lq; /* h <= Q */
        for (Py_ssize_t i = 0; i < k; i++) {
            uint64_t m = q[i];
#if defined(__SIZEOF_INT128__)
            /* sum_t half_t (2^(32 t) mod q): 2 lh terms below 2^93 each, one 128-bit remainder */
            const uint64_t *pw = pow32 + i * 2 * lq;
            u128 sum = 0;
            for (Py_ssize_t t = 0; t < lh; t++)
                sum += (u128)(h[t] & 0xFFFFFFFFu) * pw[2 * t] + (u128)(h[t] >> 32) * pw[2 * t + 1];
            out[i * n + c] = (uint64_t)(sum % m);
#else
            uint64_t r = 0;
            for (Py_ssize_t t = lh - 1; t >= 0; t--) {
                for (int half = 1; half >= 0; half--) { /* r <- (r 2^32 + 32-bit half) mod q: below q^2 */
                    uint64_t part = half ? h[t] >> 32 : h[t] & 0xFFFFFFFFu;
                    r = barrett128(r >> 32, (r << 32) | part, ratio[2 * i], ratio[2 * i + 1], m);
                }
            }
            out[i * n + c] = r;
#endif
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"round_high", round_high, METH_VARARGS,
     "round_high(out, x, moduli, ratios, inv, recip, keep, n): a share's keep high bits (mpclr.ring.rounding)."},
    {"round_back", round_back, METH_VARARGS,
     "round_back(out, v, moduli, ratios, qlimbs, pow32, keep, n): the inverse of round_high up to the rounding."},
    {"pack_bits", pack_bits, METH_VARARGS,
     "pack_bits(a, widths, n) -> bytes: row r in widths[r % k] bits per value, rows padded to bytes."},
    {"unpack_bits", unpack_bits, METH_VARARGS,
     "unpack_bits(out, raw, offset, widths, n) -> bytes read: the inverse of pack_bits."},
    {"rns_lift", rns_lift, METH_VARARGS,
     "rns_lift(out, out_low, x, moduli, inv, hat, qmod, hat_low, q_low, n) -> max |X|/Q: centered lift."},
    {"rns_masks", rns_masks, METH_VARARGS,
     "rns_masks(out, out_low, words, moduli, pow64, offset, offset_low, n): uniform masks in every channel."},
    {"rns_rotsum", rns_rotsum, METH_VARARGS,
     "rns_rotsum(rows, low, moduli, elts, n): x <- x + sigma_k(x) for each Galois element, in every channel."},
    {"rns_combine", rns_combine, METH_VARARGS,
     "rns_combine(out, rows, lows, coeffs, coeffs_low, shift, inv2s, moduli, n): round(sum a v / 2^s) mod q."},
    {"all_reduced", all_reduced, METH_VARARGS, "all_reduced(a, moduli, n): every value below its row's modulus."},
    {"lift_signed", lift_signed, METH_VARARGS,
     "lift_signed(out, coeffs, moduli, n): out[p, r] = coeffs[p] mod moduli[r] for int64 coefficients."},
    {"ntt_forward", ntt_forward, METH_VARARGS,
     "ntt_forward(data, roots, roots_shoup, moduli, n): in-place forward negacyclic NTT, SEAL's order."},
    {"ntt_inverse", ntt_inverse, METH_VARARGS,
     "ntt_inverse(data, inv_roots, inv_roots_shoup, moduli, n_inv, n_inv_shoup, n): in-place inverse NTT."},
    {"add_mod", add_mod, METH_VARARGS, "add_mod(out, a, b, moduli, n): out = a + b mod q, row-wise."},
    {"sub_mod", sub_mod, METH_VARARGS, "sub_mod(out, a, b, moduli, n): out = a - b mod q, row-wise."},
    {"mul_mod", mul_mod, METH_VARARGS,
     "mul_mod(out, a, b, moduli, ratios, n): out = a * b mod q, row-wise, Barrett with floor(2^128/q)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "Exact RNS/NTT kernels bit-compatible with SEAL 4.1.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
