/* toolkit._native: the per-mail byte scans of toolkit/headers.py in compiled code (issue 15).
 *
 * Optional: setup.py builds it with Extension(optional=True); without a C compiler the
 * package installs and toolkit/headers.py runs its pure-Python functions, which stay the
 * reference. Each function here equals one of them exactly, for every input
 * (tests/unit/test_native.py compares them on the corpora and on random bytes):
 *
 *   has_blank_before_lf(buf, start, end)  _has_blank_before_lf_py
 *   body_marks(buf, start, end)           _body_marks_py
 *   content_end(buf, start, stop)         _content_end_py
 *   strip_blanks(buf, start, end)         _strip_blanks_py
 *   crlf_to_lf(buf, start)                _crlf_to_lf_py
 *   wanted_fields(block)                  _wanted_fields_py
 *   fast_addresses(value)                 _fast_addresses_py (ASCII text; the caller checks)
 *   split_mail(raw)                       _split_mail_py (bytes), as a tuple
 *   scan_usual(block, max_addresses, latest)  the Python header scan of a usual block, or None
 *                                         (tests/unit/test_scan_usual.py compares it with _scan_headers)
 *   f04_usual_key(block, max_addresses)   verify --full's F04 key of what scan_usual reads
 *                                         (tests/unit/test_mail_key.py compares it with the reference)
 *
 * Every function is one forward pass (memchr-driven) over the buffer it is given, never
 * looks back further than the current line, and allocates at most one result the size of
 * its input (plus the field list of wanted_fields, one entry per header line). It holds the
 * GIL and cannot be interrupted by the per-mail SIGALRM watchdog: docs/architecture.md
 * ("Compiled scans") says why that is acceptable. Offsets are clamped to 0 <= start <= end <= len.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <datetime.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static int
get_buffer(PyObject *obj, Py_buffer *view)
{
    return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

/* args[i] as a Py_ssize_t clamped to [0, len]; -1 with an exception set on a non-integer */
static int
get_offset(PyObject *obj, Py_ssize_t len, Py_ssize_t *out)
{
    Py_ssize_t v = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0)
        v = 0;
    if (v > len)
        v = len;
    *out = v;
    return 0;
}

/* Parse (buf, start[, end]) with the given default end (len when the argument is missing). */
static int
parse_range(PyObject *const *args, Py_ssize_t nargs, const char *name, Py_ssize_t min_args,
            Py_buffer *view, Py_ssize_t *start, Py_ssize_t *end)
{
    if (nargs < min_args || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd to 3 arguments (%zd given)", name, min_args, nargs);
        return -1;
    }
    if (get_buffer(args[0], view) < 0)
        return -1;
    *start = 0;
    *end = view->len;
    if ((nargs > 1 && get_offset(args[1], view->len, start) < 0) ||
        (nargs > 2 && get_offset(args[2], view->len, end) < 0)) {
        PyBuffer_Release(view);
        return -1;
    }
    if (*end < *start)
        *end = *start;
    return 0;
}

#define IS_BLANK(c) ((c) == ' ' || (c) == '\t')

/* Is some LF in buf[start+1:end] preceded by a space or tab (both inside the range)? */
static int
blank_before_lf(const char *s, Py_ssize_t start, Py_ssize_t end)
{
    const char *p = s + start + 1, *stop = s + end;
#if defined(__SSE2__)
    /* 16 bytes at a time: the LFs of p[0..15] against the blanks of p[-1..14] (no line loop) */
    const __m128i lf = _mm_set1_epi8('\n'), sp = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t');
    for (; stop - p >= 16; p += 16) {
        __m128i here = _mm_loadu_si128((const __m128i *)p), before = _mm_loadu_si128((const __m128i *)(p - 1));
        __m128i hit = _mm_and_si128(_mm_cmpeq_epi8(here, lf),
                                    _mm_or_si128(_mm_cmpeq_epi8(before, sp), _mm_cmpeq_epi8(before, tab)));
        if (_mm_movemask_epi8(hit))
            return 1;
    }
#endif
    while (p < stop) {
        const char *lf = memchr(p, '\n', (size_t)(stop - p));
        if (lf == NULL)
            return 0;
        if (IS_BLANK(lf[-1]))
            return 1;
        p = lf + 1;
    }
    return 0;
}

static PyObject *
native_has_blank_before_lf(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end;
    if (parse_range(args, nargs, "has_blank_before_lf", 3, &view, &start, &end) < 0)
        return NULL;
    int found = blank_before_lf(view.buf, start, end);
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

/* The three marks of a mail's body that toolkit/headers.py hash_body_marked needs, in one pass over the
 * body instead of three (memchr for CR, blank_before_lf, memchr for NUL over the whole mail):
 *   1: a CR in buf[start:]          2: blank_before_lf(buf, start, end)          4: a NUL in buf */
static int
body_marks(const char *s, Py_ssize_t len, Py_ssize_t start, Py_ssize_t end)
{
    int marks = 0;
    if (start > 0 && memchr(s, '\0', (size_t)start) != NULL)
        marks |= 4;
    if (end > start) {  /* the first byte of the range: no blank before it counts */
        if (s[start] == '\r')
            marks |= 1;
        else if (s[start] == '\0')
            marks |= 4;
    }
    const char *p = s + start + 1, *stop = s + end;
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n'), sp = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t');
    const __m128i cr = _mm_set1_epi8('\r'), nul = _mm_setzero_si128();
    for (; stop - p >= 16 && marks != 7; p += 16) {
        __m128i here = _mm_loadu_si128((const __m128i *)p), before = _mm_loadu_si128((const __m128i *)(p - 1));
        __m128i blank = _mm_and_si128(_mm_cmpeq_epi8(here, lf),
                                      _mm_or_si128(_mm_cmpeq_epi8(before, sp), _mm_cmpeq_epi8(before, tab)));
        __m128i ret = _mm_cmpeq_epi8(here, cr), zero = _mm_cmpeq_epi8(here, nul);
        if (_mm_movemask_epi8(_mm_or_si128(blank, _mm_or_si128(ret, zero)))) {
            marks |= (_mm_movemask_epi8(ret) ? 1 : 0) | (_mm_movemask_epi8(blank) ? 2 : 0) |
                     (_mm_movemask_epi8(zero) ? 4 : 0);
        }
    }
#endif
    for (; p < stop && marks != 7; p++) {
        if (*p == '\r')
            marks |= 1;
        else if (*p == '\0')
            marks |= 4;
        else if (*p == '\n' && IS_BLANK(p[-1]))
            marks |= 2;
    }
    if (end < len) {  /* the tail after the range: CR and NUL only */
        if (memchr(s + end, '\r', (size_t)(len - end)) != NULL)
            marks |= 1;
        if (memchr(s + end, '\0', (size_t)(len - end)) != NULL)
            marks |= 4;
    }
    return marks;
}

static PyObject *
native_body_marks(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end;
    if (parse_range(args, nargs, "body_marks", 3, &view, &start, &end) < 0)
        return NULL;
    int marks = body_marks(view.buf, view.len, start, end);
    PyBuffer_Release(&view);
    return PyLong_FromLong(marks);
}

