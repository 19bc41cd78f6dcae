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

/* ---- wide integers for the collective refresh ------------------------------------------------------
   Refresh combines masked values of up to ~2^126 with public dyadic coefficients a / 2^s. Values are
   signed 128-bit (hi: int64, lo: uint64 arrays); products with |a| < 2^63 are summed in 192-bit two's
   complement, rounded, shifted and reduced modulo each prime. All exact. */

typedef struct { uint64_t w[3]; } u192;

static inline u192 u192_from_i128(int64_t hi, uint64_t lo)
{
    u192 r;
    r.w[0] = lo;
    r.w[1] = (uint64_t)hi;
    r.w[2] = hi < 0 ? ~(uint64_t)0 : 0;
    return r;
}

static inline u192 u192_add(u192 a, u192 b)
{
    u192 r;
    uint64_t c;
    r.w[0] = a.w[0] + b.w[0];
    c = r.w[0] < a.w[0];
    uint64_t t = a.w[1] + c;
    uint64_t c1 = t < c;
    r.w[1] = t + b.w[1];
    c1 += r.w[1] < t;
    r.w[2] = a.w[2] + b.w[2] + c1;
    return r;
}

static inline u192 u192_neg(u192 a)
{
    u192 r = {{~a.w[0], ~a.w[1], ~a.w[2]}};
    u192 one = {{1, 0, 0}};
    return u192_add(r, one);
}

/* (signed 128 value) * (signed 64 coefficient) as 192-bit two's complement. */
static inline u192 mul_i128_i64(int64_t hi, uint64_t lo, int64_t a)
{
    int neg = 0;
    u192 v = u192_from_i128(hi, lo);
    if (hi < 0) { v = u192_neg(v); neg = !neg; }
    uint64_t ua = a < 0 ? (uint64_t)(-(a + 1)) + 1 : (uint64_t)a;
    if (a < 0) neg = !neg;
    /* |v| < 2^127 occupies w[0], w[1] */
    uint64_t p0h, p0l, p1h, p1l;
    mul64(v.w[0], ua, &p0h, &p0l);
    mul64(v.w[1], ua, &p1h, &p1l);
    u192 r;
    r.w[0] = p0l;
    r.w[1] = p0h + p1l;
    r.w[2] = p1h + (r.w[1] < p0h);
    return neg ? u192_neg(r) : r;
}

/* arithmetic shift right of a 192-bit two's complement value by s (0 <= s < 128) */
static inline u192 u192_sar(u192 a, int s)
{
    if (s == 0) return a;
    u192 r;
    int64_t top = (int64_t)a.w[2];
    if (s < 64) {
        r.w[0] = (a.w[0] >> s) | (a.w[1] << (64 - s));
        r.w[1] = (a.w[1] >> s) | (a.w[2] << (64 - s));
        r.w[2] = (uint64_t)(top >> s);
    } else if (s == 64) {
        r.w[0] = a.w[1];
        r.w[1] = a.w[2];
        r.w[2] = (uint64_t)(top >> 63);
    } else {
        int t = s - 64;
        r.w[0] = (a.w[1] >> t) | (a.w[2] << (64 - t));
        r.w[1] = (uint64_t)(top >> t);
        r.w[2] = (uint64_t)(top >> 63);
    }
    return r;
}

/* value mod q in [0, q) for a 192-bit two's complement value; pow64 = 2^64 mod q, pow128 = 2^128 mod q */
static inline uint64_t u192_mod(u192 a, uint64_t q, uint64_t pow64, uint64_t pow128, uint64_t r1, uint64_t r0)
{
    int neg = (int64_t)a.w[2] < 0;
    if (neg) a = u192_neg(a);
    uint64_t x0 = a.w[0] % q, x1 = a.w[1] % q, x2 = a.w[2] % q;
    uint64_t hi, lo;
    mul64(x1, pow64, &hi, &lo);
    uint64_t t1 = barrett128(hi, lo, r1, r0, q);
    mul64(x2, pow128, &hi, &lo);
    uint64_t t2 = barrett128(hi, lo, r1, r0, q);
    uint64_t s = x0 + t1;
    s = s >= q ? s - q : s;
    s += t2;
    s = s >= q ? s - q : s;
    return neg && s ? q - s : s;
}

/* scaled_sum_mod(out (R, n) uint64, hi (T, n) int64, lo (T, n) uint64, coeffs (T,) int64, shift, moduli (R,),
                  ratios (R, 2), n): out[r, i] = round(sum_t coeffs[t] * v_t[i] / 2^shift) mod moduli[r] */
