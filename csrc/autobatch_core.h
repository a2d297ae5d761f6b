/* The scheduling of dynet_api/autobatch.py over plain arrays: one copy, shared by the front end's C
 * twin (csrc/autobatch_plan.c, which computes the signatures from Python objects) and cpu_eigen's
 * C++ executor (csrc/executor.cpp, which computes them from its own node records).  Plain C that
 * also compiles as C++; every function is static, so each includer gets its own copy.
 *
 * Input: nodes 0..n-1 of a range (relative ids, in graph order); node jj's operands inside the
 * range are in_ids[in_off[jj] .. in_off[jj + 1]) (each < jj; operands before the range are left
 * out), sid[jj] its signature (-1: it runs alone), sig_mm[s] whether signature s is a product.
 * Output: the execution order, one group per kernel call (a node alone, or nodes of one
 * signature), the ids of each group ascending.  Strategy 2 runs level by level; any other
 * strategy is DyNet's agenda (the module doc of dynet_api/autobatch.py). */
#ifndef DY_AUTOBATCH_CORE_H
#define DY_AUTOBATCH_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ptrdiff_t n;
    const ptrdiff_t *in_off, *in_ids, *sid;
    ptrdiff_t nsig;
    const int *sig_mm;
    int strategy;
} ab_range;

enum { AB_OK = 0, AB_NOMEM = -1, AB_CYCLE = -2 };

typedef struct {
    double avg;
    int matmul;
    ptrdiff_t sid;
} ab_prio;

static int ab_prio_less(const ab_prio *x, const ab_prio *y) {
    if (x->avg != y->avg) return x->avg < y->avg;
    if (x->matmul != y->matmul) return x->matmul < y->matmul;
    return x->sid < y->sid;
}

static void ab_heap_push(ab_prio *h, ptrdiff_t *n, ab_prio p) {
    ptrdiff_t i = (*n)++;
    h[i] = p;
    while (i > 0) {
        ptrdiff_t up = (i - 1) / 2;
        if (!ab_prio_less(&h[i], &h[up])) break;
        ab_prio t = h[i];
        h[i] = h[up];
        h[up] = t;
        i = up;
    }
}