static PyObject *
native_content_end(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end;
    if (parse_range(args, nargs, "content_end", 3, &view, &start, &end) < 0)
        return NULL;
    const char *s = view.buf;
    while (end > start && (IS_BLANK(s[end - 1]) || s[end - 1] == '\n'))
        end--;
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

/* buf[start:end] with the run of spaces and tabs before each LF left out */
static PyObject *
native_strip_blanks(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end;
    if (parse_range(args, nargs, "strip_blanks", 3, &view, &start, &end) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, end - start);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *s = view.buf;
    char *w = PyBytes_AS_STRING(out);
    const char *pos = s + start, *stop = s + end;
    /* the first byte never loses blanks before it: an LF there starts the first piece */
    const char *p = pos + 1;
    while (p < stop) {
        const char *lf = memchr(p, '\n', (size_t)(stop - p));
        if (lf == NULL)
            break;
        const char *j = lf;
        while (j > pos && IS_BLANK(j[-1]))
            j--;
        memcpy(w, pos, (size_t)(j - pos));
        w += j - pos;
        pos = lf;          /* the LF starts the next piece */
        p = lf + 1;
    }
    if (pos < stop) {
        memcpy(w, pos, (size_t)(stop - pos));
        w += stop - pos;
    }
    PyBuffer_Release(&view);
    Py_ssize_t n = w - PyBytes_AS_STRING(out);
    if (n != PyBytes_GET_SIZE(out) && _PyBytes_Resize(&out, n) < 0)
        return NULL;
    return out;
}

/* buf[start:] with each CR that a LF follows deleted (bytes.replace(b"\r\n", b"\n")) */
static PyObject *
native_crlf_to_lf(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end;
    if (parse_range(args, nargs, "crlf_to_lf", 1, &view, &start, &end) < 0)
        return NULL;
    if (nargs > 2) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "crlf_to_lf() takes 1 or 2 arguments");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, end - start);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *s = view.buf;
    char *w = PyBytes_AS_STRING(out);
    const char *pos = s + start, *stop = s + end;
    while (pos < stop) {
        const char *cr = memchr(pos, '\r', (size_t)(stop - pos));
        if (cr == NULL)
            break;
        if (cr + 1 < stop && cr[1] == '\n') {
            memcpy(w, pos, (size_t)(cr - pos));
            w += cr - pos;
            pos = cr + 1;  /* the LF is copied with the next piece */
        } else {
            memcpy(w, pos, (size_t)(cr + 1 - pos));
            w += cr + 1 - pos;
            pos = cr + 1;
        }
    }
    if (pos < stop) {
        memcpy(w, pos, (size_t)(stop - pos));
        w += stop - pos;
    }
    PyBuffer_Release(&view);
    Py_ssize_t n = w - PyBytes_AS_STRING(out);
    if (n != PyBytes_GET_SIZE(out) && _PyBytes_Resize(&out, n) < 0)
        return NULL;
    return out;
}

/* ------------------------------------------------------------------ header fields */

/* the fields toolkit/headers.py reads (_WANTED there), lower case */
static const char *const WANTED[] = {
    "bcc", "cc", "date", "from", "message-id", "subject", "to",
    "x-ms-journal-report", "x-spam-flag", "x-spam-status",
};
#define N_WANTED (sizeof(WANTED) / sizeof(WANTED[0]))
static PyObject *wanted_names[N_WANTED];

/* a byte of a compat32 field name: [!-9;-~] */
#define IS_NAME(c) ((unsigned char)(c) >= 0x21 && (unsigned char)(c) <= 0x7e && (c) != ':')

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* index into WANTED of the name that starts the line at s[i] followed by ':', or -1 */
static int
wanted_at(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    for (size_t k = 0; k < N_WANTED; k++) {
        const char *name = WANTED[k];
        size_t len = strlen(name);
        if ((Py_ssize_t)len + 1 > n - i || s[i + len] != ':')
            continue;
        size_t m = 0;
        while (m < len && lower(s[i + m]) == (unsigned char)name[m])
            m++;
        if (m == len)
            return (int)k;
    }
    return -1;
}

/* Is the line starting at s[i] (i < n) one compat32 reads without special handling: a
 * continuation, a field name and colon, or the end of the block (one LF, CR or CRLF left)? */
static int
plain_line(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    if (IS_BLANK(s[i]))
        return 1;
    Py_ssize_t j = i;
    while (j < n && IS_NAME(s[j]))
        j++;
    if (j > i && j < n && s[j] == ':')
        return 1;
    Py_ssize_t rest = n - i;
    return (rest == 1 && (s[i] == '\n' || s[i] == '\r')) || (rest == 2 && s[i] == '\r' && s[i + 1] == '\n');
}

/* One wanted field of a block: its WANTED index and its value s[a:b] (leading blanks and the line
 * break at its end left out, continuation lines kept). */
struct span {
    int k;
    Py_ssize_t a, b;
};

/* The wanted fields of s[0:n] in order, as _wanted_fields_py finds them: 1 with *out (PyMem_Malloc'd,
 * the caller frees it) and *count set; 0 when the block is unusual (the caller falls back); -1 with an
 * exception set. One forward pass; at most one span per line. */
static int
wanted_spans(const unsigned char *s, Py_ssize_t n, struct span **out, Py_ssize_t *count)
{
    Py_ssize_t first = 0;  /* the first line start read (after an mbox From_ line) */
    *out = NULL;
    *count = 0;
    if (n > 0 && IS_BLANK(s[0]))
        return 0;
    for (const unsigned char *p = s; (p = memchr(p, '\r', (size_t)(s + n - p))) != NULL; p++)
        if (p + 1 == s + n || p[1] != '\n')
            return 0;  /* a bare CR */
    if (n >= 5 && memcmp(s, "From ", 5) == 0) {
        const unsigned char *lf = memchr(s, '\n', (size_t)n);
        if (lf == NULL)
            return 0;
        first = lf - s + 1;
        if (first < n && IS_BLANK(s[first]))
            return 0;
    }
    /* every line start from `first` on: 0 (a virtual LF before the block) and after each LF */
    for (Py_ssize_t i = first; i < n;) {
        if (!plain_line(s, i, n))
            return 0;
        const unsigned char *lf = memchr(s + i, '\n', (size_t)(n - i));
        if (lf == NULL)
            break;
        i = lf - s + 1;
    }
    Py_ssize_t cap = 16, got = 0;
    struct span *spans = PyMem_Malloc(sizeof(struct span) * (size_t)cap);
    if (spans == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = first; i < n;) {
        int k = wanted_at(s, i, n);
        if (k >= 0) {
            Py_ssize_t v = i + (Py_ssize_t)strlen(WANTED[k]) + 1, e = v;
            const unsigned char *lf;
            while ((lf = memchr(s + e, '\n', (size_t)(n - e))) != NULL) {
                e = lf - s;
                if (e + 1 == n || !IS_BLANK(s[e + 1]))
                    break;
                e++;
            }
            if (lf == NULL)
                e = n;
            /* s[e] is the LF before the next field (or e == n) */
            Py_ssize_t a = v, b = e;
            while (a < b && IS_BLANK(s[a]))
                a++;
            while (b > a && (s[b - 1] == '\r' || s[b - 1] == '\n'))
                b--;
            if (got == cap) {
                cap *= 2;
                struct span *more = PyMem_Realloc(spans, sizeof(struct span) * (size_t)cap);
                if (more == NULL) {
                    PyMem_Free(spans);
                    PyErr_NoMemory();
                    return -1;
                }
                spans = more;
            }
            spans[got].k = k;
            spans[got].a = a;
            spans[got].b = b;
            got++;
            if (e >= n)
                break;
            i = e + 1;
            continue;
        }
        const unsigned char *lf = memchr(s + i, '\n', (size_t)(n - i));
        if (lf == NULL)
            break;
        i = lf - s + 1;
    }
    *out = spans;
    *count = got;
    return 1;
}

static PyObject *
native_wanted_fields(PyObject *self, PyObject *block)
{
    Py_buffer view;
    if (get_buffer(block, &view) < 0)
        return NULL;
    const unsigned char *s = view.buf;
    struct span *spans;
    Py_ssize_t count;
    PyObject *out = NULL;
    int rc = wanted_spans(s, view.len, &spans, &count);
    if (rc <= 0) {
        if (rc == 0)
            out = Py_NewRef(Py_None);
        goto done;
    }
    out = PyList_New(count);
    if (out == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < count; j++) {
        PyObject *value = PyUnicode_DecodeASCII((const char *)s + spans[j].a, spans[j].b - spans[j].a,
                                                "surrogateescape");
        PyObject *pair = value == NULL ? NULL : PyTuple_Pack(2, wanted_names[spans[j].k], value);
        Py_XDECREF(value);
        if (pair == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, j, pair);
    }
done:
    PyMem_Free(spans);
    PyBuffer_Release(&view);
    return out;
}

/* ------------------------------------------------------------------ address lists */