static PyObject *scaled_sum_mod(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_hi, *o_lo, *o_c, *o_q, *o_ratio;
    int shift;
    Py_ssize_t n;
    buf_t b[6];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOiOOn", &o_out, &o_hi, &o_lo, &o_c, &shift, &o_q, &o_ratio, &n)) return NULL;
    if (get_buf(o_out, &b[0], 1, "out") || get_buf(o_hi, &b[1], 0, "hi") || get_buf(o_lo, &b[2], 0, "lo") ||
        get_buf(o_c, &b[3], 0, "coeffs") || get_buf(o_q, &b[4], 0, "moduli") || get_buf(o_ratio, &b[5], 0, "ratios")) {
        release(b, 6);
        return NULL;
    }
    Py_ssize_t T = NELEM(b[3]), R = NELEM(b[4]);
    if (R > 64 || T > 64) {
        PyErr_SetString(PyExc_ValueError, "scaled_sum_mod supports at most 64 moduli and 64 terms");
        release(b, 6);
        return NULL;
    }
    if (n <= 0 || shift < 0 || shift > 127 || NELEM(b[1]) != T * n || NELEM(b[2]) != T * n ||
        NELEM(b[0]) != R * n || NELEM(b[5]) != 2 * R) {
        PyErr_SetString(PyExc_ValueError, "scaled_sum_mod: inconsistent shapes or shift out of [0, 127]");
        release(b, 6);
        return NULL;
    }
    uint64_t *out = U64(b[0]), *q = U64(b[4]), *ratio = U64(b[5]);
    const int64_t *hi = (const int64_t *)b[1].view.buf, *c = (const int64_t *)b[3].view.buf;
    const uint64_t *lo = U64(b[2]);
    int overflow = 0;
    Py_BEGIN_ALLOW_THREADS
    uint64_t pow64[64], pow128[64];
    for (Py_ssize_t r = 0; r < R; r++) {
        uint64_t p = (((uint64_t)1 << 63) % q[r]) * 2 % q[r];
        pow64[r] = p;
        uint64_t h, l;
        mul64(p, p, &h, &l);
        pow128[r] = barrett128(h, l, ratio[2 * r], ratio[2 * r + 1], q[r]);
    }
    u192 half = {{0, 0, 0}};
    if (shift > 0) {
        if (shift - 1 < 64) half.w[0] = (uint64_t)1 << (shift - 1);
        else half.w[1] = (uint64_t)1 << (shift - 1 - 64);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        u192 acc = half;
        for (Py_ssize_t t = 0; t < T; t++) acc = u192_add(acc, mul_i128_i64(hi[t * n + i], lo[t * n + i], c[t]));
        acc = u192_sar(acc, shift);
        /* the rounded result must fit in a signed 128-bit value */
        if (!((acc.w[2] == 0 && (int64_t)acc.w[1] >= 0) || (acc.w[2] == ~(uint64_t)0 && (int64_t)acc.w[1] < 0)))
            overflow = 1;
        for (Py_ssize_t r = 0; r < R; r++)
            out[r * n + i] = u192_mod(acc, q[r], pow64[r], pow128[r], ratio[2 * r], ratio[2 * r + 1]);
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    return PyBool_FromLong(!overflow);
}

/* crt_lift_128(out_hi int64 (n,), out_lo uint64 (n,), residues (k, n), moduli (k,), garner (k,) uint64,
                prefix_hi/prefix_lo (k,) the products q_0..q_{j-1} as unsigned 128, half_hi/half_lo, Q_hi/Q_lo, n)
   Centered CRT reconstruction for moduli whose product is below 2^127 (Garner's algorithm). */
static PyObject *crt_lift_128(PyObject *self, PyObject *args)
{
    PyObject *o_hi, *o_lo, *o_res, *o_q, *o_g;
    unsigned long long Qh, Ql;
    Py_ssize_t n;
    buf_t b[5];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOOOKKn", &o_hi, &o_lo, &o_res, &o_q, &o_g, &Qh, &Ql, &n)) return NULL;
    if (get_buf(o_hi, &b[0], 1, "out_hi") || get_buf(o_lo, &b[1], 1, "out_lo") || get_buf(o_res, &b[2], 0, "residues") ||
        get_buf(o_q, &b[3], 0, "moduli") || get_buf(o_g, &b[4], 0, "garner")) {
        release(b, 5);
        return NULL;
    }
    Py_ssize_t k = NELEM(b[3]);
    if (n <= 0 || k < 1 || k > 3 || NELEM(b[2]) != k * n || NELEM(b[0]) != n || NELEM(b[1]) != n || NELEM(b[4]) != k) {
        PyErr_SetString(PyExc_ValueError, "crt_lift_128: 1 to 3 moduli, shapes (k, n) and (n,)");
        release(b, 5);
        return NULL;
    }
#if defined(__SIZEOF_INT128__)
    const uint64_t *res = U64(b[2]), *q = U64(b[3]), *g = U64(b[4]);
    int64_t *ohi = (int64_t *)b[0].view.buf;
    uint64_t *olo = U64(b[1]);
    Py_BEGIN_ALLOW_THREADS
    u128 Q = ((u128)Qh << 64) | Ql;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Garner: x = v0 + q0 (v1 + q1 v2) with v_j = (r_j - x_j-partial) * g_j mod q_j */
        u128 x = res[i];
        u128 prefix = q[0];
        for (Py_ssize_t j = 1; j < k; j++) {
            uint64_t qj = q[j];
            uint64_t xm = (uint64_t)(x % qj);
            uint64_t d = res[j * n + i] >= xm ? res[j * n + i] - xm : res[j * n + i] + qj - xm;
            uint64_t v = (uint64_t)(((u128)d * g[j]) % qj);
            x += prefix * v;
            prefix *= qj;
        }
        if (x > Q / 2) {
            u128 neg = Q - x; /* value is -neg */
            u128 two = ~neg + 1;
            ohi[i] = (int64_t)(uint64_t)(two >> 64);
            olo[i] = (uint64_t)two;
        } else {
            ohi[i] = (int64_t)(uint64_t)(x >> 64);
            olo[i] = (uint64_t)x;
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 5);
    Py_RETURN_NONE;
#else
    release(b, 5);
    PyErr_SetString(PyExc_NotImplementedError, "crt_lift_128 needs a compiler with 128-bit integers");
    return NULL;
#endif
}

/* wide_rotsum(hi int64 (n,), lo uint64 (n,), elts uint64 (r,), n): in place, for each Galois element k
   in turn x <- x + sigma_k(x), where sigma_k(x)(X) = x(X^k) mod X^n + 1 acts on coefficients as a signed
   permutation. With k = 3^(m 2^j) this is CKKS's rotate-and-sum over slots, done on exact integers. */
static PyObject *wide_rotsum(PyObject *self, PyObject *args)
{
    PyObject *o_hi, *o_lo, *o_e;
    Py_ssize_t n;
    buf_t b[3];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "OOOn", &o_hi, &o_lo, &o_e, &n)) return NULL;
    if (get_buf(o_hi, &b[0], 1, "hi") || get_buf(o_lo, &b[1], 1, "lo") || get_buf(o_e, &b[2], 0, "elts")) {
        release(b, 3);
        return NULL;
    }
    if (n <= 0 || (n & (n - 1)) || NELEM(b[0]) != n || NELEM(b[1]) != n) {
        PyErr_SetString(PyExc_ValueError, "wide_rotsum: hi and lo must hold n values, n a power of two");
        release(b, 3);
        return NULL;
    }
    Py_ssize_t r = NELEM(b[2]);
    const uint64_t *elts = U64(b[2]);
    for (Py_ssize_t t = 0; t < r; t++) {
        if (elts[t] % 2 == 0 || elts[t] >= (uint64_t)(2 * n)) {
            PyErr_SetString(PyExc_ValueError, "wide_rotsum: Galois elements must be odd and below 2n");
            release(b, 3);
            return NULL;
        }
    }
    int64_t *hi = (int64_t *)b[0].view.buf;
    uint64_t *lo = U64(b[1]);
    int64_t *thi = (int64_t *)PyMem_Malloc(n * sizeof(int64_t));
    uint64_t *tlo = (uint64_t *)PyMem_Malloc(n * sizeof(uint64_t));
    if (!thi || !tlo) {
        PyMem_Free(thi);
        PyMem_Free(tlo);
        release(b, 3);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    uint64_t mask = (uint64_t)(2 * n - 1);
    for (Py_ssize_t t = 0; t < r; t++) {
        uint64_t k = elts[t];
        for (Py_ssize_t j = 0; j < n; j++) {
            uint64_t idx = ((uint64_t)j * k) & mask;
            if (idx < (uint64_t)n) {
                thi[idx] = hi[j];
                tlo[idx] = lo[j];
            } else {
                /* negate the 128-bit value */
                uint64_t nlo = ~lo[j] + 1;
                thi[idx - n] = (int64_t)(~(uint64_t)hi[j] + (nlo == 0));
                tlo[idx - n] = nlo;
            }
        }
        for (Py_ssize_t j = 0; j < n; j++) {
            uint64_t s = lo[j] + tlo[j];
            hi[j] = (int64_t)((uint64_t)hi[j] + (uint64_t)thi[j] + (s < lo[j]));
            lo[j] = s;
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(thi);
    PyMem_Free(tlo);
    release(b, 3);
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

static PyMethodDef methods[] = {
    {"pack_bits", pack_bits, METH_VARARGS,
     "pack_bits(a, widths, n) -> bytes: row r in widths[r % k] bits per value, rows padded to bytes."},
    {"unpack_bits", unpack_bits, METH_VARARGS,
     "unpack_bits(out, raw, offset, widths, n) -> bytes read: the inverse of pack_bits."},
    {"wide_rotsum", wide_rotsum, METH_VARARGS,
     "wide_rotsum(hi, lo, elts, n): x <- x + sigma_k(x) for each Galois element k, on signed 128-bit integers."},
    {"scaled_sum_mod", scaled_sum_mod, METH_VARARGS,
     "scaled_sum_mod(out, hi, lo, coeffs, shift, moduli, ratios, n): round(sum coeffs*v / 2^shift) mod q; "
     "returns False if a result overflowed 128 bits."},
    {"crt_lift_128", crt_lift_128, METH_VARARGS,
     "crt_lift_128(out_hi, out_lo, residues, moduli, garner, Q_hi, Q_lo, n): centered CRT for Q < 2^127."},
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
