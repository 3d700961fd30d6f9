/* One zstd frame decompressed by the system's libzstd, loaded at run time (docs/architecture.md, "The system's
 * libzstd for reading records").
 *
 * python-zstandard bundles libzstd built without its x86-64 assembly Huffman decoder; Debian's libzstd1 has it
 * and decodes the literals of mail (base64 attachments, mostly) ~14 % faster (bench/RESULTS.md). So a record of one
 * frame of a declared size (toolkit/pack.py: _open_usual, _iter_plain) is decompressed here where that library
 * loads. Nothing is linked at build time and no zstd header is needed: the few functions of libzstd's stable API
 * used here are looked up with
 * dlopen/dlsym, and where the library or a function is missing, load() returns False and the caller keeps
 * python-zstandard. The format is zstd's (RFC 8878) either way: the two decoders give the same bytes, and the
 * caller checks their size and SHA-256 as before.
 *
 * load() -> bool, version() -> int (libzstd's ZSTD_versionNumber, 0 when not loaded),
 * decompress(frame, size, max_window) -> bytes of exactly ``size``, or None when the data is not one zstd frame
 * that declares that content size and a window of at most ``max_window`` bytes, is damaged, or decodes to another
 * size (the caller then reads the record the slow way, which names the fault). The GIL is released while a frame
 * is decoded; the one decompression context is taken under a lock of its own, acquired without the GIL (so a thread
 * waiting for it never holds the GIL the decoding thread needs back). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>

typedef struct ZSTD_DCtx_s ZSTD_DCtx;

/* zstd.h, stable API (unchanged since v1.3) */
#define ZSTD_CONTENTSIZE_UNKNOWN (0ULL - 1)
#define ZSTD_CONTENTSIZE_ERROR (0ULL - 2)

static ZSTD_DCtx *(*create_dctx)(void);
static size_t (*decompress_dctx)(ZSTD_DCtx *, void *, size_t, const void *, size_t);
static unsigned long long (*frame_content_size)(const void *, size_t);
static unsigned (*is_error)(size_t);
static unsigned (*version_number)(void);
static ZSTD_DCtx *dctx;
static PyThread_type_lock dctx_lock;
static int tried;

/* the oldest libzstd whose ZSTD_getFrameContentSize and single-pass decompression this relies on */
#define MIN_VERSION 10300
#define ZSTD_MAGIC 0xFD2FB528u

/* the window a frame asks for (RFC 8878, 3.1.1.1.2), when its header has a Window_Descriptor; a single-segment
 * frame has none: its window is its content size */
static int window_within(const unsigned char *p, size_t n, unsigned long long max_window) {
    if (n < 6 || (p[0] | p[1] << 8 | p[2] << 16 | (unsigned)p[3] << 24) != ZSTD_MAGIC)
        return 0;
    if (p[4] & 0x20)
        return 1;
    unsigned exponent = p[5] >> 3, mantissa = p[5] & 7;
    unsigned long long base = 1ULL << (10 + exponent);
    return base + (base / 8) * mantissa <= max_window;
}

static int load_library(void) {
    if (tried)
        return dctx != NULL;
    tried = 1;
    void *lib = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        return 0;
    *(void **)&create_dctx = dlsym(lib, "ZSTD_createDCtx");
    *(void **)&decompress_dctx = dlsym(lib, "ZSTD_decompressDCtx");
    *(void **)&frame_content_size = dlsym(lib, "ZSTD_getFrameContentSize");
    *(void **)&is_error = dlsym(lib, "ZSTD_isError");
    *(void **)&version_number = dlsym(lib, "ZSTD_versionNumber");
    if (!create_dctx || !decompress_dctx || !frame_content_size || !is_error || !version_number ||
        version_number() < MIN_VERSION) {
        version_number = NULL;
        dlclose(lib);
        return 0;
    }
    dctx_lock = PyThread_allocate_lock();
    if (dctx_lock == NULL)
        return 0;
    dctx = create_dctx();
    return dctx != NULL;
}

static PyObject *load(PyObject *self, PyObject *noargs) { return PyBool_FromLong(load_library()); }

static PyObject *version(PyObject *self, PyObject *noargs) {
    return PyLong_FromUnsignedLong(load_library() ? version_number() : 0);
}

static PyObject *decompress(PyObject *self, PyObject *args) {
    Py_buffer frame;
    Py_ssize_t size;
    unsigned long long max_window;
    if (!PyArg_ParseTuple(args, "y*nK:decompress", &frame, &size, &max_window))
        return NULL;
    PyObject *out = NULL;
    if (!load_library()) {
        PyErr_SetString(PyExc_RuntimeError, "the system's libzstd (libzstd.so.1) is not loaded");
        goto done;
    }
    if (size < 0 || !window_within(frame.buf, (size_t)frame.len, max_window) ||
        frame_content_size(frame.buf, (size_t)frame.len) != (unsigned long long)size) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        goto done;
    /* a single pass into exactly ``size`` bytes: a frame that would write more fails (dstSize_tooSmall), one that
     * writes less is caught below, trailing bytes that are not a frame fail, another frame after it adds bytes */
    size_t got;
    char *dst = PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(dctx_lock, WAIT_LOCK);
    got = decompress_dctx(dctx, dst, (size_t)size, frame.buf, (size_t)frame.len);
    PyThread_release_lock(dctx_lock);
    Py_END_ALLOW_THREADS
    if (is_error(got) || got != (size_t)size) {
        Py_DECREF(out);
        out = Py_NewRef(Py_None);
    }
done:
    PyBuffer_Release(&frame);
    return out;
}

static PyMethodDef methods[] = {
    {"load", load, METH_NOARGS, "load() -> whether the system's libzstd loaded (looked up once per process)."},
    {"version", version, METH_NOARGS, "version() -> its ZSTD_versionNumber (e.g. 10504 for 1.5.4); 0: not loaded."},
    {"decompress", decompress, METH_VARARGS,
     "decompress(frame, size, max_window) -> the frame's content as bytes of exactly size, or None (not one "
     "frame of that declared size and a window within max_window, damaged, another decoded size). RuntimeError when the library is not loaded."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "toolkit._zstdsys",
                                    "zstd frames decompressed by the system's libzstd (docs/architecture.md).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__zstdsys(void) { return PyModule_Create(&module); }
