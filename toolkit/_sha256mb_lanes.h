/* One multi-buffer SHA-256 engine: 8 messages at once, one per 32-bit lane of a 256-bit vector.
 *
 * Included twice by toolkit/_sha256mb.c, with these defined first:
 *   MB_TARGET       the function attribute target string ("avx2", or "avx2,avx512f,avx512vl")
 *   MB_NAME(x)      the name of this variant's function x
 *   MB_ROR(x, n)    rotate each 32-bit lane right by n
 *   MB_XOR3(a,b,c)  a ^ b ^ c
 *   MB_CH(e,f,g)    (e & f) ^ (~e & g)
 *   MB_MAJ(a,b,c)   (a & b) ^ (a & c) ^ (b & c)
 * The rounds follow FIPS 180-4, section 6.2.2; docs/architecture.md, "Multi-buffer SHA-256". */

#define MB_FN static __attribute__((target(MB_TARGET)))

#define MB_ADD(a, b) _mm256_add_epi32((a), (b))
#define MB_S0(a) MB_XOR3(MB_ROR(a, 2), MB_ROR(a, 13), MB_ROR(a, 22))
#define MB_S1(e) MB_XOR3(MB_ROR(e, 6), MB_ROR(e, 11), MB_ROR(e, 25))
#define MB_s0(w) MB_XOR3(MB_ROR(w, 7), MB_ROR(w, 18), _mm256_srli_epi32(w, 3))
#define MB_s1(w) MB_XOR3(MB_ROR(w, 17), MB_ROR(w, 19), _mm256_srli_epi32(w, 10))

/* one round: t is the round number, j = t mod 16 the schedule slot it uses */
#define MB_ROUND(a, b, c, d, e, f, g, h, t, j)                                                        \
    do {                                                                                               \
        __m256i t1 = MB_ADD(MB_ADD(h, MB_S1(e)), MB_ADD(MB_CH(e, f, g),                                \
                                                        MB_ADD(_mm256_set1_epi32((int)K256[t]), w[j]))); \
        __m256i t2 = MB_ADD(MB_S0(a), MB_MAJ(a, b, c));                                                \
        d = MB_ADD(d, t1);                                                                             \
        h = MB_ADD(t1, t2);                                                                            \
    } while (0)

/* the schedule word of slot j for the next 16 rounds: W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16] */
#define MB_SCHED(j)                                                                                    \
    w[j] = MB_ADD(MB_ADD(MB_s1(w[((j) + 14) & 15]), w[((j) + 9) & 15]),                                \
                  MB_ADD(MB_s0(w[((j) + 1) & 15]), w[j]))

#define MB_ROUND8(base, s)                                                                             \
    MB_ROUND(a, b, c, d, e, f, g, h, (base) + 0, (s) + 0);                                             \
    MB_ROUND(h, a, b, c, d, e, f, g, (base) + 1, (s) + 1);                                             \
    MB_ROUND(g, h, a, b, c, d, e, f, (base) + 2, (s) + 2);                                             \
    MB_ROUND(f, g, h, a, b, c, d, e, (base) + 3, (s) + 3);                                             \
    MB_ROUND(e, f, g, h, a, b, c, d, (base) + 4, (s) + 4);                                             \
    MB_ROUND(d, e, f, g, h, a, b, c, (base) + 5, (s) + 5);                                             \
    MB_ROUND(c, d, e, f, g, h, a, b, (base) + 6, (s) + 6);                                             \
    MB_ROUND(b, c, d, e, f, g, h, a, (base) + 7, (s) + 7)

#define MB_SCHED8(s)                                                                                   \
    MB_SCHED((s) + 0); MB_SCHED((s) + 1); MB_SCHED((s) + 2); MB_SCHED((s) + 3);                        \
    MB_SCHED((s) + 4); MB_SCHED((s) + 5); MB_SCHED((s) + 6); MB_SCHED((s) + 7)

