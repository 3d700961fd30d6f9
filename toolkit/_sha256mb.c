/* Multi-buffer SHA-256: the digests of many buffers at once, one buffer per SIMD lane
 * (docs/architecture.md, "Multi-buffer SHA-256"; toolkit/blob_ids.py chooses whether it runs).
 *
 * sha256_many(buffers, level=None) -> list of 32-byte digests, in the order given. Each digest is the
 * plain SHA-256 (FIPS 180-4) of its buffer; only the speed differs from hashlib. The buffers are held
 * (buffer protocol, C-contiguous) and hashed with the GIL released.
 *
 * The engines need AVX2 (8 lanes of 32-bit words), chosen at run time with __builtin_cpu_supports, each
 * compiled with a per-function target attribute: the module builds without -mavx2 and imports on any
 * x86-64. levels() names those this CPU runs ("avx512vl": the same 8 lanes with AVX-512VL's rotate and
 * three-input logic instructions; "avx2"); on other CPUs and compilers it is empty and sha256_many raises. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* SHA256MB_NO_ENGINES: build as for another architecture (tests/unit/test_blob_ids.py checks that build) */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && !defined(SHA256MB_NO_ENGINES)
#define MB_X86 1
#include <immintrin.h>
#else
#define MB_X86 0
#endif

#define LANES 8

typedef struct {
    const uint8_t *p;
    size_t len;
} Msg;

#if MB_X86
/* FIPS 180-4, 4.2.2 and 5.3.3 */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
static const uint32_t IV256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* one lane's message: its whole blocks read in place, then its last one or two blocks (the rest of the
 * message, 0x80, zeros, the bit length) from ``tail`` */
typedef struct {
    const Msg *msg;      /* NULL: idle (hashes ``idle_block``, the result unused) */
    const uint8_t *p;    /* the next whole block in the message */
    size_t whole;        /* whole blocks left in the message */
    int tail_left;       /* tail blocks left (1 or 2 at the start) */
    int tail_at;         /* offset of the next tail block in ``tail`` */
    uint8_t tail[128];
} Lane;

static const uint8_t idle_block[64];

static int lane_refill(Lane *lane, uint32_t st[8][LANES], int l, const Msg *msgs, const size_t *order, size_t n,
                       size_t *next) {
    if (*next >= n) {
        lane->msg = NULL;
        return 0;
    }
    const Msg *m = &msgs[order[(*next)++]];
    size_t rest = m->len % 64;
    lane->msg = m;
    lane->p = m->p;
    lane->whole = m->len / 64;
    lane->tail_left = rest + 9 <= 64 ? 1 : 2;
    lane->tail_at = 0;
    memset(lane->tail, 0, sizeof lane->tail);
    if (rest)
        memcpy(lane->tail, m->p + (m->len - rest), rest);
    lane->tail[rest] = 0x80;
    uint64_t bits = (uint64_t)m->len * 8;
    uint8_t *end = lane->tail + 64 * lane->tail_left;
    for (int i = 1; i <= 8; i++, bits >>= 8)
        end[-i] = (uint8_t)bits;
    for (int w = 0; w < 8; w++)
        st[w][l] = IV256[w];
    return 1;
}

static const uint8_t *lane_block(const Lane *lane) {
    if (lane->msg == NULL)
        return idle_block;
    return lane->whole ? lane->p : lane->tail + lane->tail_at;
}

/* past the block just hashed; 1 when that was the message's last */
static int lane_advance(Lane *lane) {
    if (lane->whole) {
        lane->whole--;
        lane->p += 64;
        return 0;
    }
    lane->tail_at += 64;
    return --lane->tail_left == 0;
}

static void lane_digest(uint32_t st[8][LANES], int l, uint8_t *out) {
    for (int w = 0; w < 8; w++) {
        uint32_t v = st[w][l];
        out[4 * w] = (uint8_t)(v >> 24);
        out[4 * w + 1] = (uint8_t)(v >> 16);
        out[4 * w + 2] = (uint8_t)(v >> 8);
        out[4 * w + 3] = (uint8_t)v;
    }
}

/* AVX2: rotates are two shifts and an or */
#define MB_TARGET "avx2"
#define MB_NAME(x) avx2_##x
#define MB_ROR(x, n) _mm256_or_si256(_mm256_srli_epi32((x), (n)), _mm256_slli_epi32((x), 32 - (n)))
#define MB_XOR3(a, b, c) _mm256_xor_si256(_mm256_xor_si256((a), (b)), (c))
#define MB_CH(e, f, g) _mm256_xor_si256(_mm256_and_si256((e), (f)), _mm256_andnot_si256((e), (g)))
#define MB_MAJ(a, b, c) _mm256_or_si256(_mm256_and_si256((a), (b)), _mm256_and_si256((c), _mm256_or_si256((a), (b))))
#include "_sha256mb_lanes.h"
#undef MB_TARGET
#undef MB_NAME
#undef MB_ROR
#undef MB_XOR3
#undef MB_CH
#undef MB_MAJ