/* [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]: an atom's byte */
static int
is_atom(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

static int
is_label(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* s[0:n] is one or more runs of ok() bytes joined by single dots */
static int
dotted(const unsigned char *s, Py_ssize_t n, int (*ok)(unsigned char))
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i - 1] == '.')
                return 0;
        } else if (!ok(s[i]))
            return 0;
    }
    return 1;
}

/* the _ADDR of toolkit/headers.py: atom(.atom)*@label(.label)* */
static int
plain_addr(const unsigned char *s, Py_ssize_t n)
{
    const unsigned char *at = memchr(s, '@', (size_t)n);
    return at != NULL && dotted(s, at - s, is_atom) && dotted(at + 1, s + n - at - 1, is_label);
}

/* a byte _NAME_BAD rejects in an unquoted display name: [\x00-\x08\x0a-\x1f\x7f"<>@] */
static int
name_bad(unsigned char c)
{
    return (c <= 0x1f && c != '\t') || c == 0x7f || c == '"' || c == '<' || c == '>' || c == '@';
}

/* one part of the list (blanks stripped, not empty): append (name, lowercased addr); 0 = not plain, -1 = error */
static int
address_part(const unsigned char *p, Py_ssize_t n, PyObject *out, char *scratch)
{
    Py_ssize_t name_len = 0;
    const unsigned char *addr = p;
    Py_ssize_t addr_len = n;
    if (p[n - 1] == '>') {
        Py_ssize_t lt = n - 1;
        while (lt >= 0 && p[lt] != '<')
            lt--;
        if (lt < 0)
            return 0;
        addr = p + lt + 1;
        addr_len = n - 1 - (lt + 1);
        Py_ssize_t e = lt;
        while (e > 0 && IS_BLANK(p[e - 1]))
            e--;
        if (e > 0) {
            if (p[0] == '"') {
                if (e < 2 || p[e - 1] != '"' || memchr(p + 1, '"', (size_t)(e - 2)) != NULL)
                    return 0;
                memcpy(scratch, p + 1, (size_t)(e - 2));
                name_len = e - 2;
            } else {
                int blank = 0;
                for (Py_ssize_t i = 0; i < e; i++) {   /* runs of blanks become one space */
                    if (name_bad(p[i]))
                        return 0;
                    if (IS_BLANK(p[i]))
                        blank = 1;
                    else {
                        if (blank && name_len)
                            scratch[name_len++] = ' ';
                        blank = 0;
                        scratch[name_len++] = (char)p[i];
                    }
                }
            }
        }
    }
    if (!plain_addr(addr, addr_len))
        return 0;
    char *lowered = scratch + name_len;
    for (Py_ssize_t i = 0; i < addr_len; i++)
        lowered[i] = (char)lower(addr[i]);
    PyObject *pair = Py_BuildValue("(s#s#)", scratch, name_len, lowered, addr_len);
    if (pair == NULL)
        return -1;
    int rc = PyList_Append(out, pair);
    Py_DECREF(pair);
    return rc < 0 ? -1 : 1;
}

static PyObject *fast_addresses(const unsigned char *s, Py_ssize_t n);

/* toolkit.headers._fast_addresses_py(value) for an ASCII str */
static PyObject *
native_fast_addresses(PyObject *self, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "fast_addresses() takes a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(value)) {
        PyErr_SetString(PyExc_ValueError, "fast_addresses() reads ASCII text only");
        return NULL;
    }
    return fast_addresses(PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
}

/* _fast_addresses_py of the ASCII text s[0:n]: a new list of (name, lowercased addr), None (not plain),
 * or NULL with an exception set */
static PyObject *
fast_addresses(const unsigned char *s, Py_ssize_t n)
{
    /* quoted strings hold no backslash, CR or LF and end; outside them none of ( ; : \ [ CR LF */
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"') {
            Py_ssize_t j = i + 1;
            while (j < n && s[j] != '"' && s[j] != '\\' && s[j] != '\r' && s[j] != '\n')
                j++;
            if (j == n || s[j] != '"')
                Py_RETURN_NONE;
            i = j;
        } else if (c == '(' || c == ';' || c == ':' || c == '\\' || c == '[' || c == '\r' || c == '\n')
            Py_RETURN_NONE;
    }
    char *scratch = PyMem_Malloc((size_t)n + 1);   /* a part's name and its lowercased address */
    if (scratch == NULL)
        return PyErr_NoMemory();
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto done;
    Py_ssize_t part = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {   /* parts end at a comma outside quotes, or at the end */
        if (i < n && s[i] == '"') {
            i = (const unsigned char *)memchr(s + i + 1, '"', (size_t)(n - i - 1)) - s;
            continue;
        }
        if (i < n && s[i] != ',')
            continue;
        Py_ssize_t a = part, b = i;
        part = i + 1;
        while (a < b && IS_BLANK(s[a]))
            a++;
        while (b > a && IS_BLANK(s[b - 1]))
            b--;
        if (a == b)
            continue;
        int rc = address_part(s + a, b - a, out, scratch);
        if (rc <= 0) {
            Py_CLEAR(out);
            if (rc == 0)
                out = Py_NewRef(Py_None);
            goto done;
        }
    }
done:
    PyMem_Free(scratch);
    return out;
}

/* ------------------------------------------------------------------ mbox messages */

/* Does the line s[i:e] (e: one past its last byte) start like _HEADER of importers/mbox.py:
 * [\x21-\x39\x3b-\x7e]+[ \t]*: ? */
static int
mbox_header_line(const unsigned char *s, Py_ssize_t i, Py_ssize_t e)
{
    Py_ssize_t j = i;
    while (j < e && IS_NAME(s[j]))
        j++;
    if (j == i)
        return 0;
    while (j < e && IS_BLANK(s[j]))
        j++;
    return j < e && s[j] == ':';
}

/* Does s[i:e] start with the lower-case ASCII `name`, in any case? */
static int
ci_prefix(const unsigned char *s, Py_ssize_t i, Py_ssize_t e, const char *name)
{
    Py_ssize_t len = (Py_ssize_t)strlen(name);
    if (e - i < len)
        return 0;
    for (Py_ssize_t k = 0; k < len; k++)
        if (lower(s[i + k]) != (unsigned char)name[k])
            return 0;
    return 1;
}

/* the fields importers/mbox_flags.py reads (_FLAG_FIELD of importers/mbox.py) */
static const char *const MBOX_FLAG_FIELDS[] = {
    "status", "x-status", "x-mozilla-status", "x-mozilla-keys", "x-gmail-labels",
};

/* Does the line s[i:e] match _FLAG_FIELD: one of those names, any case, then [ \t]*: ? */
static int
mbox_flag_field(const unsigned char *s, Py_ssize_t i, Py_ssize_t e)
{
    for (size_t k = 0; k < sizeof(MBOX_FLAG_FIELDS) / sizeof(MBOX_FLAG_FIELDS[0]); k++) {
        if (!ci_prefix(s, i, e, MBOX_FLAG_FIELDS[k]))
            continue;
        Py_ssize_t j = i + (Py_ssize_t)strlen(MBOX_FLAG_FIELDS[k]);
        while (j < e && IS_BLANK(s[j]))
            j++;
        if (j < e && s[j] == ':')
            return 1;
    }
    return 0;
}

/* How many lines of s[a:b] (whole lines, a at a line start) match ^>+From  */
static Py_ssize_t
mbox_quoted(const unsigned char *s, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t count = 0;
    const unsigned char *p = s + a, *stop = s + b;
    while (p < stop) {
        const unsigned char *gt = memchr(p, '>', (size_t)(stop - p));
        if (gt == NULL)
            break;
        if (gt != s + a && gt[-1] != '\n') {   /* not at a line start: on to the next '>' */
            p = gt + 1;
            continue;
        }
        const unsigned char *q = gt;
        while (q < stop && *q == '>')
            q++;
        if (stop - q >= 5 && memcmp(q, "From ", 5) == 0)
            count++;
        p = q;
    }
    return count;
}

/* Is s[a:b] empty or ASCII whitespace only (bytes.isspace)? */
static int
mbox_blank_only(const unsigned char *s, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = s[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\x0b' && c != '\x0c')
            return 0;
    }
    return 1;
}