/* 8 rows of 8 words (one row per lane, words in memory order) -> 8 columns (word i of every lane),
 * each word turned from big-endian */
MB_FN inline void MB_NAME(load8)(__m256i *out, const uint8_t *const src[LANES], size_t off) {
    const __m256i swap = _mm256_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
                                          3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    __m256i r[8], t[8], u[8];
    for (int l = 0; l < 8; l++)
        r[l] = _mm256_loadu_si256((const __m256i *)(src[l] + off));
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        u[4 * k + 0] = _mm256_unpacklo_epi64(t[4 * k + 0], t[4 * k + 2]);
        u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k + 0], t[4 * k + 2]);
        u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for (int i = 0; i < 4; i++) {
        out[i] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(u[i], u[i + 4], 0x20), swap);
        out[i + 4] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(u[i], u[i + 4], 0x31), swap);
    }
}

/* one 64-byte block of each lane (src[l]) into the lanes' states (st[word] holds that word of every lane) */
MB_FN void MB_NAME(compress)(uint32_t st[8][LANES], const uint8_t *const src[LANES]) {
    __m256i w[16];
    MB_NAME(load8)(w, src, 0);
    MB_NAME(load8)(w + 8, src, 32);
    __m256i a = _mm256_load_si256((const __m256i *)st[0]), b = _mm256_load_si256((const __m256i *)st[1]);
    __m256i c = _mm256_load_si256((const __m256i *)st[2]), d = _mm256_load_si256((const __m256i *)st[3]);
    __m256i e = _mm256_load_si256((const __m256i *)st[4]), f = _mm256_load_si256((const __m256i *)st[5]);
    __m256i g = _mm256_load_si256((const __m256i *)st[6]), h = _mm256_load_si256((const __m256i *)st[7]);
    MB_ROUND8(0, 0);
    MB_ROUND8(8, 8);
    for (int base = 16; base < 64; base += 16) {
        MB_SCHED8(0);
        MB_ROUND8(base, 0);
        MB_SCHED8(8);
        MB_ROUND8(base + 8, 8);
    }
    __m256i *s = (__m256i *)st;
    s[0] = MB_ADD(s[0], a); s[1] = MB_ADD(s[1], b); s[2] = MB_ADD(s[2], c); s[3] = MB_ADD(s[3], d);
    s[4] = MB_ADD(s[4], e); s[5] = MB_ADD(s[5], f); s[6] = MB_ADD(s[6], g); s[7] = MB_ADD(s[7], h);
}

/* every message of the batch (in the order given by ``order``: longest first) through the 8 lanes; a lane whose
 * message ends takes the next one, so the lanes stay busy until the queue is empty */
MB_FN void MB_NAME(hash_many)(const Msg *msgs, const size_t *order, size_t n, uint8_t *digests) {
    Lane lanes[LANES];
    uint32_t st[8][LANES] __attribute__((aligned(32)));
    const uint8_t *src[LANES];
    size_t next = 0;
    int busy = 0;
    for (int l = 0; l < LANES; l++)
        busy += lane_refill(&lanes[l], st, l, msgs, order, n, &next);
    while (busy) {
        for (int l = 0; l < LANES; l++)
            src[l] = lane_block(&lanes[l]);
        MB_NAME(compress)(st, src);
        for (int l = 0; l < LANES; l++) {
            if (lanes[l].msg == NULL || !lane_advance(&lanes[l]))
                continue;
            lane_digest(st, l, digests + 32 * (size_t)(lanes[l].msg - msgs));
            busy -= 1 - lane_refill(&lanes[l], st, l, msgs, order, n, &next);
        }
    }
}

#undef MB_FN
#undef MB_ADD
#undef MB_S0
#undef MB_S1
#undef MB_s0
#undef MB_s1
#undef MB_ROUND
#undef MB_SCHED
#undef MB_ROUND8
#undef MB_SCHED8