/* AVX-512VL on 256-bit vectors: one instruction per rotate, per three-input xor, choice and majority */
#define MB_TARGET "avx2,avx512f,avx512vl"
#define MB_NAME(x) avx512vl_##x
#define MB_ROR(x, n) _mm256_ror_epi32((x), (n))
#define MB_XOR3(a, b, c) _mm256_ternarylogic_epi32((a), (b), (c), 0x96)
#define MB_CH(e, f, g) _mm256_ternarylogic_epi32((e), (f), (g), 0xca)
#define MB_MAJ(a, b, c) _mm256_ternarylogic_epi32((a), (b), (c), 0xe8)
#include "_sha256mb_lanes.h"
#endif

typedef void (*HashMany)(const Msg *, const size_t *, size_t, uint8_t *);

static const struct {
    const char *name;
    HashMany fn;
} ENGINES[] = {
#if MB_X86
    {"avx512vl", avx512vl_hash_many},
    {"avx2", avx2_hash_many},
#endif
    {NULL, NULL}};

static int engine_runs(int i) {
#if MB_X86
    __builtin_cpu_init();
    if (strcmp(ENGINES[i].name, "avx512vl") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512vl");
    if (strcmp(ENGINES[i].name, "avx2") == 0)
        return __builtin_cpu_supports("avx2");
#endif
    (void)i;
    return 0;
}

/* the batch is hashed longest first: a lane that finishes takes the next message, so the lanes end close
 * together (the last few messages, the shortest, leave lanes idle for the fewest blocks) */
typedef struct {
    size_t len, index;
} Key;

static int longer_first(const void *x, const void *y) {
    const Key *a = x, *b = y;
    if (a->len != b->len)
        return a->len < b->len ? 1 : -1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static PyObject *levels(PyObject *self, PyObject *noargs) {
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (int i = 0; ENGINES[i].name != NULL; i++) {
        if (!engine_runs(i))
            continue;
        PyObject *name = PyUnicode_FromString(ENGINES[i].name);
        if (name == NULL || PyList_Append(out, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(name);
    }
    return out;
}

static PyObject *sha256_many(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"buffers", "level", NULL};
    PyObject *seq_in, *level = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:sha256_many", kwlist, &seq_in, &level))
        return NULL;
    HashMany fn = NULL;
    for (int i = 0; ENGINES[i].name != NULL && fn == NULL; i++) {
        if (level != Py_None) {
            if (!PyUnicode_Check(level))
                return PyErr_Format(PyExc_TypeError, "level must be a str or None");
            if (PyUnicode_CompareWithASCIIString(level, ENGINES[i].name) != 0)
                continue;
            if (!engine_runs(i))
                return PyErr_Format(PyExc_RuntimeError, "this CPU does not run the %s engine", ENGINES[i].name);
        } else if (!engine_runs(i)) {
            continue;
        }
        fn = ENGINES[i].fn;
    }
    if (fn == NULL) {
        if (level != Py_None)
            return PyErr_Format(PyExc_ValueError, "no engine named %R", level);
        return PyErr_Format(PyExc_RuntimeError, "multi-buffer SHA-256 needs an x86-64 CPU with AVX2");
    }
    PyObject *seq = PySequence_Fast(seq_in, "sha256_many takes a sequence of buffers");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    Msg *msgs = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(Msg));
    size_t *order = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(size_t));
    Key *keys = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(Key));
    uint8_t *digests = PyMem_Malloc((n ? (size_t)n : 1) * 32);
    PyObject *out = NULL;
    Py_ssize_t held = 0;
    if (views == NULL || msgs == NULL || order == NULL || keys == NULL || digests == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < n; held++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        msgs[held].p = views[held].buf;
        msgs[held].len = (size_t)views[held].len;
        keys[held].len = (size_t)views[held].len;
        keys[held].index = (size_t)held;
    }
    Py_BEGIN_ALLOW_THREADS
    qsort(keys, (size_t)n, sizeof(Key), longer_first);
    for (Py_ssize_t i = 0; i < n; i++)
        order[i] = keys[i].index;
    fn(msgs, order, (size_t)n, digests);
    Py_END_ALLOW_THREADS
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyBytes_FromStringAndSize((const char *)digests + 32 * i, 32);
        if (d == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, d);
    }
done:
    for (Py_ssize_t i = 0; i < held; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(msgs);
    PyMem_Free(order);
    PyMem_Free(keys);
    PyMem_Free(digests);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"sha256_many", (PyCFunction)(void (*)(void))sha256_many, METH_VARARGS | METH_KEYWORDS,
     "sha256_many(buffers, level=None) -> list of the 32-byte SHA-256 digests of the buffers, in order.\n"
     "level: the engine (one of levels()); None: the fastest this CPU runs."},
    {"levels", levels, METH_NOARGS, "levels() -> the engines this CPU runs, fastest first (empty: none)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "toolkit._sha256mb",
                                    "Multi-buffer SHA-256 (docs/architecture.md, \"Multi-buffer SHA-256\").", -1,
                                    methods};

PyMODINIT_FUNC PyInit__sha256mb(void) { return PyModule_Create(&module); }