/* the first "\nFrom" in s[from:n], as the index of its LF, or -1 */
static Py_ssize_t
find_lf_from(const unsigned char *s, Py_ssize_t from, Py_ssize_t n)
{
    const unsigned char *p = s + from, *stop = s + n;
#if defined(__SSE2__) && defined(__GNUC__)
    /* 16 positions at a time: an LF at p[i] with an F at p[i + 1] (loads of p[0..15] and p[1..16], both inside
     * s[from:n]); each such pair is checked whole, the first match is the first "\nFrom" */
    const __m128i lf = _mm_set1_epi8('\n'), eff = _mm_set1_epi8('F');
    for (; stop - p >= 17; p += 16) {
        __m128i here = _mm_loadu_si128((const __m128i *)p), next = _mm_loadu_si128((const __m128i *)(p + 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, lf), _mm_cmpeq_epi8(next, eff)));
        while (mask) {
            int i = __builtin_ctz(mask);
            if (stop - (p + i) >= 5 && memcmp(p + i + 2, "rom", 3) == 0)
                return p + i - s;
            mask &= mask - 1;
        }
    }
#endif
    while (stop - p >= 5) {
        const unsigned char *lf = memchr(p, '\n', (size_t)(stop - p - 4));
        if (lf == NULL)
            return -1;
        if (memcmp(lf + 1, "From", 4) == 0)
            return lf - s;
        p = lf + 1;
    }
    return -1;
}

/* find_from_line(buf, start): buf.find(b"\nFrom", start) for 0 <= start (a start past the end finds nothing);
 * a memchr per line, several times faster than bytes.find on text with many short lines */