static ab_prio ab_heap_pop(ab_prio *h, ptrdiff_t *n) {
    ab_prio top = h[0];
    h[0] = h[--(*n)];
    ptrdiff_t i = 0;
    for (;;) {
        ptrdiff_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && ab_prio_less(&h[l], &h[m])) m = l;
        if (r < *n && ab_prio_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        ab_prio t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

/* Sort a[0..n) ascending: quicksort (median of three) down to runs of 16, then one insertion pass;
 * the deeper half iterated, the smaller recursed, so the stack stays O(log n).  qsort's comparison
 * callback made the groups' sorts ~10% of the plan's instructions. */
static void ab_sort_ids(ptrdiff_t *a, ptrdiff_t n) {
    while (n > 16) {
        ptrdiff_t m = n / 2, t;
#define AB_SWAP(i, j) (t = a[i], a[i] = a[j], a[j] = t)
        if (a[m] < a[0]) AB_SWAP(m, 0);
        if (a[n - 1] < a[m]) {
            AB_SWAP(n - 1, m);
            if (a[m] < a[0]) AB_SWAP(m, 0);
        }
        ptrdiff_t pivot = a[m], i = 0, j = n - 1;
        for (;;) { /* Hoare's partition: a[0..j] <= pivot <= a[j+1..n) */
            while (a[i] < pivot) ++i;
            while (pivot < a[j]) --j;
            if (i >= j) break;
            AB_SWAP(i, j);
            ++i, --j;
        }
#undef AB_SWAP
        ptrdiff_t left = j + 1;
        if (left < n - left) {
            ab_sort_ids(a, left);
            a += left, n -= left;
        } else {
            ab_sort_ids(a + left, n - left);
            n = left;
        }
    }
    for (ptrdiff_t k = 1; k < n; ++k) {
        ptrdiff_t v = a[k], q = k;
        for (; q > 0 && v < a[q - 1]; --q) a[q] = a[q - 1];
        a[q] = v;
    }
}

/* Close the group order[starts[*ng]] .. order[end) (sorted ascending) and open the next. */
static void ab_close(ptrdiff_t *order, ptrdiff_t *starts, ptrdiff_t *ng, ptrdiff_t end) {
    ptrdiff_t s = starts[*ng], k = s + 1;
    while (k < end && order[k - 1] < order[k]) ++k; /* often already ascending: no sort */
    if (k < end) ab_sort_ids(order + s, end - s);
    starts[++(*ng)] = end;
}

/* The scratch's index type: 32 bits, half the memory of ptrdiff_t for the arrays the agenda walks
 * in no particular order (a node's successors' counts, a signature's list of ready nodes), which at
 * 50k nodes then stay in the L2 cache. */
typedef int32_t ab_idx;

/* The bytes of scratch ab_plan needs for the range (a caller that plans often keeps one buffer). */
static size_t ab_plan_work_bytes(const ab_range *g) {
    size_t n = (size_t)g->n, nsig = (size_t)g->nsig, nedge = (size_t)g->in_off[g->n];
    return (nsig + 1) * (sizeof(double) + sizeof(ab_prio)) + (6 * n + nedge + 4 * nsig + 8) * sizeof(ab_idx);
}

/* The order of the range: order[] (n ids), starts[] (groups + 1 offsets into order), with work
 * (ab_plan_work_bytes(g) bytes, aligned for a double) as scratch, or NULL to allocate it here.
 * Returns the number of groups, or AB_NOMEM (also for a range past 2^31 - 1 nodes or edges) /
 * AB_CYCLE. */
static ptrdiff_t ab_plan(const ab_range *g, ptrdiff_t *order, ptrdiff_t *starts, void *work) {
    ptrdiff_t n = g->n, nsig = g->nsig, ng = 0, nedge = g->in_off[n];
    if (n >= INT32_MAX || nedge >= INT32_MAX || nsig >= INT32_MAX) return AB_NOMEM;
    size_t bytes = ab_plan_work_bytes(g);
    void *own = work ? NULL : malloc(bytes);
    if (!work && !own) return AB_NOMEM;
    double *sig_sum = (double *)(work ? work : own);
    ab_prio *heap = (ab_prio *)(sig_sum + nsig + 1);
    ab_idx *mem = (ab_idx *)(heap + nsig + 1);
    ab_idx *extra = mem + 5 * n + nedge + 3 * nsig + 4; /* n + 3 (levels), nsig + 1 (signature order) */
    memset(sig_sum, 0, ((size_t)nsig + 1) * sizeof(double));
    ab_idx *depth = mem, *left = mem + n, *succ_off = mem + 2 * n; /* n + 1 */
    ab_idx *next = mem + 3 * n + 1, *queue = mem + 4 * n + 1, *succ = mem + 5 * n + 1;
    ab_idx *sig_cnt = succ + nedge, *head = sig_cnt + nsig, *tail = head + nsig;
    /* only the counters start at zero (depth and left are written for every node before they are
     * read, the rest as they fill): at 50k nodes, zeroing all of it was a 3 MB memset per plan */
    memset(succ_off, 0, (size_t)(n + 1) * sizeof(ab_idx));
    memset(sig_cnt, 0, (size_t)nsig * sizeof(ab_idx));
    ptrdiff_t jj, e, s;
    starts[0] = 0;
    for (jj = 0; jj < n; ++jj) {
        ptrdiff_t dep = 0;
        for (e = g->in_off[jj]; e < g->in_off[jj + 1]; ++e) {
            ptrdiff_t k = g->in_ids[e];
            if (depth[k] >= dep) dep = depth[k] + 1;
            ++succ_off[k + 1];
        }
        depth[jj] = dep;
        left[jj] = g->in_off[jj + 1] - g->in_off[jj];
        if (g->sid[jj] >= 0) sig_sum[g->sid[jj]] += (double)dep, ++sig_cnt[g->sid[jj]];
    }
    for (jj = 0; jj < n; ++jj) succ_off[jj + 1] += succ_off[jj];
    memcpy(next, succ_off, (size_t)n * sizeof(ab_idx)); /* scratch: each successor list's next slot */
    for (jj = 0; jj < n; ++jj)
        for (e = g->in_off[jj]; e < g->in_off[jj + 1]; ++e) succ[next[g->in_ids[e]]++] = jj;
    for (s = 0; s < nsig; ++s) head[s] = -1;
    if (g->strategy == 2) {
        /* level by level: the nodes alone in graph order, then each signature's nodes (products last) */
        ptrdiff_t maxd = -1, at = 0, d, q, o;
        for (jj = 0; jj < n; ++jj)
            if (depth[jj] > maxd) maxd = depth[jj];
        ab_idx *lvl = extra, *sorder = extra + n + 3;
        memset(lvl, 0, ((size_t)maxd + 3) * sizeof(ab_idx));
        for (jj = 0; jj < n; ++jj) ++lvl[depth[jj] + 1];
        for (d = 0; d <= maxd; ++d) lvl[d + 1] += lvl[d];
        for (jj = 0; jj < n; ++jj) queue[lvl[depth[jj]]++] = jj; /* nodes by level, graph order */
        ptrdiff_t start = 0;
        for (d = 0; d <= maxd; ++d) {
            ptrdiff_t end = lvl[d], norder = 0;
            int pass;
            for (q = start; q < end; ++q) {
                jj = queue[q];
                s = g->sid[jj];
                if (s < 0) {
                    order[at++] = jj;
                    ab_close(order, starts, &ng, at);
                } else {
                    next[jj] = -1;
                    if (head[s] < 0) head[s] = jj, sorder[norder++] = s;
                    else next[tail[s]] = jj;
                    tail[s] = jj;
                }
            }
            for (pass = 0; pass < 2; ++pass)
                for (o = 0; o < norder; ++o) {
                    s = sorder[o];
                    if (g->sig_mm[s] != pass) continue;
                    for (jj = head[s]; jj >= 0; jj = next[jj]) order[at++] = jj;
                    ab_close(order, starts, &ng, at);
                }
            for (o = 0; o < norder; ++o) head[sorder[o]] = -1;
            start = end;
        }
    } else {
        /* DyNet's agenda: ready nodes alone first (FIFO, graph order at the start); else the ready
         * signature of lowest average depth (ties: products last, then the first seen) */
        ptrdiff_t qh = 0, qt = 0, nheap = 0, at = 0;
#define AB_READY(q)                                                                             \
    do {                                                                                        \
        ptrdiff_t s_ = g->sid[q];                                                               \
        if (s_ < 0) queue[qt++] = (q);                                                          \
        else {                                                                                  \
            next[q] = -1;                                                                       \
            if (head[s_] < 0) {                                                                 \
                ab_prio p_;                                                                     \
                p_.avg = sig_sum[s_] / (double)sig_cnt[s_], p_.matmul = g->sig_mm[s_], p_.sid = s_; \
                head[s_] = (q);                                                                 \
                ab_heap_push(heap, &nheap, p_);                                                 \
            } else next[tail[s_]] = (q);                                                        \
            tail[s_] = (q);                                                                     \
        }                                                                                       \
    } while (0)
        for (jj = 0; jj < n; ++jj)
            if (left[jj] == 0) AB_READY(jj);
        while (at < n) {
            ptrdiff_t from = at, q;
            if (qh < qt) {
                order[at++] = queue[qh++];
            } else {
                if (nheap == 0) {
                    free(own);
                    return AB_CYCLE;
                }
                s = ab_heap_pop(heap, &nheap).sid;
                for (jj = head[s]; jj >= 0; jj = next[jj]) order[at++] = jj;
                head[s] = -1;
            }
            ab_close(order, starts, &ng, at);
            for (q = from; q < at; ++q) {
                jj = order[q];
                for (e = succ_off[jj]; e < succ_off[jj + 1]; ++e) {
                    ptrdiff_t t = succ[e];
                    if (--left[t] == 0) AB_READY(t);
                }
            }
        }
#undef AB_READY
    }
    free(own);
    return ng;
}

#endif /* DY_AUTOBATCH_CORE_H */
