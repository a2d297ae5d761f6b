// gemm_thin_impl.h compiled for one instruction set (CMake builds this file once per set,
// with that set's flags and DY_THIN_SET naming the entry point it defines).
#include "gemm_thin_impl.h"

#include "gemm_thin.h"

namespace dy {
namespace thin {

#define DY_THIN_CAT2(a, b) a##b
#define DY_THIN_CAT(a, b) DY_THIN_CAT2(a, b)
#ifdef DY_THIN_GEMM
const Fn DY_THIN_SET = &gemm_acc_vec;
const GemvFn DY_THIN_CAT(DY_THIN_SET, Gemv) = &gemv_acc_vec;
const BiasFn DY_THIN_CAT(DY_THIN_SET, Bias) = &gemm_bias_vec;
#else
const Fn DY_THIN_SET = nullptr;
const GemvFn DY_THIN_CAT(DY_THIN_SET, Gemv) = nullptr;
const BiasFn DY_THIN_CAT(DY_THIN_SET, Bias) = nullptr;
#endif

}  // namespace thin
}  // namespace dy
