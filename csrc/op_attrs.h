// Generated from dynet_api/ops.py by `python scripts/gen_op_attrs.py`: do not edit.
// attr::<op>::<name> is the place of attribute <name> in a node of <op>'s attribute tuple;
// kernels read attributes through these names (Attrs::num, integer, flag, ints, seq in common.h).
#pragma once

#include "common.h"

namespace dy {
namespace attr {

namespace input { constexpr AttrKey data{0, "input.data"}, dim{1, "input.dim"}; }
namespace constant { constexpr AttrKey value{0, "constant.value"}, dim{1, "constant.dim"}; }
namespace random_normal { constexpr AttrKey mean{0, "random_normal.mean"}, stddev{1, "random_normal.stddev"}, dim{2, "random_normal.dim"}; }
namespace random_bernoulli { constexpr AttrKey p{0, "random_bernoulli.p"}, scale{1, "random_bernoulli.scale"}, dim{2, "random_bernoulli.dim"}; }
namespace random_uniform { constexpr AttrKey left{0, "random_uniform.left"}, right{1, "random_uniform.right"}, dim{2, "random_uniform.dim"}; }
namespace random_gumbel { constexpr AttrKey mu{0, "random_gumbel.mu"}, beta{1, "random_gumbel.beta"}, dim{2, "random_gumbel.dim"}; }
namespace parameter { constexpr AttrKey storage{0, "parameter.storage"}, update{1, "parameter.update"}, dim{2, "parameter.dim"}; }
namespace lookup { constexpr AttrKey storage{0, "lookup.storage"}, indices{1, "lookup.indices"}, update{2, "lookup.update"}, dim{3, "lookup.dim"}; }
namespace plus_const { constexpr AttrKey c{0, "plus_const.c"}; }
namespace const_minus { constexpr AttrKey c{0, "const_minus.c"}; }
namespace scalar_mult { constexpr AttrKey c{0, "scalar_mult.c"}; }
namespace elu { constexpr AttrKey alpha{0, "elu.alpha"}; }
namespace softmax { constexpr AttrKey d{0, "softmax.d"}; }
namespace log_softmax { constexpr AttrKey restrict{0, "log_softmax.restrict"}; }
namespace logsumexp_dim { constexpr AttrKey d{0, "logsumexp_dim.d"}; }
namespace transpose { constexpr AttrKey dims{0, "transpose.dims"}; }
namespace reshape { constexpr AttrKey dim{0, "reshape.dim"}; }
namespace concatenate { constexpr AttrKey d{0, "concatenate.d"}; }
namespace select_rows { constexpr AttrKey rows{0, "select_rows.rows"}; }
namespace select_cols { constexpr AttrKey cols{0, "select_cols.cols"}; }
namespace pick { constexpr AttrKey indices{0, "pick.indices"}, dim{1, "pick.dim"}; }
namespace pick_batch_elems { constexpr AttrKey indices{0, "pick_batch_elems.indices"}; }
namespace pickrange { constexpr AttrKey start{0, "pickrange.start"}, end{1, "pickrange.end"}, d{2, "pickrange.d"}; }
namespace sum_dim { constexpr AttrKey dims{0, "sum_dim.dims"}, b{1, "sum_dim.b"}; }
namespace moment_dim { constexpr AttrKey dims{0, "moment_dim.dims"}, b{1, "moment_dim.b"}, r{2, "moment_dim.r"}, n{3, "moment_dim.n"}; }
namespace pickneglogsoftmax { constexpr AttrKey indices{0, "pickneglogsoftmax.indices"}; }
namespace hinge { constexpr AttrKey indices{0, "hinge.indices"}, m{1, "hinge.m"}; }
namespace huber_distance { constexpr AttrKey c{0, "huber_distance.c"}; }
namespace scale_gradient { constexpr AttrKey lambd{0, "scale_gradient.lambd"}; }
namespace argmax { constexpr AttrKey straight_through{0, "argmax.straight_through"}; }
namespace silu { constexpr AttrKey beta{0, "silu.beta"}; }
namespace round { constexpr AttrKey straight_through{0, "round.straight_through"}; }
namespace ceil { constexpr AttrKey straight_through{0, "ceil.straight_through"}; }
namespace floor { constexpr AttrKey straight_through{0, "floor.straight_through"}; }
namespace to_device { constexpr AttrKey device{0, "to_device.device"}; }
namespace sparsemax_loss { constexpr AttrKey target{0, "sparsemax_loss.target"}; }
namespace strided_select { constexpr AttrKey strides{0, "strided_select.strides"}, range_from{1, "strided_select.range_from"}, range_to{2, "strided_select.range_to"}; }
namespace max_dim { constexpr AttrKey d{0, "max_dim.d"}; }
namespace min_dim { constexpr AttrKey d{0, "min_dim.d"}; }
namespace cumsum { constexpr AttrKey d{0, "cumsum.d"}; }
namespace kmax_pooling { constexpr AttrKey k{0, "kmax_pooling.k"}, d{1, "kmax_pooling.d"}; }
namespace std_dim { constexpr AttrKey dims{0, "std_dim.dims"}, b{1, "std_dim.b"}, n{2, "std_dim.n"}; }
namespace hinge_dim { constexpr AttrKey indices{0, "hinge_dim.indices"}, d{1, "hinge_dim.d"}, m{2, "hinge_dim.m"}; }
namespace pairwise_rank_loss { constexpr AttrKey m{0, "pairwise_rank_loss.m"}; }
namespace poisson_loss { constexpr AttrKey y{0, "poisson_loss.y"}; }
namespace conv2d { constexpr AttrKey stride{0, "conv2d.stride"}, is_valid{1, "conv2d.is_valid"}; }
namespace maxpooling2d { constexpr AttrKey ksize{0, "maxpooling2d.ksize"}, stride{1, "maxpooling2d.stride"}, is_valid{2, "maxpooling2d.is_valid"}; }
namespace fold_rows { constexpr AttrKey nrows{0, "fold_rows.nrows"}; }
namespace kmh_ngram { constexpr AttrKey n{0, "kmh_ngram.n"}; }

// Every op's attribute names in order (comma-separated), for the check at load time.
struct OpAttrNames {
  const char* op;
  const char* names;
};
inline constexpr OpAttrNames kAll[] = {
    {"input", "data,dim"},
    {"constant", "value,dim"},
    {"random_normal", "mean,stddev,dim"},
    {"random_bernoulli", "p,scale,dim"},
    {"random_uniform", "left,right,dim"},
    {"random_gumbel", "mu,beta,dim"},
    {"parameter", "storage,update,dim"},
    {"lookup", "storage,indices,update,dim"},
    {"plus_const", "c"},
    {"const_minus", "c"},
    {"scalar_mult", "c"},
    {"elu", "alpha"},
    {"softmax", "d"},
    {"log_softmax", "restrict"},
    {"logsumexp_dim", "d"},
    {"transpose", "dims"},
    {"reshape", "dim"},
    {"concatenate", "d"},
    {"select_rows", "rows"},
    {"select_cols", "cols"},
    {"pick", "indices,dim"},
    {"pick_batch_elems", "indices"},
    {"pickrange", "start,end,d"},
    {"sum_dim", "dims,b"},
    {"moment_dim", "dims,b,r,n"},
    {"pickneglogsoftmax", "indices"},
    {"hinge", "indices,m"},
    {"huber_distance", "c"},
    {"scale_gradient", "lambd"},
    {"argmax", "straight_through"},
    {"silu", "beta"},
    {"round", "straight_through"},
    {"ceil", "straight_through"},
    {"floor", "straight_through"},
    {"to_device", "device"},
    {"sparsemax_loss", "target"},
    {"strided_select", "strides,range_from,range_to"},
    {"max_dim", "d"},
    {"min_dim", "d"},
    {"cumsum", "d"},
    {"kmax_pooling", "k,d"},
    {"std_dim", "dims,b,n"},
    {"hinge_dim", "indices,d,m"},
    {"pairwise_rank_loss", "m"},
    {"poisson_loss", "y"},
    {"conv2d", "stride,is_valid"},
    {"maxpooling2d", "ksize,stride,is_valid"},
    {"fold_rows", "nrows"},
    {"kmh_ngram", "n"},
};

}  // namespace attr
}  // namespace dy
