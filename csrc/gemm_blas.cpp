// See gemm_blas.h.  The library is reached only through function pointers resolved by
// dlsym, so no BLAS header or import library is needed at build time.
#include "gemm_blas.h"

#include <climits>
#include <cstdlib>

#include "common.h"

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define DY_HAVE_DLOPEN 1
#endif

namespace dy {
namespace blas {

namespace {
// cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                         int);
using SetThreadsFn = void (*)(int);
using ConfigFn = const char* (*)();
constexpr int COL_MAJOR = 102, NO_TRANS = 111, TRANS = 112;

SgemmFn g_sgemm = nullptr;
SetThreadsFn g_set_threads = nullptr;
ConfigFn g_config = nullptr;
int g_threads_set = -1;  // the thread count last handed to the library
// 10000x256x16 (one step of the LM's output layer) is 41M; the LSTM's 1024x256x16 is 4.2M.  From
// 1M on, OpenBLAS's AVX-512 kernels beat Eigen's AVX2 ones (the only other path for a product with
// no short side): the Tree-LSTM's batched 128x256 products over 30-120 columns (autobatching, 16
// trees per graph: 6% faster per update than with the threshold at 4M; the other tasks level).
int64_t g_min_work = int64_t(1) << 20;
// A thin product (a side shorter than this) needs 8 times that work: OpenBLAS packs both
// operands on each call, which the LSTM's per-step 1024x256 weight times 16 columns does
// not amortise (the AVX2 path is faster there), while the output layer's 10000x256 times
// 16 columns (41M) still gains from OpenBLAS.
int64_t g_min_side = 32;
}  // namespace

std::string load(const std::string& path, const std::string& prefix) {
#ifdef DY_HAVE_DLOPEN
  // OpenBLAS starts its thread pool (one per core, spinning between calls) when it is
  // opened; start it with the backend's thread count, which the calls follow afterwards.
  const char* env = std::getenv("OPENBLAS_NUM_THREADS");
  if (!env) setenv("OPENBLAS_NUM_THREADS", std::to_string(threads()).c_str(), 1);
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!env) unsetenv("OPENBLAS_NUM_THREADS");
  if (!h) {
    const char* e = dlerror();
    return std::string("dlopen failed: ") + (e ? e : path);
  }
  auto sym = [&](const char* name) { return dlsym(h, (prefix + name).c_str()); };
  auto sg = reinterpret_cast<SgemmFn>(sym("cblas_sgemm"));
  if (!sg) return "no symbol " + prefix + "cblas_sgemm in " + path;
  g_set_threads = reinterpret_cast<SetThreadsFn>(sym("openblas_set_num_threads"));
  g_config = reinterpret_cast<ConfigFn>(sym("openblas_get_config"));
  g_threads_set = -1;
  g_sgemm = sg;
  return "";
#else
  (void)path, (void)prefix;
  return "dlopen is not available on this platform";
#endif
}

void unload() { g_sgemm = nullptr; }
bool loaded() { return g_sgemm != nullptr; }
std::string describe() { return g_sgemm && g_config ? std::string(g_config()) : std::string(); }
int64_t min_work() { return g_min_work; }
void set_min_work(int64_t w) { g_min_work = w; }
int64_t min_side() { return g_min_side; }
void set_min_side(int64_t s) { g_min_side = s; }

bool would_take(int64_t m, int64_t n, int64_t k) {
  const int64_t work = m * n * k;
  const bool thin = m < g_min_side || n < g_min_side || k < g_min_side;
  return g_sgemm && work >= (thin ? 8 * g_min_work : g_min_work) && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX;
}

bool gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  if (!would_take(m, n, k)) return false;
  if (g_set_threads && g_threads_set != threads()) {  // follow --dynet-threads (OpenBLAS defaults to all cores)
    g_threads_set = threads();
    g_set_threads(g_threads_set);
  }
  g_sgemm(COL_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, int(m), int(n), int(k), 1.0f, A,
          int(ta ? k : m), B, int(tb ? n : k), 1.0f, C, int(m));
  return true;
}

}  // namespace blas
}  // namespace dy