static PyObject *
native_find_from_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "find_from_line() takes 2 arguments (buf, start)");
        return NULL;
    }
    Py_buffer view;
    Py_ssize_t start;
    if (get_buffer(args[0], &view) < 0)
        return NULL;
    if (get_offset(args[1], view.len, &start) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t at = find_lf_from(view.buf, start, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(at);
}

#define MBOX_HAS_FLAGS 1
#define MBOX_HAS_CL 2

/* Does the line s[i:e] (ending with its LF) match _CL of importers/mbox.py:
 * content-length[ \t]*:[ \t]*(\d{1,15})[ \t]*\r?\n?\Z, any case? Its value then in *value. */
static int
mbox_cl_line(const unsigned char *s, Py_ssize_t i, Py_ssize_t e, long long *value)
{
    if (!ci_prefix(s, i, e, "content-length"))
        return 0;
    Py_ssize_t j = i + 14;
    while (j < e && IS_BLANK(s[j]))
        j++;
    if (j >= e || s[j] != ':')
        return 0;
    j++;
    while (j < e && IS_BLANK(s[j]))
        j++;
    long long v = 0;
    Py_ssize_t d = j;
    while (j < e && j - d < 16 && s[j] >= '0' && s[j] <= '9')
        v = v * 10 + (s[j++] - '0');
    if (j == d || j - d > 15)
        return 0;
    while (j < e && IS_BLANK(s[j]))
        j++;
    if (j < e && s[j] == '\r')
        j++;
    if (j < e && s[j] == '\n')
        j++;
    if (j != e)
        return 0;
    *value = v;
    return 1;
}

/* mbox_scan(buf, pos, eof, cap): the messages of importers/mbox.py's plain case, one after the
 * other, from buf[pos] (the line after a From_ line) on; see MboxSplitter._fast there for what
 * "plain" is and what each tuple holds. It stops (returns what it has) at the first message that
 * is not plain or not whole in buf; every index it reads lies in buf[pos:len]. */
static PyObject *
native_mbox_scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "mbox_scan() takes 4 arguments (buf, pos, eof, cap)");
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(args[0], &view) < 0)
        return NULL;
    Py_ssize_t p;
    if (get_offset(args[1], view.len, &p) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int eof = PyObject_IsTrue(args[2]);
    Py_ssize_t cap = PyNumber_AsSsize_t(args[3], PyExc_OverflowError);
    if (eof < 0 || (cap == -1 && PyErr_Occurred())) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *s = view.buf;
    const Py_ssize_t n = view.len;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto done;
    for (;;) {
        /* the header block: fields and continuations, each whole, ended by an empty line */
        Py_ssize_t q = p, lf;
        int flags = 0;
        long long claimed = 0;            /* the first Content-Length's value (flags & MBOX_HAS_CL) */
        for (;;) {
            const unsigned char *e = q < n ? memchr(s + q, '\n', (size_t)(n - q)) : NULL;
            if (e == NULL)
                goto done;
            lf = e - s;
            Py_ssize_t len = lf + 1 - q;
            if (len == 1 || (len == 2 && s[q] == '\r'))
                break;
            if (IS_BLANK(s[q])) {
                if (q == p)
                    goto done;            /* a continuation first: not a header block */
            } else {
                if (!mbox_header_line(s, q, lf + 1))
                    goto done;            /* the header ends without an empty line */
                if (len >= 4 && memcmp(s + q, "From", 4) == 0 && (len < 5 || s[q + 4] != ':'))
                    goto done;            /* "From :" may be a From_ line */
                if (!(flags & MBOX_HAS_CL) && mbox_cl_line(s, q, lf + 1, &claimed))
                    flags |= MBOX_HAS_CL;
                if (mbox_flag_field(s, q, lf + 1))
                    flags |= MBOX_HAS_FLAGS;
            }
            q = lf + 1;
        }
        Py_ssize_t blank_at = q;          /* the empty line; lf is its LF */
        /* the next line starting with "From": after an empty line (the separator), a line after it */
        Py_ssize_t at = find_lf_from(s, lf, n);
        if (at < 0)
            goto done;
        Py_ssize_t c = at + 1, seplen;    /* c: the From line */
        if (at == lf)
            seplen = lf + 1 - blank_at;   /* right after the header's empty line */
        else if (s[at - 1] == '\n')       /* at - 1 >= lf */
            seplen = 1;
        else if (at - 2 >= lf && s[at - 1] == '\r' && s[at - 2] == '\n')
            seplen = 2;
        else
            goto done;                    /* after a text line: the Python splitter decides */
        const unsigned char *e1 = memchr(s + c, '\n', (size_t)(n - c));
        if (e1 == NULL)
            goto done;
        Py_ssize_t nx = e1 - s + 1;       /* the line after the From line */
        if (nx == n) {
            if (!eof)
                goto done;
        } else {
            const unsigned char *e2 = memchr(s + nx, '\n', (size_t)(n - nx));
            if (e2 == NULL && !eof)
                goto done;
            Py_ssize_t end2 = e2 != NULL ? e2 - s + 1 : n, len2 = end2 - nx;
            int blank = (len2 == 1 && s[nx] == '\n') || (len2 == 2 && s[nx] == '\r' && s[nx + 1] == '\n');
            if (!blank && !mbox_header_line(s, nx, end2))
                goto done;                /* a possible false split */
        }
        if ((flags & MBOX_HAS_CL) && (long long)(c - seplen - (lf + 1)) != claimed)
            goto done;                    /* a Content-Length that does not end at the separator */
        if (cap >= 0 && c - p > cap + 2)
            goto done;                    /* over the cap: the Python splitter's oversized path */
        Py_ssize_t sep = c - seplen;
        PyObject *rec = Py_BuildValue("(nnnnnii)", sep, c, nx, blank_at, mbox_quoted(s, p, sep),
                                      mbox_blank_only(s, p, sep), flags);
        if (rec == NULL || PyList_Append(out, rec) < 0) {
            Py_XDECREF(rec);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(rec);
        p = nx;
    }
done:
    PyBuffer_Release(&view);
    return out;
}

/* ------------------------------------------------------------------ the header block / body split */

static PyObject *str_empty_message, *str_no_headers, *str_no_separator;

/* Does s[i:n] start like _HEADER_LINE of toolkit/headers.py:
 * From |[!-9;-~]+[ \t]*:|[ \t][^\r\n]*+\r?\n[!-9;-~]+: ? */
static int
header_line_at(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    if (n - i >= 5 && memcmp(s + i, "From ", 5) == 0)
        return 1;
    Py_ssize_t j = i;
    if (j < n && IS_BLANK(s[j])) {
        j++;
        while (j < n && s[j] != '\r' && s[j] != '\n')
            j++;
        if (j < n && s[j] == '\r')
            j++;
        if (j >= n || s[j] != '\n')
            return 0;
        j++;
        Py_ssize_t k = j;
        while (k < n && IS_NAME(s[k]))
            k++;
        return k > j && k < n && s[k] == ':';
    }
    while (j < n && IS_NAME(s[j]))
        j++;
    if (j == i)
        return 0;
    while (j < n && IS_BLANK(s[j]))
        j++;
    return j < n && s[j] == ':';
}

/* split_mail(raw): (skip, header_end, body_start, defect, block) of toolkit.headers._split_mail_py(raw) for bytes */
static PyObject *
native_split_mail(PyObject *self, PyObject *raw)
{
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "split_mail() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(raw);
    const Py_ssize_t n = PyBytes_GET_SIZE(raw);
    Py_ssize_t pos = n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf ? 3 : 0;
    Py_ssize_t end = pos, start = pos;
    PyObject *defect = Py_None;
    if (pos >= n)
        defect = str_empty_message;
    else if (s[pos] == '\n') {
        start = pos + 1;
        defect = str_no_headers;
    } else if (n - pos >= 2 && s[pos] == '\r' && s[pos + 1] == '\n') {
        start = pos + 2;
        defect = str_no_headers;
    } else if (!header_line_at(s, pos, n))
        defect = str_no_headers;
    else {
        /* the first \n\n or \n\r\n */
        const unsigned char *lf = s + pos;
        int found = 0, any_lf = 0;
        while ((lf = memchr(lf, '\n', (size_t)(s + n - lf))) != NULL) {
            any_lf = 1;
            Py_ssize_t k = lf - s;
            if (k + 1 < n && s[k + 1] == '\n') {
                end = k + 1;
                start = k + 2;
                found = 1;
                break;
            }
            if (k + 2 < n && s[k + 1] == '\r' && s[k + 2] == '\n') {
                end = k + 1;
                start = k + 3;
                found = 1;
                break;
            }
            lf++;
        }
        if (!found && !any_lf) {   /* no LF at all: classic Mac \r\r */
            for (Py_ssize_t k = pos; k + 1 < n; k++)
                if (s[k] == '\r' && s[k + 1] == '\r') {
                    end = k + 1;
                    start = k + 2;
                    found = 1;
                    break;
                }
        }
        if (!found) {
            end = start = n;
            defect = str_no_separator;
        }
    }
    PyObject *block = PyBytes_FromStringAndSize((const char *)s + pos, end - pos);
    if (block == NULL)
        return NULL;
    return Py_BuildValue("(nnnON)", pos, end, start, defect, block);
}

/* ------------------------------------------------------------------ the usual header scan */

/* scan_usual(block, max_addresses, latest): what toolkit/headers.py _scan_headers (not fields_only) and
 * the dedup key's Message-ID give for a usual header block, in one pass over its wanted fields; None when
 * the block or one of its fields is not usual (the caller then runs the Python scan, which stays the
 * reference: tests/unit/test_scan_usual.py compares the two). Usual: _wanted_fields_py reads the
 * block; a Message-ID that is not empty once normalised; a subject of at most MAX_VALUE_CHARS bytes; a
 * date absent or in the form _USUAL_DATE reads (or with two spaces after the weekday; not -0000, every
 * number in range, a UTC year up to 9999); From, To, Cc and Bcc ASCII lists of plain addresses
 * (_fast_addresses_py), at most MAX_VALUE_CHARS each, where every addr-spec-like token _address_candidates
 * finds is one of the list's addresses, within max_addresses.
 * ``latest``: the latest plausible date, as seconds after 1970 UTC (a float: the import's clock plus a day).
 *
 * Returns (message_id, subject, from_addr, from_name, to, cc, bcc, sent_date, spam, defects, mid_key, journal,
 * todo): MailMeta's first fields in its order, then mid_key, the normalised Message-ID's bytes (dedup_key's
 * MID), the journal flag, and what the caller still decodes (Python's RFC 2047 decoder): todo & 1, the
 * subject (then given whole, as text, not cut; it holds an encoded word or a control character), todo & 2,
 * the From name (given as the address list has it). */

/* the defect codes scan_usual reports (made once, at import) */
static PyObject *str_header_8bit, *str_date_implausible, *str_date_missing, *str_from_missing, *str_address_unparsable;

#define USUAL_MAX_VALUE 65536       /* MAX_VALUE_CHARS of toolkit/headers.py */
#define USUAL_MAX_SUBJECT 2000      /* MAX_SUBJECT_CHARS */
#define USUAL_MAX_NAME 500          /* MAX_NAME_CHARS */
#define K_BCC 0
#define K_CC 1
#define K_DATE 2
#define K_FROM 3
#define K_MID 4
#define K_SUBJECT 5
#define K_TO 6
#define K_JOURNAL 7
#define K_SPAMFLAG 8
#define K_SPAMSTATUS 9

/* str.isspace() of a character below 128: \t \n \v \f \r, \x1c-\x1f, space */
static inline int
str_space(unsigned char c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
}

/* s[a:b] without CR and LF bytes (_unfold), copied to out; its length */
static Py_ssize_t
unfold_to(const unsigned char *s, Py_ssize_t a, Py_ssize_t b, unsigned char *out)
{
    Py_ssize_t m = 0;
    for (Py_ssize_t i = a; i < b; i++)
        if (s[i] != '\r' && s[i] != '\n')
            out[m++] = s[i];
    return m;
}

/* str.strip() of p[0:*m] (ASCII and surrogate-escaped bytes): the new start; *m becomes the new length */
static const unsigned char *
str_strip(const unsigned char *p, Py_ssize_t *m)
{
    Py_ssize_t a = 0, b = *m;
    while (a < b && str_space(p[a]))
        a++;
    while (b > a && str_space(p[b - 1]))
        b--;
    *m = b - a;
    return p + a;
}

static int
has_encoded_word(const unsigned char *p, Py_ssize_t m)
{
    for (Py_ssize_t i = 0; i + 1 < m; i++)
        if (p[i] == '=' && p[i + 1] == '?')
            return 1;
    return 0;
}

/* a character _ESCAPES of toolkit/headers.py rewrites: [\x00-\x08\x0a-\x1f\x7f-\x9f] */
static inline int
control_char(Py_UCS4 c)
{
    return (c <= 0x1f && c != 0x09) || (c >= 0x7f && c <= 0x9f);
}

static int
has_control(PyObject *u)
{
    const int kind = PyUnicode_KIND(u);
    const void *data = PyUnicode_DATA(u);
    const Py_ssize_t len = PyUnicode_GET_LENGTH(u);
    for (Py_ssize_t i = 0; i < len; i++)
        if (control_char(PyUnicode_READ(kind, data, i)))
            return 1;
    return 0;
}

static int
is_ascii(const unsigned char *p, Py_ssize_t m)
{
    for (Py_ssize_t i = 0; i < m; i++)
        if (p[i] & 0x80)
            return 0;
    return 1;
}

/* Message-ID: normalise_message_id of the unfolded p[0:m] (already free of CR and LF), in place: the
 * new start; *m its length (0: nothing left) */
static const unsigned char *
usual_message_id(unsigned char *p, Py_ssize_t *m)
{
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < *m; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            p[k++] = p[i];
    const unsigned char *lt = memchr(p, '<', (size_t)k);
    const unsigned char *gt = lt == NULL ? NULL : memchr(lt + 1, '>', (size_t)(p + k - lt - 1));
    if (gt != NULL) {
        *m = gt - lt - 1;
        return lt + 1;
    }
    Py_ssize_t a = 0, b = k;   /* v.strip("<>") */
    while (a < b && (p[a] == '<' || p[a] == '>'))
        a++;
    while (b > a && (p[b - 1] == '<' || p[b - 1] == '>'))
        b--;
    *m = b - a;
    return p + a;
}

/* p[0:m] equals the lower-case ASCII `word` in any case */
static int
ci_equal(const unsigned char *p, Py_ssize_t m, const char *word)
{
    Py_ssize_t len = (Py_ssize_t)strlen(word);
    if (m != len)
        return 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (lower(p[i]) != (unsigned char)word[i])
            return 0;
    return 1;
}

static int
digits(const unsigned char *p, int count, int *value)
{
    int v = 0;
    for (int i = 0; i < count; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *value = v;
    return 1;
}

/* days from 1970-01-01 to y-m-d (proleptic Gregorian) */
static long long
days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(long long z, long long *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static const char *const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";
static const char *const WEEKDAYS = "MonTueWedThuFriSatSun";

/* The date p[0:m] (unfolded and stripped, not empty) when _date_value reads it by its fast path
 * (_USUAL_DATE, not -0000, a valid datetime) and astimezone(utc) gives a year up to 9999: 1 with the
 * UTC time in *epoch (seconds after 1970) and the fields; 0 otherwise. */
static int
usual_date(const unsigned char *p, Py_ssize_t m, long long *epoch, long long *uy, int *um, int *ud,
           int *uh, int *umi, int *us)
{
    Py_ssize_t i = 0;
    if (m >= 5 && p[3] == ',' && p[4] == ' ') {
        for (int w = 0; w < 7; w++)
            if (memcmp(p, WEEKDAYS + 3 * w, 3) == 0) {
                i = 5;
                break;
            }
        /* "Fri,  9 Mar ...": _USUAL_DATE declines it, parsedate_to_datetime (which splits at blanks) reads
         * the same fields from it; the result is the same datetime (or the same error: then we decline) */
        if (i == 5 && m > 5 && p[5] == ' ')
            i = 6;
    }
    int day, month = 0, year, hour, minute, second, zh, zm;
    if (i + 2 <= m && p[i] >= '0' && p[i] <= '9' && p[i + 1] >= '0' && p[i + 1] <= '9') {
        day = (p[i] - '0') * 10 + (p[i + 1] - '0');
        i += 2;
    } else if (i + 1 <= m && p[i] >= '0' && p[i] <= '9') {
        day = p[i] - '0';
        i += 1;
    } else
        return 0;
    /* " Mon YYYY HH:MM:SS +HHMM": 24 bytes */
    if (m - i < 24 || p[i] != ' ' || p[i + 4] != ' ' || p[i + 9] != ' ' || p[i + 12] != ':' ||
        p[i + 15] != ':' || p[i + 18] != ' ' || (p[i + 19] != '+' && p[i + 19] != '-'))
        return 0;
    for (int k = 0; k < 12; k++)
        if (memcmp(p + i + 1, MONTHS + 3 * k, 3) == 0) {
            month = k + 1;
            break;
        }
    if (month == 0 || p[i + 5] < '1' || p[i + 5] > '9' || !digits(p + i + 5, 4, &year) ||
        !digits(p + i + 10, 2, &hour) || !digits(p + i + 13, 2, &minute) || !digits(p + i + 16, 2, &second) ||
        !digits(p + i + 20, 2, &zh) || !digits(p + i + 22, 2, &zm))
        return 0;
    int negative = p[i + 19] == '-';
    i += 24;
    if (i < m) {   /* (?: \([^()]*\))? to the end */
        if (m - i < 3 || p[i] != ' ' || p[i + 1] != '(' || p[m - 1] != ')')
            return 0;
        for (Py_ssize_t j = i + 2; j < m - 1; j++)
            if (p[j] == '(' || p[j] == ')')
                return 0;
    }
    if (negative && zh == 0 && zm == 0)
        return 0;   /* -0000: a naive time (parsedate_to_datetime) */
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day < 1 || day > dim[month - 1] + (month == 2 && leap) || hour > 23 || minute > 59 || second > 59)
        return 0;
    long long offset = (long long)zh * 3600 + (long long)zm * 60;
    if (offset >= 86400)
        return 0;   /* timezone() takes less than a day */
    if (negative)
        offset = -offset;
    long long t = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    long long days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    long long rest = t - days * 86400;
    civil_from_days(days, uy, um, ud);
    if (*uy < 1 || *uy > 9999)
        return 0;
    *uh = (int)(rest / 3600);
    *umi = (int)(rest / 60 % 60);
    *us = (int)(rest % 60);
    *epoch = t;
    return 1;
}

/* a separator of _ADDR_SPLIT in toolkit/headers.py for ASCII text: [\s,;<>()"\[\]:] (\s: str.isspace) */
static inline int
addr_split(unsigned char c)
{
    return str_space(c) || c == ',' || c == ';' || c == '<' || c == '>' || c == '(' || c == ')' || c == '"' ||
           c == '[' || c == ']' || c == ':';
}

/* Is every token _address_candidates finds in the ASCII text p[0:m] one of the addresses of `pairs` (so
 * that _parse_addresses adds none and records no defect)? 1 yes, 0 no, -1 with an exception set. */
static int
candidates_known(const unsigned char *p, Py_ssize_t m, PyObject *pairs, char *scratch)
{
    PyObject *known = PySet_New(NULL);
    if (known == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++)
        if (PySet_Add(known, PyTuple_GET_ITEM(PyList_GET_ITEM(pairs, i), 1)) < 0) {
            Py_DECREF(known);
            return -1;
        }
    int all = 1;
    for (Py_ssize_t i = 0; i < m && all == 1;) {
        while (i < m && addr_split(p[i]))
            i++;
        Py_ssize_t a = i;
        while (i < m && !addr_split(p[i]))
            i++;
        Py_ssize_t b = i;   /* a token p[a:b] (empty at the end) */
        const unsigned char *at = b > a ? memchr(p + a, '@', (size_t)(b - a)) : NULL;
        if (at == NULL || at == p + a || at >= p + b - 1)
            continue;   /* 0 < at < len(tok) - 1 */
        while (a < b && (p[a] == '.' || p[a] == '\'' || p[a] == '`'))
            a++;
        while (b > a && (p[b - 1] == '.' || p[b - 1] == '\'' || p[b - 1] == '`'))
            b--;
        for (Py_ssize_t k = a; k < b; k++)
            scratch[k - a] = (char)lower(p[k]);
        PyObject *token = PyUnicode_DecodeASCII(scratch, b - a, "strict");
        if (token == NULL) {
            all = -1;
            break;
        }
        int has = PySet_Contains(known, token);
        Py_DECREF(token);
        all = has < 0 ? -1 : has;
    }
    Py_DECREF(known);
    return all;
}

/* the addresses of one address field value s[a:b] as _parse_addresses reads it: a new list of
 * (name, addr), None when it is not usual, NULL with an exception set; `buf` holds n bytes */
static PyObject *
usual_addresses(const unsigned char *s, Py_ssize_t a, Py_ssize_t b, unsigned char *buf)
{
    Py_ssize_t m = unfold_to(s, a, b, buf);
    if (m > USUAL_MAX_VALUE || !is_ascii(buf, m))
        Py_RETURN_NONE;
    PyObject *pairs = fast_addresses(buf, m);
    if (pairs == NULL || pairs == Py_None)
        return pairs;
    Py_ssize_t ats = 0;
    for (Py_ssize_t i = 0; i < m; i++)
        ats += buf[i] == '@';
    if (ats > PyList_GET_SIZE(pairs)) {   /* _address_candidates looks for more: none may be new */
        int known = candidates_known(buf, m, pairs, (char *)buf + m);
        if (known <= 0) {
            Py_DECREF(pairs);
            if (known < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    return pairs;
}

static PyObject *
native_scan_usual(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan_usual(block, max_addresses, latest)");
        return NULL;
    }
    Py_ssize_t budget = PyLong_AsSsize_t(args[1]);
    if (budget == -1 && PyErr_Occurred())
        return NULL;
    double latest = PyFloat_AsDouble(args[2]);
    if (latest == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (get_buffer(args[0], &view) < 0)
        return NULL;
    const unsigned char *s = view.buf;
    const Py_ssize_t n = view.len;
    struct span *spans = NULL;
    Py_ssize_t count = 0;
    unsigned char *buf = NULL;
    PyObject *out = NULL, *mid = NULL, *mid_key = NULL, *subject = NULL, *sent = NULL, *from_addr = NULL,
             *from_name = NULL, *lists[3] = {NULL, NULL, NULL}, *defects = NULL, *seen = NULL;
    int todo = 0;   /* 1: the subject, 2: the From name, as the caller must still decode them */
    int rc = wanted_spans(s, n, &spans, &count);
    if (rc <= 0) {
        if (rc == 0)
            goto unusual;
        goto done;
    }
    Py_ssize_t firsts[N_WANTED];
    for (size_t k = 0; k < N_WANTED; k++)
        firsts[k] = -1;
    for (Py_ssize_t j = count - 1; j >= 0; j--)
        firsts[spans[j].k] = j;
    if (firsts[K_MID] < 0)
        goto unusual;   /* no Message-ID: the key is made of other fields */
    buf = PyMem_Malloc(2 * (size_t)n + 1);   /* an unfolded value, and scratch as long */
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    defects = PyList_New(0);
    if (defects == NULL)
        goto done;
    if (!is_ascii(s, n) && PyList_Append(defects, str_header_8bit) < 0)
        goto done;

    /* Message-ID */
    const struct span *f = &spans[firsts[K_MID]];
    Py_ssize_t m = unfold_to(s, f->a, f->b, buf);
    const unsigned char *p = usual_message_id(buf, &m);
    if (m == 0)
        goto unusual;
    mid_key = PyBytes_FromStringAndSize((const char *)p, m);
    mid = mid_key == NULL ? NULL : PyUnicode_DecodeUTF8((const char *)p, m, "replace");
    if (mid == NULL)
        goto done;

    /* spam and journal flags (values as they are: not unfolded) */
    int spam = 0;
    if (firsts[K_SPAMFLAG] >= 0) {
        f = &spans[firsts[K_SPAMFLAG]];
        m = f->b - f->a;
        p = str_strip(s + f->a, &m);
        spam = ci_equal(p, m, "yes");
    }
    if (!spam && firsts[K_SPAMSTATUS] >= 0) {
        f = &spans[firsts[K_SPAMSTATUS]];
        Py_ssize_t a = f->a;
        while (a < f->b && str_space(s[a]))
            a++;
        spam = f->b - a >= 3 && ci_equal(s + a, 3, "yes");
    }
    int journal = firsts[K_JOURNAL] >= 0;

    /* Subject */
    if (firsts[K_SUBJECT] >= 0) {
        f = &spans[firsts[K_SUBJECT]];
        m = unfold_to(s, f->a, f->b, buf);
        p = str_strip(buf, &m);
        if (m > USUAL_MAX_VALUE)
            goto unusual;
        subject = PyUnicode_DecodeUTF8((const char *)p, m, "replace");
        if (subject == NULL)
            goto done;
        if (has_encoded_word(p, m) || has_control(subject))
            todo |= 1;   /* the caller decodes its encoded words and escapes its controls */
        else if (PyUnicode_GET_LENGTH(subject) > USUAL_MAX_SUBJECT) {
            PyObject *cut = PyUnicode_Substring(subject, 0, USUAL_MAX_SUBJECT);
            Py_SETREF(subject, cut);
            if (subject == NULL)
                goto done;
        }
    } else
        subject = Py_NewRef(Py_None);

    /* Date */
    if (firsts[K_DATE] >= 0) {
        f = &spans[firsts[K_DATE]];
        m = unfold_to(s, f->a, f->b, buf);
        p = str_strip(buf, &m);
        long long epoch, uy;
        int um, ud, uh, umi, us;
        if (m == 0 || !usual_date(p, m, &epoch, &uy, &um, &ud, &uh, &umi, &us))
            goto unusual;
        sent = PyDateTimeAPI->DateTime_FromDateAndTime((int)uy, um, ud, uh, umi, us, 0, PyDateTime_TimeZone_UTC,
                                                       PyDateTimeAPI->DateTimeType);
        if (sent == NULL)
            goto done;
        /* plausible(): from 1971-01-01 UTC up to `latest` */
        if ((epoch < 31536000LL || (double)epoch > latest) && PyList_Append(defects, str_date_implausible) < 0)
            goto done;
    } else {
        sent = Py_NewRef(Py_None);
        if (PyList_Append(defects, str_date_missing) < 0)
            goto done;
    }

    /* From */
    from_addr = Py_NewRef(Py_None);
    from_name = Py_NewRef(Py_None);
    if (firsts[K_FROM] < 0) {
        if (PyList_Append(defects, str_from_missing) < 0)
            goto done;
    } else {
        f = &spans[firsts[K_FROM]];
        PyObject *pairs = usual_addresses(s, f->a, f->b, buf);
        if (pairs == NULL)
            goto done;
        if (pairs == Py_None) {
            Py_DECREF(pairs);
            goto unusual;
        }
        if (PyList_GET_SIZE(pairs) == 0) {
            Py_DECREF(pairs);
            if (PyList_Append(defects, str_address_unparsable) < 0)
                goto done;
        } else {
            PyObject *pair = PyList_GET_ITEM(pairs, 0), *name = PyTuple_GET_ITEM(pair, 0);
            Py_SETREF(from_addr, Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
            Py_ssize_t len = PyUnicode_GET_LENGTH(name);
            if (len) {
                const unsigned char *t = PyUnicode_1BYTE_DATA(name);
                if (has_encoded_word(t, len) || has_control(name)) {
                    todo |= 2;   /* the caller decodes it */
                    Py_SETREF(from_name, Py_NewRef(name));
                } else
                    Py_SETREF(from_name, len > USUAL_MAX_NAME ? PyUnicode_Substring(name, 0, USUAL_MAX_NAME)
                                                             : Py_NewRef(name));
            }
            Py_DECREF(pairs);
            if (from_name == NULL)
                goto done;
            budget -= 1;
        }
    }

    /* To, Cc, Bcc: unique addresses, in order, within the budget */
    static const int kinds[3] = {K_TO, K_CC, K_BCC};
    for (int q = 0; q < 3; q++) {
        lists[q] = PyList_New(0);
        if (lists[q] == NULL)
            goto done;
        if (firsts[kinds[q]] < 0)
            continue;
        seen = PySet_New(NULL);
        if (seen == NULL)
            goto done;
        for (Py_ssize_t j = firsts[kinds[q]]; j < count; j++) {
            if (spans[j].k != kinds[q])
                continue;
            PyObject *pairs = usual_addresses(s, spans[j].a, spans[j].b, buf);
            if (pairs == NULL)
                goto done;
            if (pairs == Py_None) {
                Py_DECREF(pairs);
                goto unusual;
            }
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
                PyObject *addr = PyTuple_GET_ITEM(PyList_GET_ITEM(pairs, i), 1);
                int had = PySet_Contains(seen, addr);
                if (had < 0 || (!had && (PySet_Add(seen, addr) < 0 || PyList_Append(lists[q], addr) < 0))) {
                    Py_DECREF(pairs);
                    goto done;
                }
            }
            Py_DECREF(pairs);
        }
        Py_CLEAR(seen);
        if (PyList_GET_SIZE(lists[q]) > budget)
            goto unusual;   /* headers-capped: the Python scan */
        budget -= PyList_GET_SIZE(lists[q]);
    }
    out = Py_BuildValue("(NNNNNNNNONNOi)", mid, subject, from_addr, from_name, lists[0], lists[1], lists[2], sent,
                        spam ? Py_True : Py_False, defects, mid_key, journal ? Py_True : Py_False, todo);
    mid = mid_key = subject = sent = from_addr = from_name = lists[0] = lists[1] = lists[2] = defects = NULL;
    goto done;
unusual:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(mid);
    Py_XDECREF(mid_key);
    Py_XDECREF(subject);
    Py_XDECREF(sent);
    Py_XDECREF(from_addr);
    Py_XDECREF(from_name);
    for (int q = 0; q < 3; q++)
        Py_XDECREF(lists[q]);
    Py_XDECREF(defects);
    Py_XDECREF(seen);
    PyMem_Free(buf);
    PyMem_Free(spans);
    PyBuffer_Release(&view);
    if (out == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "scan_usual failed");
    return out;
}

/* f04_usual_key(block, max_addresses): verify/mailkey.py's F04 key (f04_key: Message-ID, From, Subject as
 * "N" or "S<UTF-8 bytes>:<text>", the date as "N" or "T<microseconds since 1970>", then "|" and the sorted To
 * addresses, "|" and the sorted Cc addresses, each "<UTF-8 bytes>:<address>") of the fields scan_usual(block,
 * max_addresses, 0.0) reads: the key as a str; scan_usual's tuple itself when its subject is still to be decoded
 * (todo & 1: Python's RFC 2047 decoder); None when scan_usual answers None. (tests/unit/test_mail_key.py compares
 * it with the reference key.) */
struct keybuf {
    char *p;
    Py_ssize_t n, cap;
};

static int
key_put(struct keybuf *k, const char *s, Py_ssize_t n)
{
    if (k->n + n > k->cap) {
        Py_ssize_t cap = (k->n + n) * 2 + 64;
        char *p = PyMem_Realloc(k->p, (size_t)cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        k->p = p;
        k->cap = cap;
    }
    memcpy(k->p + k->n, s, (size_t)n);
    k->n += n;
    return 0;
}

/* a text field ("S<n>:<text>", or "N" for None) or, untagged, a list's address ("<n>:<address>") */
static int
key_text(struct keybuf *k, PyObject *u, int tagged)
{
    if (u == Py_None)
        return key_put(k, "N", 1);
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(u, &n);
    if (s == NULL)
        return -1;
    char head[32];
    int h = snprintf(head, sizeof head, tagged ? "S%zd:" : "%zd:", n);
    return key_put(k, head, h) < 0 ? -1 : key_put(k, s, n);
}

static int
key_list(struct keybuf *k, PyObject *list)
{
    if (key_put(k, "|", 1) < 0 || PyList_Sort(list) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++)
        if (key_text(k, PyList_GET_ITEM(list, i), 0) < 0)
            return -1;
    return 0;
}

static PyObject *
native_f04_usual_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "f04_usual_key(block, max_addresses)");
        return NULL;
    }
    PyObject *latest = PyFloat_FromDouble(0.0);
    if (latest == NULL)
        return NULL;
    PyObject *scan_args[3] = {args[0], args[1], latest};
    PyObject *got = native_scan_usual(self, scan_args, 3);
    Py_DECREF(latest);
    if (got == NULL || got == Py_None)
        return got;
    long todo = PyLong_AsLong(PyTuple_GET_ITEM(got, 12));
    if (todo == -1 && PyErr_Occurred()) {
        Py_DECREF(got);
        return NULL;
    }
    if (todo & 1)
        return got;
    struct keybuf k = {NULL, 0, 0};
    PyObject *out = NULL, *sent = PyTuple_GET_ITEM(got, 7);
    if (key_text(&k, PyTuple_GET_ITEM(got, 0), 1) < 0 || key_text(&k, PyTuple_GET_ITEM(got, 2), 1) < 0
        || key_text(&k, PyTuple_GET_ITEM(got, 1), 1) < 0)
        goto done;
    if (sent == Py_None) {
        if (key_put(&k, "N", 1) < 0)
            goto done;
    } else {   /* a UTC datetime (scan_usual's): its microseconds since 1970 */
        long long days = days_from_civil(PyDateTime_GET_YEAR(sent), PyDateTime_GET_MONTH(sent),
                                         PyDateTime_GET_DAY(sent));
        long long seconds = days * 86400 + PyDateTime_DATE_GET_HOUR(sent) * 3600LL
                            + PyDateTime_DATE_GET_MINUTE(sent) * 60LL + PyDateTime_DATE_GET_SECOND(sent);
        char when[40];
        int w = snprintf(when, sizeof when, "T%lld", seconds * 1000000LL + PyDateTime_DATE_GET_MICROSECOND(sent));
        if (key_put(&k, when, w) < 0)
            goto done;
    }
    if (key_list(&k, PyTuple_GET_ITEM(got, 4)) < 0 || key_list(&k, PyTuple_GET_ITEM(got, 5)) < 0)
        goto done;
    out = PyUnicode_DecodeUTF8(k.p, k.n, "strict");
done:
    PyMem_Free(k.p);
    Py_DECREF(got);
    return out;
}

static PyMethodDef native_methods[] = {
    {"has_blank_before_lf", (PyCFunction)(void (*)(void))native_has_blank_before_lf, METH_FASTCALL,
     "has_blank_before_lf(buf, start, end): is a LF in buf[start:end] preceded by a space or tab there?"},
    {"body_marks", (PyCFunction)(void (*)(void))native_body_marks, METH_FASTCALL,
     "body_marks(buf, start, end): 1 if a CR in buf[start:], | 2 if has_blank_before_lf(buf, start, end), "
     "| 4 if a NUL in buf."},
    {"content_end", (PyCFunction)(void (*)(void))native_content_end, METH_FASTCALL,
     "content_end(buf, start, stop): end of buf[start:stop] without its tail of spaces, tabs and LFs."},
    {"strip_blanks", (PyCFunction)(void (*)(void))native_strip_blanks, METH_FASTCALL,
     "strip_blanks(buf, start, end): buf[start:end] without the spaces and tabs before each LF."},
    {"crlf_to_lf", (PyCFunction)(void (*)(void))native_crlf_to_lf, METH_FASTCALL,
     "crlf_to_lf(buf, start=0): buf[start:].replace(b'\\r\\n', b'\\n')."},
    {"wanted_fields", (PyCFunction)native_wanted_fields, METH_O,
     "wanted_fields(block): toolkit.headers._wanted_fields_py(block)."},
    {"fast_addresses", (PyCFunction)native_fast_addresses, METH_O,
     "fast_addresses(value): toolkit.headers._fast_addresses_py(value) for an ASCII str."},
    {"mbox_scan", (PyCFunction)(void (*)(void))native_mbox_scan, METH_FASTCALL,
     "mbox_scan(buf, pos, eof, cap): importers.mbox._mbox_scan_py(buf, pos, eof, cap)."},
    {"find_from_line", (PyCFunction)(void (*)(void))native_find_from_line, METH_FASTCALL,
     "find_from_line(buf, start): buf.find(b'\\nFrom', start) for start >= 0."},
    {"split_mail", (PyCFunction)native_split_mail, METH_O,
     "split_mail(raw): toolkit.headers._split_mail_py(raw) as a tuple, for bytes."},
    {"scan_usual", (PyCFunction)(void (*)(void))native_scan_usual, METH_FASTCALL,
     "scan_usual(block, max_addresses, latest): the header scan of a usual block, or None "
     "(toolkit.headers._scan_usual_py)."},
    {"f04_usual_key", (PyCFunction)(void (*)(void))native_f04_usual_key, METH_FASTCALL,
     "f04_usual_key(block, max_addresses): verify.mailkey's key of what scan_usual reads, its tuple when the "
     "subject is still to be decoded, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Compiled per-mail scans of toolkit/headers.py (optional; see toolkit/_native.c).", -1, native_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    for (size_t k = 0; k < N_WANTED; k++) {
        if (wanted_names[k] == NULL) {
            wanted_names[k] = PyUnicode_InternFromString(WANTED[k]);
            if (wanted_names[k] == NULL)
                return NULL;
        }
    }
    struct { PyObject **slot; const char *text; } codes[] = {
        {&str_header_8bit, "header-8bit"}, {&str_date_implausible, "date-implausible"},
        {&str_date_missing, "date-missing"}, {&str_from_missing, "from-missing"},
        {&str_address_unparsable, "address-unparsable"}, {&str_empty_message, "empty-message"},
        {&str_no_headers, "no-headers"}, {&str_no_separator, "no-header-body-separator"},
    };
    for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
        if (*codes[k].slot == NULL && (*codes[k].slot = PyUnicode_InternFromString(codes[k].text)) == NULL)
            return NULL;
    }
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&native_module);
}
