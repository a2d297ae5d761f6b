// The whole-graph executor (see executor.h): the graph's new nodes are read once through the
// contract (contract.h), values and gradients live in arenas; under autobatching, nodes run in
// the front end's scheduler's groups (autobatch_core.h), each group one kernel call.
#include "executor.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "autobatch.h"
#include "autobatch_core.h"
#include "common.h"
#include "contract.h"
#include "flush_denormals.h"
#include "gemm_thin.h"
#include "kernel_util.h"
#include "op_attrs.h"
#include "pycall.h"
#include "tensor.h"


namespace dy {

namespace {

namespace py = pybind11;
struct OpInfo {
  int code = -1;
  int leaf = 0;  // 1 input, 2 parameter, 3 lookup
  std::string name;
  std::vector<int> nograd;
  // autobatching (contract::OpRecord): whether nodes of one signature may join, the attributes
  // with one entry per batch element, the operands taken unbatched, the place of ``b`` (or -1)
  bool maps = false;
  std::vector<int> per_elem, shared;
  int b_attr = -1;
  // per_elem and shared as bit sets (the signature asks per attribute and operand); an index past
  // 63 is looked up in the lists
  uint64_t per_elem_bits = 0, shared_bits = 0;
  static bool has(const std::vector<int>& v, uint64_t bits, int k) {
    return k < 64 ? (bits >> k) & 1 : std::find(v.begin(), v.end(), k) != v.end();
  }
  bool is_per_elem(int k) const { return has(per_elem, per_elem_bits, k); }
  bool is_shared(int q) const { return has(shared, shared_bits, q); }
};

// A small cache from an object's address to what the executor read of it (an op's record, a Dim's
// shape), in front of a map: two-way, its slot from the address scrambled.  Python objects of one
// size lie at strides that left most of (address >> 4) % 64 unused: the Tree-LSTM's 11 ops shared
// 7 slots of a direct-mapped cache, and a fifth of its nodes went on to the map.
template <class V>
class PtrCache {
 public:
  const V* find(const void* p) const {
    const size_t i = slot(p);
    if (key_[i] == p) return val_[i];
    return key_[i ^ 1] == p ? val_[i ^ 1] : nullptr;
  }
  void put(const void* p, const V* v) {
    size_t i = slot(p);
    if (key_[i] && key_[i] != p) i ^= 1;  // the pair's other way (the newer entry wins it)
    key_[i] = p, val_[i] = v;
  }
  void clear() { key_.fill(nullptr), val_.fill(nullptr); }

 private:
  static constexpr size_t kSlots = 64;
  static size_t slot(const void* p) {
    return size_t((uint64_t(reinterpret_cast<uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull) >> 58);
  }
  std::array<const void*, kSlots> key_{};
  std::array<const V*, kSlots> val_{};
};

// Kernel-call counters (dynet_api/profiling.py's rule, for every backend alike): per op code, forward
// nodes evaluated, kernel calls (a node run alone, a batched group, each input's backward, a
// batched dX or dW product, a leaf's gradient hand-over) and, with --dynet-profiling, seconds.
struct KernelCounts {
  std::vector<int64_t> nodes, calls;
  std::vector<double> seconds;
  bool timing = false;
  KernelCounts() { reset(); }
  void reset() {
    size_t n = kernel_table().size();
    nodes.assign(n, 0), calls.assign(n, 0), seconds.assign(n, 0.0);
  }
};
KernelCounts* g_counts = nullptr;  // never destroyed (may outlive the interpreter's teardown)
// Made on first use (the kernel table is complete only once every file's registrations ran); a
// plain pointer test, inlined, where a function-local static cost a guarded call per kernel call.
inline KernelCounts& counts() {
  if (__builtin_expect(g_counts == nullptr, 0)) g_counts = new KernelCounts();
  return *g_counts;
}
inline void count_call(int op, int64_t nodes = 0) {
  KernelCounts& c = counts();
  ++c.calls[size_t(op)], c.nodes[size_t(op)] += nodes;
}

// Adds the time of one kernel call to its op's seconds, only when profiling is on (a branch otherwise).
class CallTimer {
 public:
  explicit CallTimer(int op) : op_(op), on_(counts().timing) {
    if (on_) t0_ = std::chrono::steady_clock::now();
  }
  ~CallTimer() {
    if (on_) counts().seconds[size_t(op_)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  int op_;
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

// Runs a ComputationGraph's nodes inside C++: the graph's new nodes are read once
// (contract::GraphSource), values and gradients live in arenas.
class Executor {
 public:
  explicit Executor(py::object cg) : graph_(std::move(cg)) {
    matmul_ = kernel_code("matmul"), affine_ = kernel_code("affine_transform"), concat_ = kernel_code("concatenate");
    lstm_gates_ = kernel_code("vanilla_lstm_gates"), lstm_gates_drop_ = kernel_code("vanilla_lstm_gates_dropout");
  }

  // Set when a forward or backward ended with an exception: the next reset gives the arenas' blocks back.
  struct FailureMark {
    bool& failed;
    int before = std::uncaught_exceptions();
    ~FailureMark() {
      if (std::uncaught_exceptions() > before) failed = true;
    }
  };

  void forward(int a, int b) {
    FailureMark fm{failed_};
    FlushDenormals ftz;
    if (b > int(nodes_.size())) marshal(b);
    bool check = graph_.check_validity();
    if (ab::strategy() > 0) {
      planned_forward(a, b, ab::strategy(), check);
      return;
    }
    for (int j = a; j < b; ++j) {
      run_forward(j);
      if (check) check_finite(j);
    }
  }

  void backward(int i, bool full) {
    if (i < 0 || i >= int(nodes_.size())) throw py::index_error("cpu_eigen: backward from an unevaluated node");
    FailureMark fm{failed_};
    FlushDenormals ftz;
    grads_.reset(), dpre_.reset_merged();
    ku::WeightSweep sweep;  // the weights stay as they are until backward returns
    n_grad_ = 0;
    // every node, under autobatching: a group reaching past i adds (zeros) into its later members' operands
    int last = planned_ ? int(nodes_.size()) - 1 : i;
    fresh_.assign(size_t(last + 1), 0);
    if (planned_) group_grad_blocks(i);
    int grouped = planned_ ? std::min(i + 1, int(gof_.size())) : 0;
    bw_.assign(size_t(last + 1), Bw{});
    for (int j = 0; j < grouped; ++j) {
      if (gof_[size_t(j)] < 0) continue;  // a member of a live group: its slice of the block
      const GroupRec& G = grecs_[size_t(gof_[size_t(j)])];
      if (G.g) bw_[size_t(j)].g = G.g + goff_[size_t(G.o0 + gat_[size_t(j)])], fresh_[size_t(j)] = 1;
    }
    bwd_top_ = i;
    dxq_.clear(), pending_leaves_.clear();
    alias_param_grads(i);
    n_grad_ = i + 1;
    dw_.clear();
    if (planned_) {
      planned_backward(i, full);
    } else {
      Node& top = nodes_[size_t(i)];
      std::fill_n(grad_of(top), top.s->total(), 1.0f);
      for (int j = i; j >= 0; --j) backward_node(j, full, false);
    }
    flush_lstm_inputs();
  }

  py::object value(int i) {
    if (i < 0 || i >= int(nodes_.size()) || !hot_[size_t(i)].v)
      throw py::index_error("cpu_eigen: value of an unevaluated node " + std::to_string(i));
    return copy_out(hot_[size_t(i)].v, *nodes_[size_t(i)].s);
  }

  // The first value of node i as a float: a one-element result (a loss) without a tensor copy.
  double scalar(int i) {
    if (i < 0 || i >= int(nodes_.size()) || !hot_[size_t(i)].v)
      throw py::index_error("cpu_eigen: value of an unevaluated node " + std::to_string(i));
    return double(hot_[size_t(i)].v[0]);
  }

  py::object gradient(int i) {
    if (i < 0 || i >= n_grad_ || !bw_[size_t(i)].g) return py::none();
    return copy_out(defined_grad(nodes_[size_t(i)]), *nodes_[size_t(i)].s);
  }

  void reset() {
    nodes_.clear(), hot_.clear(), key_dim_.clear(), marks_.clear(), bw_.clear(), args_.clear(), ints_.clear(), flts_.clear(), slots_.clear(), leaves_.clear();
    plan_.clear(), grecs_.clear(), gmem_.clear(), gxs_.clear(), gjoin_.clear(), grun_x_.clear(), grun_n_.clear();
    goff_.clear(), gops_.clear(), gopnd_.clear(), gof_.clear(), gat_.clear(), param_ids_.clear();
    gints_.clear(), gflts_.clear(), gslots_.clear();
    planned_ = false;
    if (failed_) {
      vals_.release(), grads_.release(), dpre_.release();
      failed_ = false;
    }
    vals_.reset(), grads_.reset(), dpre_.reset_merged();
    if (shape_pool_.size() > kShapePoolMax) shape_cache_.clear(), shape_at_.clear(), shape_pool_.clear();
    has_floor_ = false;
    n_grad_ = 0;
  }

  void truncate(int n) {
    if (n < int(nodes_.size())) {
      // not below a batch's output block: earlier nodes may point into it
      Arena::Mark m = marks_[size_t(n)];
      if (has_floor_ && (floor_.block > m.block || (floor_.block == m.block && floor_.off > m.off))) m = floor_;
      vals_.rewind(m);
      nodes_.resize(size_t(n)), hot_.resize(size_t(n)), key_dim_.resize(size_t(n)), marks_.resize(size_t(n));
      trim_plan(n);
      drop_leaves_from(n);
    }
    grads_.reset(), dpre_.reset_merged();
    n_grad_ = 0;
  }

  void invalidate(int i) {
    if (i < 0 || i >= int(nodes_.size())) return;
    read_attrs(nodes_[size_t(i)], i, graph_.attrs(i).ptr());
  }

  size_t arena_floats() const { return vals_.capacity() + grads_.capacity() + dpre_.capacity(); }

  // The executed records under autobatching, in order: one list of node ids per kernel call (a
  // node alone or a group), to compare with the front end's plan (dynet_api.autobatch.plan_order).
  py::list plan() const {
    py::list out;
    for (int e : plan_) {
      py::list l;
      if (e >= 0) {
        l.append(e);
      } else {
        const GroupRec& G = grecs_[size_t(-1 - e)];
        for (int k = 0; k < G.nm; ++k) l.append(members(G)[k]);
      }
      out.append(l);
    }
    return out;
  }

 private:
  struct alignas(64) Node {
    // (user-provided: emplace_back() then skips zero-filling the record, which marshal fills anyway)
    Node() {}  // NOLINT(modernize-use-equals-default)
    int op;
    const OpInfo* info;
    int a0, na, i0, ni, f0, nf, s0, ns;  // inputs in args_, attributes in ints_, flts_, slots_
    const Shape* s;  // interned (shape_of): a graph's nodes share a few shapes
    bool ng;
    bool opaque = false;  // an attribute the C++ signature cannot compare (an object): never batched
    int lref = -1;        // a leaf's entry in leaves_
  };
  // One cache line: every pass over the graph (marshalling, signatures, the groups, backward's reset)
  // touches one line a node (at 64 trees, 50k nodes: 3.3 MB where two lines made 6.7).  The value
  // pointer is in hot_ (val()), the backward's fields in bw_, the arena mark in marks_, the Dim in
  // key_dim_.
  static_assert(sizeof(Node) <= 64, "a node's record fits one cache line");
  // Backward's per-node fields, dense (reset in one pass at each backward).
  struct Bw {
    float* g = nullptr;      // the node's gradient
    float* alias = nullptr;  // the parameter's own (all-zero) gradient, used as this node's
    int dwq = -1;            // head of this node's deferred weight-gradient products in dw_
    bool pending = false;    // a leaf whose gradient still waits for a deferred LSTM input product
  };
  std::vector<Bw> bw_;
  std::vector<Arena::Mark> marks_;  // per node: the value arena's mark before it (truncate)
  Bw& bw(const Node& m) { return bw_[size_t(&m - nodes_.data())]; }
  const Bw& bw(const Node& m) const { return bw_[size_t(&m - nodes_.data())]; }
  float*& val(const Node& m) { return hot_[size_t(&m - nodes_.data())].v; }
  float* val(const Node& m) const { return hot_[size_t(&m - nodes_.data())].v; }
  // What a group's passes read of its members and their operands, per node, dense (32 bytes: the
  // graph's ~50k nodes stay in the L2 cache, where their records would not): the value (its only
  // place: val(), set_value), its size, its batch, where its inputs start, ng.
  struct Hot {
    float* v;
    int64_t total, bd;
    int a0;
    bool ng;
  };
  std::vector<Hot> hot_;
  // per node, dense, for the signature pass's operands (fast_key): its Dim, or null for a parameter
  std::vector<const void*> key_dim_;
  void set_value(int j, float* p) { hot_[size_t(j)].v = p; }
  struct DeferredGrad {  // dW += dy x^T, postponed until the sweep reaches W
    const float* dy;
    const float* x;
    int64_t n;
    int next;
    int op;  // the product's op (for the call counters)
    bool group = false;  // a group's products (already one GEMM over their columns)
  };
  struct Group {  // forward: LSTM steps sharing one W_x (their W_x x run as one GEMM)
    int w;
    std::vector<int> ready;
  };
  // The forward range's signatures: each distinct key (signature()) once, numbered in order of
  // first sight, found by open addressing on its hash (a power-of-two table of ids, -1 empty).
  struct SigTable {
    std::vector<int64_t> pool;   // the keys back to back
    std::vector<size_t> off{0};  // key s is pool[off[s] .. off[s + 1])
    std::vector<uint64_t> hash;  // per key
    std::vector<int> slot;
    void clear() {
      pool.clear(), off.assign(1, 0), hash.clear();
      slot.assign(64, -1);
    }
    // FNV over the words, then MurmurHash3's finaliser, so that every word reaches the low bits
    // that pick the slot (FNV alone shifted only bits 29 and up into them).
    static uint64_t hash_of(const int64_t* k, size_t n) {
      uint64_t h = 1469598103934665603ull;
      for (size_t e = 0; e < n; ++e) h = (h ^ uint64_t(k[e])) * 1099511628211ull;
      h ^= h >> 33;
      h *= 0xff51afd7ed558ccdull;
      h ^= h >> 33;
      h *= 0xc4ceb9fe1a85ec53ull;
      return h ^ (h >> 33);
    }
    bool equal(int s, const int64_t* k, size_t n) const {
      if (off[size_t(s) + 1] - off[size_t(s)] != n) return false;
      const int64_t* p = pool.data() + off[size_t(s)];
      int64_t diff = 0;  // (a loop kept inline: std::equal became a memcmp call per key of ~10 words)
      for (size_t e = 0; e < n; ++e) diff |= p[e] ^ k[e];
      return diff == 0;
    }
    // The number of key k[0, n); fresh set when it is new (numbered hash.size() before the call).
    int find_or_add(const int64_t* k, size_t n, bool& fresh) {
      uint64_t h = hash_of(k, n);
      size_t mask = slot.size() - 1;
      for (size_t i = size_t(h) & mask;; i = (i + 1) & mask) {
        int s = slot[i];
        if (s < 0) break;
        if (hash[size_t(s)] == h && equal(s, k, n)) return fresh = false, s;
      }
      int s = int(hash.size());
      hash.push_back(h);
      pool.insert(pool.end(), k, k + n);
      off.push_back(pool.size());
      if (2 * hash.size() > slot.size()) {  // keep the table at most half full
        slot.assign(2 * slot.size(), -1);
        mask = slot.size() - 1;
        for (int t = 0; t < int(hash.size()); ++t) place(t, mask);
      } else {
        place(s, mask);
      }
      fresh = true;
      return s;
    }
    void place(int s, size_t mask) {
      size_t i = size_t(hash[size_t(s)]) & mask;
      while (slot[i] >= 0) i = (i + 1) & mask;
      slot[i] = s;
    }
  };

  // A group that ran as one kernel call, with what its backward needs.
  struct GroupRec {
    int op, na;
    const OpInfo* info;
    int m0, nm;  // members (ascending) in gmem_
    int x0;      // operand views in gxs_, and in gjoin_ whether each is joined (else shared)
    float* y;    // the output block (each member's value is its slice)
    Shape ys;    // the joined output's shape
    bool own_attrs = false;  // per-element attributes joined into gints_/gflts_/gslots_
    int i0 = 0, ni = 0, f0 = 0, nf = 0, s0 = 0, ns = 0;
    int o0 = 0;          // the members' offsets in y (and g) at goff_[o0 .. o0 + nm]
    bool ng = false, all_ng = true;  // some member / every member needs its gradient
    bool dead = false;   // cut by a truncation: its members run alone now
    float* g = nullptr;  // backward: the members' gradients, one block
    int r0 = 0, rx = 0, nr = 0;  // its operands read in runs (grun_n_ from r0, grun_x_ from rx), nr > 0
  };
  // A group's joined operand q (gopnd_[x0 + q]): the members' operand ids (gops_[ids ..]), and
  // where those are members k0 .. k0 + nm - 1 of one earlier group src, in order, so the operand
  // is a slice of that group's output (forward) and of its gradient block (backward): both are
  // then found from the group's records, without visiting the operand nodes.
  struct Operand {
    int ids = 0, src = -1, k0 = 0;
    bool ng = false;  // some operand node needs its gradient
  };


  contract::GraphSource graph_;
  std::vector<Node> nodes_;
  std::vector<int> args_;
  std::vector<int64_t> ints_;
  std::vector<double> flts_;
  std::vector<AttrSlot> slots_;
  // What a leaf (input, parameter, lookup) holds, for the leaves only (Node::lref), in node order:
  // the input array or parameter storage it reads, the parameter tensor its value points into, a
  // parameter's weights under a weight-decay factor.
  struct LeafData {
    int node;
    py::object ref, held;
    std::vector<float> scaled;
  };
  std::vector<LeafData> leaves_;
  PyObject* ref_of(int j) const {
    int k = nodes_[size_t(j)].lref;
    return k >= 0 ? leaves_[size_t(k)].ref.ptr() : nullptr;
  }
  LeafData& leaf_data(int j) {
    int k = nodes_[size_t(j)].lref;
    if (k < 0) throw std::runtime_error("cpu_eigen: a leaf node without its input or storage");
    return leaves_[size_t(k)];
  }
  void drop_leaves_from(int n) {
    while (!leaves_.empty() && leaves_.back().node >= n) leaves_.pop_back();
  }
  bool failed_ = false;  // see FailureMark
  Arena vals_, grads_;
  Arena dpre_;  // backward: the LSTM gates' r, alone (and in one block) so that successive steps' lie side by side
  struct DeferredInput {  // an LSTM step's dx += W_x^T r, postponed to one GEMM per W_x
    const float* r;
    int x, w;
    int64_t n;
  };
  std::vector<DeferredInput> dxq_;
  std::vector<int> pending_leaves_;
  std::vector<Group> lstm_groups_;  // forward: gates nodes by W_x (Group::ready lists them)
  std::vector<float*> pre_;         // forward: node j's precomputed W_x x at pre_[j - pre_a_], or null
  int pre_a_ = 0;
  std::vector<float> pre_buf_;
  struct ClearOnExit {
    std::vector<float*>& v;
    ~ClearOnExit() { v.clear(); }
  };
  Arena::Mark floor_;       // end of the latest value placed at run time (autobatching; truncate keeps it)
  bool has_floor_ = false;
  int n_grad_ = 0;
  std::unordered_map<PyObject*, OpInfo> ops_;  // (node-based: an OpInfo's address is stable)
  PtrCache<OpInfo> op_cache_;
  std::vector<py::object> op_refs_;
  int matmul_ = -1, affine_ = -1, concat_ = -1, lstm_gates_ = -1, lstm_gates_drop_ = -1;
  const KernelDef* kernels_ = kernel_table().data();  // by op code (the table is fixed once the module loaded)
  std::vector<DeferredGrad> dw_;
  std::vector<PyObject*> aliased_;  // backward: storages whose first node's gradient is aliased
  // autobatching: the executed records in order (a node id run alone, or -1 - g for group g)
  std::vector<int> plan_;
  bool planned_ = false;  // this graph runs through the plan (autobatching on)
  std::vector<GroupRec> grecs_;
  std::vector<int> gmem_;      // the groups' members
  std::vector<int64_t> goff_;  // the groups' members' offsets in their blocks (GroupRec::o0)
  std::vector<int> gops_;      // the groups' joined operands' node ids (Operand::ids)
  std::vector<Operand> gopnd_;  // per operand in gxs_
  // per node, dense so that a group's passes over its members and operands stay in cache: the
  // group it ran in and its index there (-1: alone), and (backward) whether its gradient is
  // allocated but not yet written (not zeroed)
  std::vector<int> gof_, gat_;
  std::vector<char> fresh_;
  int bwd_top_ = -1;  // backward: the node the sweep started from
  std::vector<int> param_ids_;  // the parameter nodes, ascending (listed by planned_forward)
  std::vector<CView> gxs_;     // the groups' (joined or shared) operands
  std::vector<char> gjoin_;    // per operand in gxs_: joined
  std::vector<int64_t> gints_;  // the groups' own attributes (per-element ones joined)
  std::vector<double> gflts_;
  std::vector<AttrSlot> gslots_;
  // a forward range's plan: its in-range operands, signatures, order (autobatch_core.h)
  std::vector<ptrdiff_t> in_off_, in_ids_, sid_, order_, starts_, plan_work_;
  struct LastPlan {  // the inputs of the last ab_plan call whose order_ and starts_ stand (ng > 0)
    std::vector<ptrdiff_t> in_off, in_ids, sid;
    std::vector<int> sig_mm;
    int strategy = 0;
    ptrdiff_t ng = 0;
  } last_plan_;
  std::vector<int> sig_mm_;
  std::vector<int64_t> key_;
  SigTable sigs_;
  // The signature numbers of the range's attribute-less nodes by fast_key: an open-addressing
  // table whose entries belong to the range of their generation (no clearing between ranges).
  // The range's attribute-less nodes by identity (fast_key): each identity key once (the same
  // table as the signatures'), and the signature number it stands for.
  SigTable ids_;
  std::vector<int> id_sid_;
  std::vector<int64_t> id_key_;
  struct RecentSig {  // per op and weight (hashed): the last signature key met in this range, and its id
    uint64_t gen = 0;
    std::vector<int64_t> key;
    int sid = -1;
  };
  std::array<RecentSig, 64> recent_;
  uint64_t sig_gen_ = 0;
  std::vector<char> done_, pre_due_;
  int range_a_ = 0;
  std::vector<float> dx_buf_;  // backward: a joined operand's gradient, when not in place
  std::vector<int64_t> rows_;  // backward: a lookup group's rows
  std::vector<ab::Item> items_;
  // the groups' operand runs (plan_runs): per run, each operand's start, and the run's length
  std::vector<const float*> grun_x_;
  std::vector<int64_t> grun_n_;
  std::vector<const float*> run_next_;  // plan_runs: where each operand's current run ends
  std::vector<float*> run_dx_;          // grad_in_runs: each member's operand gradient
  std::vector<CView> xin_ = std::vector<CView>(16);  // gather_inputs' buffer

  // The graph's shapes, one record per Dim (the front end interns its Dims and never changes one):
  // nodes point here.  Each entry holds its Dim, so an address stays that Dim's while the entry
  // lives; reset() starts afresh once a program has met many (a record a node points to is never
  // dropped while the node lives).
  struct DimShape {
    py::object dim;
    Shape s;
  };
  std::deque<DimShape> shape_pool_;
  std::unordered_map<PyObject*, const Shape*> shape_at_;
  PtrCache<Shape> shape_cache_;
  static constexpr size_t kShapePoolMax = 1 << 14;

  const Shape& shape_of(const contract::NodeRecord& r) {
    PyObject* dim = r.dim;
    if (const Shape* hit = shape_cache_.find(dim)) return *hit;
    auto it = shape_at_.find(dim);
    if (it == shape_at_.end()) {
      shape_pool_.push_back({py::reinterpret_borrow<py::object>(dim), r.shape()});
      it = shape_at_.emplace(dim, &shape_pool_.back().s).first;
    }
    shape_cache_.put(dim, it->second);
    return *it->second;
  }

  const OpInfo& op_info(PyObject* op) {
    // a direct-mapped cache before the map (one lookup per node: the map's hashing and modulo were
    // a tenth of marshalling); op_refs_ holds every op read, so an address is never reused here
    if (const OpInfo* hit = op_cache_.find(op)) return *hit;
    auto it = ops_.find(op);
    if (it != ops_.end()) {
      op_cache_.put(op, &it->second);
      return it->second;
    }
    contract::OpRecord r = contract::read_op(op);
    OpInfo oi;
    oi.name = std::move(r.name);
    oi.code = kernel_code(oi.name);
    oi.nograd = std::move(r.nograd);
    oi.leaf = oi.name == "input" ? 1 : oi.name == "parameter" ? 2 : oi.name == "lookup" ? 3 : 0;
    oi.maps = r.maps, oi.per_elem = std::move(r.per_elem), oi.shared = std::move(r.shared), oi.b_attr = r.b_attr;
    for (int k : oi.per_elem)
      if (k >= 0 && k < 64) oi.per_elem_bits |= uint64_t(1) << k;
    for (int q : oi.shared)
      if (q >= 0 && q < 64) oi.shared_bits |= uint64_t(1) << q;
    op_refs_.push_back(py::reinterpret_borrow<py::object>(op));
    return ops_.emplace(op, std::move(oi)).first->second;
  }

  Attrs attrs_of(const Node& n) const {
    return {ints_.data() + n.i0, n.ni, flts_.data() + n.f0, n.nf, slots_.data() + n.s0, n.ns};
  }

  void read_attrs(Node& n, int j, PyObject* attrs) {
    n.i0 = int(ints_.size()), n.f0 = int(flts_.size()), n.s0 = int(slots_.size());
    n.opaque = false;
    if (attrs == Py_None) {  // an attribute-free operator node (the front end's memoised tuples)
      n.ni = n.nf = n.ns = 0;
      return;
    }
    contract::decode_attrs(attrs, ints_, flts_, slots_);
    n.ni = int(ints_.size()) - n.i0, n.nf = int(flts_.size()) - n.f0, n.ns = int(slots_.size()) - n.s0;
    if (n.info->leaf && PyTuple_Check(attrs) && PyTuple_GET_SIZE(attrs) > 0) {
      if (n.lref < 0) n.lref = int(leaves_.size()), leaves_.push_back({j, {}, {}, {}});
      leaves_[size_t(n.lref)].ref = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(attrs, 0));
    }
    const OpInfo& oi = *n.info;
    if (oi.maps && PyTuple_Check(attrs))  // an object the signature cannot compare (a lookup's table it can)
      for (int k = 0; k < n.ns; ++k) {
        const AttrSlot& sl = slots_[size_t(n.s0 + k)];
        if (sl.i >= 0 || sl.f >= 0 || (oi.leaf && (k == 0 || k == n.ns - 1))) continue;
        if (oi.is_per_elem(k)) continue;
        n.opaque |= PyTuple_GET_ITEM(attrs, k) != Py_None;
      }
  }

  // Read nodes [nodes_.size(), b) from the graph.
  void marshal(int b) {
    bool open = false;  // nodes_.back() is the node being read
    const bool place_now = ab::strategy() == 0;
    try {
      graph_.read(int(nodes_.size()), b, [&](int j, const contract::NodeRecord& r) {
        const OpInfo* info = &op_info(r.op);
        if (info->code < 0) throw std::runtime_error("cpu_eigen: op " + info->name + " is not supported by this backend");
#if defined(__GNUC__)
        if (nodes_.size() + 8 < nodes_.capacity())  // the records ahead are written soon (past the caches)
          __builtin_prefetch(nodes_.data() + nodes_.size() + 8, 1);
#endif
        Node& n = nodes_.emplace_back();  // filled in place (a Node is 64 bytes); popped if this node fails
        open = true;
        n.info = info;
        n.op = info->code;
        const int na = r.n_inputs();
        n.a0 = int(args_.size());
        n.na = na;
        for (int q = 0; q < na; ++q) {
          const long id = r.input(q);
          if (id < 0 || id >= j) {  // the front end's ids always name earlier nodes
            if (PyErr_Occurred()) throw py::error_already_set();
            throw std::runtime_error("cpu_eigen: node " + std::to_string(j) + " (" + info->name + ") names input " +
                                     std::to_string(id) + ", not an earlier node");
          }
          args_.push_back(int(id));
        }
        const Shape& s = shape_of(r);
        const int64_t total = s.total();
        n.s = &s;
        n.ng = r.ng;
        const Arena::Mark mark = vals_.mark();
        read_attrs(n, j, r.attrs);
        // under autobatching a value is placed when its node runs (a group's members in one block)
        float* v0 = nullptr;
        if (place_now && info->leaf != 2) v0 = vals_.alloc(size_t(total));
        hot_.push_back({v0, total, s.bd, n.a0, n.ng});
        key_dim_.push_back(info->leaf == 2 ? nullptr : r.dim);
        marks_.push_back(mark);
        open = false;
      });
    } catch (...) {
      if (open) nodes_.pop_back();  // the node that failed
      drop_leaves_from(int(nodes_.size()));
      throw;
    }
  }

  void run_forward(int j) {
    Node& n = nodes_[size_t(j)];
    count_call(n.op, 1);
    CallTimer timer(n.op);
    switch (n.info->leaf) {
      case 1: {  // input: copy the host data in
        contract::read_input(ref_of(j), val(n), n.s->total());
        return;
      }
      case 2: {  // parameter: read its storage in place (and keep that tensor alive while the node points at it)
        LeafData& L = leaf_data(j);
        py::object keep = contract::storage::value(L.ref.ptr());
        Tensor& w = as_tensor(keep, "parameter");
        if (w.total() != n.s->total()) throw std::runtime_error("cpu_eigen: parameter storage does not match its dim");
        const float f = contract::storage::factor(L.ref.ptr());
        if (f == 1.0f) {
          set_value(j, w.data());
          L.held = std::move(keep);
          return;
        }
        // under a weight-decay factor, the weights are a scaled copy (as DyNet's ParameterNode makes)
        std::vector<float>& c = L.scaled;
        c.resize(size_t(n.s->total()));
        for (int64_t k = 0; k < n.s->total(); ++k) c[size_t(k)] = w.data()[k] * f;
        set_value(j, c.data());
        return;
      }
      case 3:  // lookup: gather rows
        lookup_rows(&j, 1);
        return;
      default:
        break;
    }
    const KernelDef& k = kernels_[size_t(n.op)];
    CView* xp = gather_inputs(n);
    if (n.op == lstm_gates_ && size_t(j - pre_a_) < pre_.size() && pre_[size_t(j - pre_a_)]) {
      ku::lstm_gates_pre(xp, n.na, {val(n), *n.s}, pre_[size_t(j - pre_a_)]);
      return;
    }
    k.fwd(xp, n.na, {val(n), *n.s}, attrs_of(n));
  }

  // Lookups of nodes js (one table: a group's members, or one node): the table read once.
  void lookup_rows(const int* js, int count) {
    PyObject* st = ref_of(js[0]);
    py::object keep = contract::storage::value(st);
    Tensor& w = as_tensor(keep, "lookup");
    const float f = contract::storage::factor(st);
    int64_t rows = n_rows(w);
    for (int m = 0; m < count; ++m) {
      Node& n = nodes_[size_t(js[m])];
      IntSpan idx = attrs_of(n).ints(attr::lookup::indices);
      int64_t rs = n.s->size();
      for (int64_t k = 0; k < idx.size(); ++k) {
        int64_t r = idx[k];
        if (r < 0 || r >= rows) throw py::index_error("cpu_eigen: lookup row " + std::to_string(r) + " out of range");
        std::memcpy(val(n) + k * rs, w.data() + r * rs, size_t(rs) * sizeof(float));
      }
      if (f != 1.0f)  // the weights are the stored rows times the weight-decay factor
        for (int64_t k = 0; k < idx.size() * rs; ++k) val(n)[k] *= f;
    }
  }

  // The node's input views in one reused buffer (no per-call construction of a fixed array).
  CView* gather_inputs(const Node& n) {
    if (size_t(n.na) > xin_.size()) xin_.resize(size_t(n.na));
    CView* xp = xin_.data();
    const int* ids = args_.data() + n.a0;
    for (int q = 0; q < n.na; ++q) {
      const Node& m = nodes_[size_t(ids[q])];
      xp[q].p = val(m), xp[q].s = *m.s;
    }
    return xp;
  }

  // Backward: whether the node's gradient is allocated but nothing has written it yet (not zeroed).
  char& fresh(const Node& m) { return fresh_[size_t(&m - nodes_.data())]; }

  // The node's gradient, ready to add into (zero-filled on first use).
  float* grad_of(Node& m) {
    if (!bw(m).g && bw(m).alias) {
      bw(m).g = bw(m).alias;  // zero (has_grad was false): the node's gradient accumulates in place
    } else if (!bw(m).g) {
      bw(m).g = grads_.alloc(size_t(m.s->total()));
      std::fill_n(bw(m).g, m.s->total(), 0.0f);
    } else if (fresh(m)) {
      std::fill_n(bw(m).g, m.s->total(), 0.0f);
    }
    fresh(m) = 0;
    return bw(m).g;
  }

  // Whether nothing has written the node's gradient yet (allocating it, not zeroed, if it has
  // none): then a kernel that writes every element may write it instead of adding into zeros,
  // and saves a zero-fill pass and a read (the output layer's 10000 x 16 logits per LM step).
  bool grad_unwritten(Node& m) {
    if (!bw(m).g && !bw(m).alias) bw(m).g = grads_.alloc(size_t(m.s->total())), fresh(m) = 1;
    return fresh(m);
  }

  // The node's gradient for reading: zero if nothing has written it.
  float* defined_grad(Node& m) {
    if (fresh(m)) std::fill_n(bw(m).g, m.s->total(), 0.0f), fresh(m) = 0;
    return bw(m).g;
  }

  void leaf_backward(Node& n) {
    Attrs a = attrs_of(n);
    size_t j = size_t(&n - nodes_.data());
    PyObject* st = ref_of(int(j));
    if (n.info->leaf == 2) {
      if (!a.flag(attr::parameter::update)) return;  // a constant parameter
      count_call(n.op);  // the gradient's hand-over to the storage (also when it was accumulated there in place)
      CallTimer timer(n.op);
      if (bw(n).g != bw(n).alias) {
        Tensor& g = contract::storage::grad(st);
        int64_t m = n.s->total();
        for (int64_t k = 0; k < m; ++k) g.data()[k] += bw(n).g[k];
      }
      contract::storage::set_has_grad(st);
      return;
    }
    if (!a.flag(attr::lookup::update)) return;
    count_call(n.op);
    CallTimer timer(n.op);
    IntSpan idx = scatter_rows(n, contract::storage::grad(st));
    if (idx.size()) contract::storage::touch(st, idx.p, idx.size());
  }

  // A lookup's gradient added into its table's rows; its rows.
  IntSpan scatter_rows(const Node& n, Tensor& g) const {
    IntSpan idx = attrs_of(n).ints(attr::lookup::indices);
    int64_t rs = n.s->size();
    for (int64_t k = 0; k < idx.size(); ++k) {
      float* dst = g.data() + idx[k] * rs;
      for (int64_t q = 0; q < rs; ++q) dst[q] += bw(n).g[k * rs + q];
    }
    return idx;
  }

  // A parameter read by the graph (once, updated) whose gradient is all zero (has_grad false, as
  // after every trainer update) takes that storage as its node gradient: no zero-fill of an
  // arena block and no add of it into the storage at the end (Tree-LSTM: ~190k floats a tree).
  // The node's gradient() then reads the storage, the same values until the next update.
  void alias_param_grads(int i) {
    aliased_.clear();
    // (under autobatching the forward pass listed the parameter nodes: no pass over every node)
    size_t np = planned_ ? param_ids_.size() : size_t(i + 1);
    for (size_t e = 0; e < np; ++e) {
      int j = planned_ ? param_ids_[e] : int(e);
      if (j > i) break;
      Node& n = nodes_[size_t(j)];
      bw(n).alias = nullptr;
      if (n.info->leaf != 2 || !attrs_of(n).flag(attr::parameter::update)) continue;
      PyObject* st = ref_of(j);
      if (std::find(aliased_.begin(), aliased_.end(), st) != aliased_.end()) continue;
      aliased_.push_back(st);  // a second node of the same parameter keeps its own block
      if (contract::storage::has_grad(st)) continue;
      Tensor& g = contract::storage::grad(st);
      if (g.total() == n.s->total()) bw(n).alias = g.data();
    }
  }

  bool wants_grad(const Node& n, int q, bool full) const {
    const Node& m = nodes_[size_t(args_[size_t(n.a0 + q)])];
    if (!(m.ng || full)) return false;
    for (int ng : n.info->nograd)
      if (ng == q) return false;
    return true;
  }

  // One node's share of the reverse sweep: its inputs' gradients (defer: products' weight
  // gradients and LSTM steps' input products postponed to one GEMM each).
  void backward_node(int j, bool full, bool defer) {
    Node& n = nodes_[size_t(j)];
    if (bw(n).dwq >= 0) flush_weight_grad(n);
    if (!bw(n).g) return;
    defined_grad(n);
    const OpInfo& oi = *n.info;
    if (oi.leaf == 2 || oi.leaf == 3) {
      if (bw(n).pending)
        pending_leaves_.push_back(j);
      else
        leaf_backward(n);
      return;
    }
    if (n.na == 0) return;
    const Call c(n.op, n.na, j, nullptr, gather_inputs(n), val(n), bw_[size_t(j)].g, *n.s, attrs_of(n));
    call_backward(c, full, defer);
  }

  // ---------------------------------------------------------------- autobatching
  // With autobatching on, a forward range runs in the order of autobatch_core.h (the front end's
  // scheduler: the same signatures as dynet_api/autobatch.py, the same agenda), each group of
  // nodes of one signature as ONE call of the op's kernel over operands joined along the batch:
  // a joined operand is the members' inputs back to back, in place when they already lie so (the
  // outputs of one earlier group, in order), else copied into a block of the value arena; each
  // member's value is its slice of the group's output block.  Backward replays the executed
  // records in reverse, a group's gradients again one block, so its dy is read in place.

  // A product W x (matmul, or an affine_transform with one product and a column bias) whose
  // weight is one unbatched matrix and whose x has the output's batch.
  bool site_of(const Node& n, int& w, int& x, int& bias) const {
    if (n.op == matmul_ && n.na == 2)
      bias = -1, w = args_[size_t(n.a0)], x = args_[size_t(n.a0 + 1)];
    else if (n.op == affine_ && n.na == 3)
      bias = args_[size_t(n.a0)], w = args_[size_t(n.a0 + 1)], x = args_[size_t(n.a0 + 2)];
    else
      return false;
    const Shape &W = *nodes_[size_t(w)].s, &X = *nodes_[size_t(x)].s;
    if (W.nd > 2 || W.bd != 1 || W.total() == 0 || X.nd > 2 || X.bd != n.s->bd || X.d[0] != W.d[1] ||
        n.s->d[0] != W.d[0])
      return false;
    if (bias >= 0) {
      const Shape& B = *nodes_[size_t(bias)].s;
      if (B.bd != 1 || B.total() != W.d[0]) return false;
    }
    return true;
  }

  // Products of one weight as one GEMM W [x_1 ... x_n]?  Eigen's GEMM packs its weight on every
  // call: for a weight past 4096 values that costs about one GEMV, so without the thin-product
  // kernels (which read the weight in place) fewer than 4 products run one by one.
  bool worth_batching(const std::vector<int>& batch) const {
    if (batch.size() >= 4 || thin::active()) return true;
    int w, x, bias;
    if (!site_of(nodes_[size_t(batch[0])], w, x, bias)) return true;
    return nodes_[size_t(w)].s->total() <= 4096;
  }

  // The end of attribute k's run in a flattened list (the next attribute's start, or the end).
  static int attr_end(const Attrs& a, int k, bool ints) {
    for (int q = k + 1; q < a.ns; ++q) {
      int32_t at = ints ? a.slot[q].i : a.slot[q].f;
      if (at >= 0) return at;
    }
    return ints ? a.ni : a.nf;
  }

  // dynet_api/autobatch.py's signature() of node j, from this executor's records, into key_[0, len):
  // false when the node runs alone.  The key is self-delimiting (lengths before runs), so equal
  // keys mean equal attributes, operand dims and weights.  *weight is the first weight's storage
  // (0 without one), which picks the node's slot among the recent keys (recent_).
  bool signature(int j, size_t& len, int64_t& weight) {
    const Node& n = nodes_[size_t(j)];
    const OpInfo& oi = *n.info;
    if (!oi.maps || n.opaque) return false;
    Attrs at = attrs_of(n);
    if (oi.b_attr >= 0 && oi.b_attr < at.ns && at.slot[oi.b_attr].i >= 0 && at.i[at.slot[oi.b_attr].i] != 0)
      return false;  // sums over the batch too
    for (int k : oi.per_elem)
      if (k < at.ns && at.slot[k].i < 0) return false;  // indices that are not a sequence: alone
    // written through a pointer into a buffer sized for the longest key this node can make
    size_t cap = size_t(4 + 2 * at.ns + at.ni + at.nf + (n.na + 1) * (5 + MAXD));
    if (key_.size() < cap) key_.resize(cap);
    int64_t* k0 = key_.data();
    int64_t* kp = k0;
    *kp++ = n.op;
    *kp++ = at.ns;
    int last = oi.leaf ? at.ns - 1 : -1;  // a leaf's Dim: the batch size varies within a group
    for (int k = 0; k < at.ns; ++k) {
      if (k == last || oi.is_per_elem(k)) continue;
      const AttrSlot& sl = at.slot[k];
      int ie = sl.i >= 0 ? attr_end(at, k, true) : -1, fe = sl.f >= 0 ? attr_end(at, k, false) : -1;
      *kp++ = sl.i >= 0 ? ie - sl.i : -1;
      for (int e = sl.i; sl.i >= 0 && e < ie; ++e) *kp++ = at.i[e];
      *kp++ = sl.f >= 0 ? fe - sl.f : -1;
      for (int e = sl.f; sl.f >= 0 && e < fe; ++e) std::memcpy(kp++, at.f + e, sizeof(int64_t));
    }
    auto dims = [&](const Shape& sh) {
      *kp++ = sh.nd;
      for (int d = 0; d < sh.nd; ++d) *kp++ = sh.d[d];
    };
    weight = 0;
    if (oi.leaf) {  // a lookup: its table (the storage), then its data dims
      weight = int64_t(reinterpret_cast<uintptr_t>(ref_of(j)));
      *kp++ = weight;
      dims(*n.s);
      len = size_t(kp - k0);
      return true;
    }
    bool joined = false;
    for (int q = 0; q < n.na; ++q) {
      int sx = args_[size_t(n.a0 + q)];
      const Node& x = nodes_[size_t(sx)];
      if (x.info->leaf == 2) {  // one weight for the whole group: its storage, update flag and dims
        int64_t w = int64_t(reinterpret_cast<uintptr_t>(ref_of(sx)));
        if (!weight) weight = w;
        *kp++ = -1;
        *kp++ = w;
        *kp++ = attrs_of(x).flag(attr::parameter::update);
        dims(*x.s);
      } else if (oi.is_shared(q)) {
        if (x.s->bd != 1) return false;
        *kp++ = -2;
        *kp++ = sx;  // the node itself: the kernel takes it unbatched
      } else {
        if (x.s->bd != n.s->bd) return false;  // a broadcast operand cannot be joined with the others
        *kp++ = -3;
        dims(*x.s);
        joined = true;
      }
    }
    len = size_t(kp - k0);
    return joined;  // every operand shared: nothing to batch over
  }

  const int* members(const GroupRec& G) const { return gmem_.data() + G.m0; }
  Node& operand(const GroupRec& G, int k, int q) { return nodes_[size_t(args_[size_t(nodes_[size_t(members(G)[k])].a0 + q)])]; }

  Attrs group_attrs(const GroupRec& G) const {
    if (!G.own_attrs) return attrs_of(nodes_[size_t(members(G)[0])]);
    return {gints_.data() + G.i0, G.ni, gflts_.data() + G.f0, G.nf, gslots_.data() + G.s0, G.ns};
  }

  // The group's attributes: the first member's, with each per-element attribute (indices) joined
  // in member order (an entry given once for a batched node counts for each of its elements).
  void join_attrs(GroupRec& G) {
    const OpInfo& oi = *G.info;
    if (oi.per_elem.empty() || oi.leaf) return;
    const Node& n0 = nodes_[size_t(members(G)[0])];
    G.own_attrs = true;
    G.i0 = int(gints_.size()), G.f0 = int(gflts_.size()), G.s0 = int(gslots_.size());
    gints_.insert(gints_.end(), ints_.begin() + n0.i0, ints_.begin() + n0.i0 + n0.ni);
    gflts_.insert(gflts_.end(), flts_.begin() + n0.f0, flts_.begin() + n0.f0 + n0.nf);
    gslots_.insert(gslots_.end(), slots_.begin() + n0.s0, slots_.begin() + n0.s0 + n0.ns);
    for (int k : oi.per_elem) {
      if (k >= n0.ns) continue;
      gslots_[size_t(G.s0 + k)].i = int32_t(gints_.size()) - G.i0;
      size_t len = gints_.size();
      gints_.push_back(0);
      for (int q = 0; q < G.nm; ++q) {  // a sequence's run: its length, then its items (flat or nested)
        const Node& m = nodes_[size_t(members(G)[q])];
        Attrs am = attrs_of(m);
        int32_t at = am.slot[k].i;
        if (at < 0) throw std::runtime_error("cpu_eigen: " + m.info->name + "'s indices are not a sequence");
        int64_t items = am.i[at], reps = items == m.s->bd ? 1 : m.s->bd;
        for (int64_t r = 0; r < reps; ++r) gints_.insert(gints_.end(), am.i + at + 1, am.i + attr_end(am, k, true));
        gints_[len] += items * reps;
      }
    }
    G.ni = int(gints_.size()) - G.i0, G.nf = int(gflts_.size()) - G.f0, G.ns = int(gslots_.size()) - G.s0;
  }

  // Forgets the records of nodes from n on; members below n of a cut group stay as nodes run
  // alone (their values are valid slices of its block; their backward runs node by node).
  void trim_plan(int n) {
    if (gof_.size() > size_t(n)) gof_.resize(size_t(n)), gat_.resize(size_t(n));
    while (!param_ids_.empty() && param_ids_.back() >= n) param_ids_.pop_back();
    size_t keep = 0;
    while (keep < plan_.size() && (plan_[keep] >= 0 ? plan_[keep] < n : members(grecs_[size_t(-1 - plan_[keep])])[grecs_[size_t(-1 - plan_[keep])].nm - 1] < n))
      ++keep;
    if (keep == plan_.size()) return;
    std::vector<int> rest(plan_.begin() + long(keep), plan_.end());
    plan_.resize(keep);
    for (int e : rest) {
      if (e >= 0) {
        if (e < n) plan_.push_back(e);
        continue;
      }
      GroupRec& G = grecs_[size_t(-1 - e)];
      G.dead = true, G.g = nullptr;
      for (int k = 0; k < G.nm; ++k)
        if (members(G)[k] < n) plan_.push_back(members(G)[k]), gof_[size_t(members(G)[k])] = -1;
    }
  }

  // Forward over [a, b) with autobatching (strategy 1: DyNet's agenda, 2: level by level).
  // Node j's signature number in this range (-1: it runs alone).
  int signature_id(int j) {
    const Node& n = nodes_[size_t(j)];
    size_t len = 0;
    int64_t weight = 0;
    if (!signature(j, len, weight)) return -1;
    // the last key of the node's op and weight first: a graph repeats a few shapes per op and
    // weight (a chain, a sequence, a tree's gates), and comparing a key costs a fraction of
    // hashing it and probing the table
    uint64_t h = (uint64_t(n.op) * 0x9E3779B97F4A7C15ull) ^ (uint64_t(weight) >> 4) * 0xC2B2AE3D27D4EB4Full;
    RecentSig& last = recent_[(h ^ (h >> 32)) % recent_.size()];
    const int64_t* key = key_.data();
    if (last.gen == sig_gen_ && last.key.size() == len && std::equal(key, key + len, last.key.begin())) return last.sid;
    bool fresh = false;
    int sid = sigs_.find_or_add(key, len, fresh);
    if (fresh) sig_mm_.push_back(n.op == matmul_ || n.op == affine_);
    last.gen = sig_gen_, last.key.assign(key, key + len), last.sid = sid;
    return sid;
  }

  // The identities that fix the signature of a node without attributes, into id_key_[0, len) (ids_' key):
  // its op and Dim, and per operand a parameter or shared node's id, else its Dim.  False for a
  // node with attributes or a leaf.
  bool fast_key(int j, const Node& n, size_t& len) {
    if (n.ns != 0 || n.info->leaf) return false;
    const OpInfo& oi = *n.info;
    if (id_key_.size() < size_t(2 + 2 * n.na)) id_key_.resize(size_t(2 + 2 * n.na));
    int64_t* k = id_key_.data();
    *k++ = n.op;
    *k++ = int64_t(reinterpret_cast<uintptr_t>(key_dim_[size_t(j)]));  // the node's Dim
    for (int q = 0; q < n.na; ++q) {
      int s = args_[size_t(n.a0 + q)];
      const void* d = key_dim_[size_t(s)];  // (not the operand's record: out of cache, scattered)
      if (!d || oi.is_shared(q)) {
        *k++ = -1;
        *k++ = s;
      } else {
        *k++ = -2;
        *k++ = int64_t(reinterpret_cast<uintptr_t>(d));
      }
    }
    len = size_t(k - id_key_.data());
    return true;
  }

  void planned_forward(int a, int b, int strategy, bool check) {
    trim_plan(a);
    if (!planned_) {  // nodes run before without the plan: their parameters too
      param_ids_.clear();
      for (int j = 0; j < a; ++j)
        if (nodes_[size_t(j)].info->leaf == 2) param_ids_.push_back(j);
    }
    planned_ = true, range_a_ = a;
    gof_.resize(size_t(b), -1), gat_.resize(size_t(b), -1);
    size_t nn = size_t(b - a);
    if (chained(a, b)) {  // nothing can batch: node order, which is the plan's, without planning
      done_.assign(nn, 0);
      for (int j = a; j < b; ++j) run_single(j, check);
      return;
    }
    in_off_.assign(nn + 1, 0), in_ids_.clear(), sid_.assign(nn, -1), sig_mm_.clear(), sigs_.clear();
    ids_.clear(), id_sid_.clear();
    ++sig_gen_;  // every recent signature (recent_) is stale
    for (int j = a; j < b; ++j) {
      const Node& n = nodes_[size_t(j)];
      for (int q = 0; q < n.na; ++q) {
        int s = args_[size_t(n.a0 + q)];
        if (s >= a) in_ids_.push_back(s - a);
      }
      in_off_[size_t(j - a + 1)] = ptrdiff_t(in_ids_.size());
      if (n.info->leaf == 2) param_ids_.push_back(j);
      // a node without attributes: its signature follows from its op, its Dim and its operands'
      // (parameter and shared ones by node), which are compared as identities before building it
      size_t len = 0;
      if (fast_key(j, n, len)) {
        bool fresh = false;
        int id = ids_.find_or_add(id_key_.data(), len, fresh);
        if (fresh) id_sid_.push_back(signature_id(j));
        sid_[size_t(j - a)] = id_sid_[size_t(id)];
        continue;
      }
      sid_[size_t(j - a)] = signature_id(j);
    }
    ptrdiff_t ng = plan_range(nn, strategy);
    done_.assign(nn, 0);
    ClearOnExit clear_pre{pre_};
    bool pending = plan_lstm_inputs(a, b, ng);
    std::vector<int> batch;
    for (ptrdiff_t g = 0; g < ng; ++g) {
      batch.clear();
      for (ptrdiff_t e = starts_[size_t(g)]; e < starts_[size_t(g + 1)]; ++e)
        if (!done_[size_t(order_[size_t(e)])]) batch.push_back(a + int(order_[size_t(e)]));
      if (batch.size() >= 2 && worth_batching(batch)) {
        run_group(batch, check);
        continue;
      }
      for (int j : batch) {
        if (pending && pre_due_[size_t(j - a)]) {
          run_lstm_inputs(a, check);  // the steps' W_x x, once, when the first step is due
          pending = false;
        }
        run_single(j, check);
      }
    }
  }

  // Whether the nodes of [a, b) that could join a group (their op maps over the batch) form one
  // dependency chain, each depending on the one before (a chain of layers, an RNN of separate ops
  // unrolled step by step): then no two are ever ready together, every group of the plan would be
  // one node, and the range can run in node order without planning.  Nodes that never join one
  // (inputs, parameters, constants, random draws, batch reductions) may lie anywhere; the chain
  // may pass through one of them.  The LSTM steps' input products do batch along a chain
  // (plan_lstm_inputs): a range with LSTM steps is planned.
  bool chained(int a, int b) const {
    int last = -1;  // the chain's last node
    for (int j = a; j < b; ++j) {
      const Node& n = nodes_[size_t(j)];
      if (!n.info->maps && n.na == 0) continue;
      if (n.op == lstm_gates_) return false;
      bool reads = false;
      for (int q = 0; q < n.na; ++q) reads |= args_[size_t(n.a0 + q)] == last;
      if (n.info->maps) {
        if (last >= 0 && !reads) return false;
        last = j;
      } else if (last >= 0 && reads) {
        last = j;
      }
    }
    return true;
  }

  // ab_plan over the range's operands and signatures (in_off_, in_ids_, sid_, sig_mm_) into order_
  // and starts_; its number of groups.  A training loop plans the same range again and again (the
  // same graph rebuilt): when every input equals the last planned range's, the last order stands
  // (ab_plan is a function of them), which saves a third of the planning.
  ptrdiff_t plan_range(size_t nn, int strategy) {
    if (last_plan_.ng > 0 && last_plan_.strategy == strategy && last_plan_.in_off == in_off_ &&
        last_plan_.in_ids == in_ids_ && last_plan_.sid == sid_ && last_plan_.sig_mm == sig_mm_)
      return last_plan_.ng;
    order_.resize(nn + 1), starts_.resize(nn + 2);
    ab_range rg{ptrdiff_t(nn), in_off_.data(), in_ids_.data(), sid_.data(), ptrdiff_t(sig_mm_.size()), sig_mm_.data(),
                strategy};
    plan_work_.resize(ab_plan_work_bytes(&rg) / sizeof(ptrdiff_t) + 1);
    last_plan_.ng = 0;
    ptrdiff_t ng = ab_plan(&rg, order_.data(), starts_.data(), plan_work_.data());
    if (ng == AB_NOMEM) throw std::bad_alloc();
    if (ng == AB_CYCLE) throw std::runtime_error("cpu_eigen: autobatching left nodes unevaluated (a cycle?)");
    // kept by swapping (the range's arrays are refilled before they are read again): copying them
    // was a pass over ~4 words per node each forward
    last_plan_.in_off.swap(in_off_), last_plan_.in_ids.swap(in_ids_), last_plan_.sid.swap(sid_);
    last_plan_.sig_mm.swap(sig_mm_);
    last_plan_.strategy = strategy, last_plan_.ng = ng;
    return ng;
  }

  void run_single(int j, bool check) {
    Node& n = nodes_[size_t(j)];
    if (!val(n) && n.info->leaf != 2) set_value(j, vals_.alloc(size_t(n.s->total()))), floor_ = vals_.mark(), has_floor_ = true;
    run_forward(j);
    plan_.push_back(j);
    done_[size_t(j - range_a_)] = 1;
    if (check) check_finite(j);
  }

  // Operand q of group G: its members' operand ids into gops_ (r.ids); when they are members
  // k0 .. k0 + nm - 1 of one earlier group, in order, the operand is in place in that group's
  // output block: r and the view v say so (true), found without visiting the operand nodes.
  bool join_slice(const GroupRec& G, int q, Operand& r, CView& v) {
    r.ids = int(gops_.size());
    for (int k = 0; k < G.nm; ++k) gops_.push_back(args_[size_t(hot_[size_t(members(G)[k])].a0 + q)]);
    const int* ids = gops_.data() + r.ids;
    int src = gof_[size_t(ids[0])], k0 = gat_[size_t(ids[0])];
    if (src < 0) return false;
    const GroupRec& S = grecs_[size_t(src)];
    if (S.dead || S.info->leaf == 2 || k0 + G.nm > S.nm) return false;
    for (int k = 1; k < G.nm; ++k)
      if (gof_[size_t(ids[k])] != src || gat_[size_t(ids[k])] != k0 + k) return false;
    r.src = src, r.k0 = k0, r.ng = S.ng;
    const int64_t* off = goff_.data() + S.o0 + k0;
    v.p = S.y + off[0];
    v.s = S.ys;
    v.s.bd = (off[G.nm] - off[0]) / S.ys.size();
    return true;
  }

  void run_group(const std::vector<int>& batch, bool check) {
    const Node& n0 = nodes_[size_t(batch[0])];
    GroupRec G;
    G.op = n0.op, G.na = n0.na, G.info = n0.info;
    G.m0 = int(gmem_.size()), G.nm = int(batch.size()), G.x0 = int(gxs_.size());
    gmem_.insert(gmem_.end(), batch.begin(), batch.end());
    int64_t total = 0, bd = 0;
    G.o0 = int(goff_.size());
    goff_.push_back(0);
    for (size_t k = 0; k < batch.size(); ++k) {
#if defined(__GNUC__)
      if (k + 8 < batch.size()) __builtin_prefetch(&hot_[size_t(batch[k + 8])]);  // scattered, past the L2 cache
#endif
      const Hot& n = hot_[size_t(batch[k])];
      total += n.total, bd += n.bd;
      G.ng |= n.ng, G.all_ng &= n.ng;
      goff_.push_back(total);
    }
    // an elementwise op that can read its operands where they lie: runs instead of joined copies,
    // planned when the first operand that would need a copy is met (-1: not yet)
    int in_runs = -1;
    const bool stack = stacks_vectors(G);
    for (int q = 0; q < G.na; ++q) {
      const Node& x0 = operand(G, 0, q);
      bool shared = x0.info->leaf == 2 || G.info->is_shared(q);
      CView v{val(x0), *x0.s};
      Operand r;
      if (!shared && !join_slice(G, q, r, v)) {
        v.s.bd = 0;
        bool adjacent = true;
        const float* next = val(x0);
        const int* ids = gops_.data() + r.ids;
        for (int k = 0; k < G.nm; ++k) {
          const Hot& x = hot_[size_t(ids[k])];
          v.s.bd += x.bd;
          adjacent &= x.v == next;
          next = x.v + x.total;
          r.ng |= x.ng;
        }
        if (!adjacent && !stack && in_runs < 0) in_runs = plan_runs(G);
        if (!adjacent && (stack || in_runs == 1)) {
          v.p = nullptr;  // no joined copy: nothing reads one
        } else if (!adjacent) {  // copied side by side (kept: backward reads the same operand)
          float* c = vals_.alloc(size_t(v.s.total()));
          v.p = c;
          for (int k = 0; k < G.nm; ++k) {
            const Hot& x = hot_[size_t(gops_[size_t(r.ids + k)])];
            std::memcpy(c, x.v, size_t(x.total) * sizeof(float));
            c += x.total;
          }
        }
      }
      gxs_.push_back(v);
      gjoin_.push_back(!shared);
      gopnd_.push_back(r);
    }
    G.y = vals_.alloc(size_t(total));
    floor_ = vals_.mark(), has_floor_ = true;
    G.ys = *n0.s, G.ys.bd = bd;
    for (int k = 0; k < G.nm; ++k) {
      int m = batch[size_t(k)];
      set_value(m, G.y + goff_[size_t(G.o0 + k)]);
      done_[size_t(m - range_a_)] = 1;
      gof_[size_t(m)] = int(grecs_.size()), gat_[size_t(m)] = k;
    }
    join_attrs(G);
    grecs_.push_back(G);
    plan_.push_back(-int(grecs_.size()));
    count_call(G.op, G.nm);
    CallTimer timer(G.op);
    if (G.info->leaf == 3) {  // lookups: each member gathers its rows into its slice
      lookup_rows(batch.data(), int(batch.size()));
    } else if (in_runs == 1) {
      const GroupRec& R = grecs_.back();
      kernels_[size_t(G.op)].fwd_runs(grun_x_.data() + R.rx, grun_n_.data() + R.r0, R.nr, G.na, G.y);
    } else if (stack) {
      stack_members(G);
    } else if (!shared_product(G)) {
      kernels_[size_t(G.op)].fwd(gxs_.data() + G.x0, G.na, {G.y, G.ys}, group_attrs(G));
    }
    if (check)
      for (int m : batch) check_finite(m);
  }

  // A group of concatenations of single vectors along their rows (a Tree-LSTM's [h_l; h_r]): each
  // member's output is its operands one after another, so the forward copies them there from
  // where they lie, with no joined copy of each operand first (which the kernel then copied
  // again).  The backward reads no operand values (only their shapes): it runs as for any group.
  bool stacks_vectors(const GroupRec& G) const {
    if (G.op != concat_ || G.info->leaf) return false;
    const Node& n0 = nodes_[size_t(members(G)[0])];
    Attrs a = attrs_of(n0);
    if (n0.s->nd != 1 || n0.s->bd != 1 || a.integer(attr::concatenate::d) != 0) return false;
    for (int q = 0; q < G.na; ++q) {  // (the members share their operands' Dims: the signature's)
      const Shape& x = *nodes_[size_t(args_[size_t(n0.a0 + q)])].s;
      if (x.nd != 1 || x.bd != 1) return false;
    }
    return true;
  }

  void stack_members(const GroupRec& G) {
    const int* mem = members(G);
    const int64_t* off = goff_.data() + G.o0;
    for (int k = 0; k < G.nm; ++k) {
      float* y = G.y + off[k];
      const int* in = args_.data() + hot_[size_t(mem[k])].a0;
      for (int q = 0; q < G.na; ++q) {
        const Hot& x = hot_[size_t(in[q])];
        std::memcpy(y, x.v, size_t(x.total) * sizeof(float));
        y += x.total;
      }
    }
  }

  // An elementwise group (fwd_runs and bwd_runs, every operand joined, each member's operands of
  // its own size): the runs in which all the members' operands lie side by side, from grun_x_ and
  // grun_n_ on (G.rx, G.r0, G.nr), and true; else false, nothing kept.  The forward and backward of
  // such a group read their operands there: no joined copies.
  bool plan_runs(GroupRec& G) {
    const KernelDef& k = kernels_[size_t(G.op)];
    if (!k.fwd_runs || !k.bwd_runs || G.info->leaf) return false;
    for (int q = 0; q < G.na; ++q)
      if (G.info->is_shared(q) || operand(G, 0, q).info->leaf == 2) return false;
    G.r0 = int(grun_n_.size()), G.rx = int(grun_x_.size()), G.nr = 0;
    const int* mem = members(G);
    const int64_t* off = goff_.data() + G.o0;
    run_next_.assign(size_t(G.na), nullptr);
    for (int m = 0; m < G.nm; ++m) {
      const int* in = args_.data() + hot_[size_t(mem[m])].a0;
      int64_t len = off[m + 1] - off[m];
      bool extends = m > 0;
      for (int q = 0; q < G.na; ++q) {
        const Hot& x = hot_[size_t(in[q])];
        if (x.total != len) {  // broadcasting: joined copies
          grun_x_.resize(size_t(G.rx)), grun_n_.resize(size_t(G.r0)), G.nr = 0;
          return false;
        }
        extends &= x.v == run_next_[size_t(q)];
      }
      if (extends) {
        grun_n_.back() += len;
      } else {
        for (int q = 0; q < G.na; ++q) grun_x_.push_back(hot_[size_t(in[q])].v);
        grun_n_.push_back(len), ++G.nr;
      }
      for (int q = 0; q < G.na; ++q) run_next_[size_t(q)] = hot_[size_t(in[q])].v + len;
    }
    return true;
  }

  // A group of products W x_i (or b + W x_i) of one shared weight and bias: the output block filled
  // with the bias columns (streaming stores past the caches), then one GEMM W [x_1 ... x_n] in place.
  bool shared_product(const GroupRec& G) {
    int w, x, bias;
    if ((G.op != matmul_ && G.op != affine_) || !site_of(nodes_[size_t(members(G)[0])], w, x, bias)) return false;
    const CView* xs = gxs_.data() + G.x0;
    int wq = bias >= 0 ? 1 : 0;
    if (gjoin_[size_t(G.x0 + wq)] || !gjoin_[size_t(G.x0 + wq + 1)] || (bias >= 0 && gjoin_[size_t(G.x0)])) return false;
    const CView &W = xs[wq], &X = xs[wq + 1];
    ab::Item it{X.p, X.s.total() / X.s.d[0], G.y, nullptr};
    if (bias >= 0) it.bias = xs[0];
    items_.assign(1, it);
    ab::forward(W.p, W.s.d[0], W.s.d[1], items_);
    return true;
  }

  // A fused LSTM gates node (no dropout) whose input x is a leaf (lookup or input: nothing to
  // wait for) with one column per batch element, and whose W_x is one unbatched matrix: the
  // builders' add_input steps.  Where such steps run alone (one sequence), their W_x x run as
  // one GEMM over all steps, forward and backward, so each step multiplies only W_h.
  bool lstm_input_site(const Node& n) const {
    if (n.op != lstm_gates_ || n.na != 5) return false;
    const Node& X = nodes_[size_t(args_[size_t(n.a0)])];
    const Node& W = nodes_[size_t(args_[size_t(n.a0 + 2)])];
    return (X.info->leaf == 1 || X.info->leaf == 3) && W.info->leaf == 2 && W.s->nd == 2 && W.s->bd == 1 &&
           W.s->d[1] > 1 && X.s->bd == n.s->bd && X.s->total() == n.s->bd * W.s->d[1];
  }
  // Forward: the gates nodes of [a, b) that run alone (groups of one in the plan), grouped by W_x;
  // marks them in pre_due_ (run_lstm_inputs computes their columns before the first runs); true when some W_x has two or more.
  bool plan_lstm_inputs(int a, int b, ptrdiff_t ng) {
    pre_a_ = a;
    lstm_groups_.clear();
    if (lstm_gates_ < 0) return false;
    std::map<int, size_t> at;
    for (ptrdiff_t g = 0; g < ng; ++g) {
      if (starts_[size_t(g + 1)] - starts_[size_t(g)] != 1) continue;
      int j = a + int(order_[size_t(starts_[size_t(g)])]);
      const Node& n = nodes_[size_t(j)];
      if (!lstm_input_site(n)) continue;
      auto it = at.emplace(args_[size_t(n.a0 + 2)], lstm_groups_.size());
      if (it.second) lstm_groups_.push_back({args_[size_t(n.a0 + 2)], {}});
      lstm_groups_[it.first->second].ready.push_back(j);
    }
    lstm_groups_.erase(std::remove_if(lstm_groups_.begin(), lstm_groups_.end(),
                                      [](const Group& g) { return g.ready.size() < 2; }),
                       lstm_groups_.end());
    if (lstm_groups_.empty()) return false;
    pre_.assign(size_t(b - a), nullptr);
    pre_due_.assign(size_t(b - a), 0);
    for (const Group& g : lstm_groups_)
      for (int j : g.ready) pre_due_[size_t(j - a)] = 1;
    return true;
  }

  // The marked steps' W_x x, one GEMM per W_x; leaves they read that have not run yet run now.
  void run_lstm_inputs(int a, bool check) {
    auto run_leaf = [&](int j) {
      if (j >= a && !done_[size_t(j - a)]) run_single(j, check);
    };
    int64_t total = 0;
    for (const Group& g : lstm_groups_)
      for (int j : g.ready) total += nodes_[size_t(j)].s->total();
    if (int64_t(pre_buf_.size()) < total) pre_buf_.resize(size_t(total));
    float* out = pre_buf_.data();
    for (const Group& g : lstm_groups_) {
      run_leaf(g.w);
      items_.clear();
      for (int j : g.ready) {
        const Node& n = nodes_[size_t(j)];
        int x = args_[size_t(n.a0)];
        run_leaf(x);
        items_.push_back({hot_[size_t(x)].v, n.s->bd, out, {}});
        pre_[size_t(j - a)] = out;
        out += n.s->total();
      }
      count_call(lstm_gates_);  // the steps' W_x x as one call (each step's own call follows)
      CallTimer timer(lstm_gates_);
      const Node& W = nodes_[size_t(g.w)];
      ab::forward(val(W), W.s->d[0], W.s->d[1], items_);
    }
  }

  // Backward: the deferred W_x^T r of the LSTM steps, one GEMM per W_x, then the leaves that
  // waited for them.
  void flush_lstm_inputs() {
    if (dxq_.empty()) return;
    std::map<int, std::vector<ab::Item>> by_w;
    for (const DeferredInput& d : dxq_) by_w[d.w].push_back({nullptr, d.n, grad_of(nodes_[size_t(d.x)]), d.r});
    dxq_.clear();
    for (auto& [w, its] : by_w) {
      count_call(lstm_gates_);
      CallTimer timer(lstm_gates_);
      const Node& W = nodes_[size_t(w)];
      ab::input_grad(val(W), W.s->d[0], W.s->d[1], its);
    }
    for (int j : pending_leaves_) {
      bw_[size_t(j)].pending = false;
      leaf_backward(nodes_[size_t(j)]);
    }
    pending_leaves_.clear();
  }

  // One kernel call's backward: a node alone (G null, node j) or a group.
  struct Call {
    // Member by member: a brace-initialised Call (two 80-byte views) was zero-filled whole first.
    Call(int op_, int na_, int j_, const GroupRec* G_, const CView* xp_, const float* y_, const float* dy_,
         const Shape& s, const Attrs& at_)
        : op(op_), na(na_), j(j_), G(G_), xp(xp_), y{y_, s}, dy{dy_, s}, at(at_) {}
    int op, na, j;
    const GroupRec* G;
    const CView* xp;
    CView y, dy;
    Attrs at;
  };

  // Operand q of a call: shared (one node for the whole call: a node alone's operand, a group's
  // weight), else the members' operands joined.
  bool joined(const Call& c, int q) const { return c.G && gjoin_[size_t(c.G->x0 + q)]; }
  Node& single_operand(const Call& c, int q) {
    return nodes_[size_t(args_[size_t(nodes_[size_t(c.G ? members(*c.G)[0] : c.j)].a0 + q)])];
  }

  bool call_wants(const Call& c, int q, bool full) {
    const OpInfo& oi = *nodes_[size_t(c.G ? members(*c.G)[0] : c.j)].info;
    if (std::find(oi.nograd.begin(), oi.nograd.end(), q) != oi.nograd.end()) return false;
    if (!joined(c, q)) return full || single_operand(c, q).ng;
    return full || gopnd_[size_t(c.G->x0 + q)].ng;
  }

  // Runs run(dx, set) for operand q's gradient: with set, dx is written whole (nothing has written
  // it yet and the kernel can: settable), else added into.  A joined operand's gradient is in
  // place when its members' gradients are one block in member order, else computed in scratch
  // and added to each member's.
  template <class F>
  void grad_into(const Call& c, int q, bool full, bool settable, F&& run) {
    if (!joined(c, q)) {
      Node& m = single_operand(c, q);
      if (settable && grad_unwritten(m)) {
        run(View{bw(m).g, *m.s}, true);
        fresh(m) = 0;
      } else {
        run(View{grad_of(m), *m.s}, false);
      }
      return;
    }
    const GroupRec& G = *c.G;
    const Shape& xs = gxs_[size_t(G.x0 + q)].s;
    const Operand& r = gopnd_[size_t(G.x0 + q)];
    const int* ids = gops_.data() + r.ids;
    if (r.src >= 0) {  // a slice of an earlier group's block, whose gradients reach these members
      const GroupRec& S = grecs_[size_t(r.src)];
      if (S.g && members(S)[r.k0 + G.nm - 1] <= bwd_top_) {
        const int64_t* off = goff_.data() + S.o0 + r.k0;
        bool all = true;
        for (int k = 0; k < G.nm; ++k) all &= fresh_[size_t(ids[k])] != 0;
        if (!(all && settable))
          for (int k = 0; k < G.nm; ++k)
            if (fresh_[size_t(ids[k])]) std::fill_n(S.g + off[k], off[k + 1] - off[k], 0.0f);
        run(View{S.g + off[0], xs}, all && settable);
        for (int k = 0; k < G.nm; ++k) fresh_[size_t(ids[k])] = 0;
        return;
      }
    }
    bool adjacent = true, all = true;
    const float* next = nullptr;
    for (int k = 0; k < G.nm && adjacent; ++k) {
      const Node& x = nodes_[size_t(ids[k])];
      adjacent = bw(x).g && !bw(x).alias && (k == 0 || bw(x).g == next);
      all &= fresh_[size_t(ids[k])] != 0;
      next = bw(x).g + x.s->total();
    }
    if (adjacent) {
      float* p = bw_[size_t(ids[0])].g;
      if (!(all && settable))
        for (int k = 0; k < G.nm; ++k) defined_grad(nodes_[size_t(ids[k])]);
      run(View{p, xs}, all && settable);
      for (int k = 0; k < G.nm; ++k) fresh_[size_t(ids[k])] = 0;
      return;
    }
    if (int64_t(dx_buf_.size()) < xs.total()) dx_buf_.resize(size_t(xs.total()));
    float* t = dx_buf_.data();
    if (!settable) std::fill_n(t, xs.total(), 0.0f);
    run(View{t, xs}, settable);
    for (int k = 0; k < G.nm; ++k) t += add_to_grad(ids[k], t, full);  // each member's part
  }

  // Node id's gradient += t (its size; returned), or = t where nothing wrote it yet.
  int64_t add_to_grad(int id, const float* t, bool full) {
    int gi = gof_[size_t(id)];
    const GroupRec* S = gi >= 0 ? &grecs_[size_t(gi)] : nullptr;
    if (S && S->g && S->all_ng && id <= bwd_top_) {  // a member of a group: its part of that block
      const int64_t* off = goff_.data() + S->o0 + gat_[size_t(id)];
      scatter_part(S->g + off[0], t, off[1] - off[0], fresh_[size_t(id)]);
      return off[1] - off[0];
    }
    Node& x = nodes_[size_t(id)];
    int64_t m = x.s->total();
    if (full || x.ng) {
      if (bw(x).g && fresh(x))
        scatter_part(bw(x).g, t, m, fresh(x));
      else
        ku::Arr(grad_of(x), m) += ku::CArr(t, m);
    }
    return m;
  }

  // The backward of a stacked concatenation (stacks_vectors) for operand q: each member's rows of
  // dy go straight to its operand's gradient (no joined gradient, then a scatter of it).
  void stacked_grad(const Call& c, int q, bool full) {
    const GroupRec& G = *c.G;
    const int* mem = members(G);
    const int64_t* off = goff_.data() + G.o0;
    int64_t at = 0;  // operand q's first row in each member's output (the members share the sizes)
    for (int p = 0; p < q; ++p) at += hot_[size_t(args_[size_t(hot_[size_t(mem[0])].a0 + p)])].total;
    for (int k = 0; k < G.nm; ++k)
      add_to_grad(args_[size_t(hot_[size_t(mem[k])].a0 + q)], c.dy.p + off[k] + at, full);
  }

  // dst (n floats) += src, or = src where dst is unwritten (fresh, then cleared).
  static void scatter_part(float* dst, const float* src, int64_t n, char& fresh) {
    if (fresh)
      std::memcpy(dst, src, size_t(n) * sizeof(float)), fresh = 0;
    else
      ku::Arr(dst, n) += ku::CArr(src, n);
  }

  // Backward: postpone dW += dy x^T of a product whose weight is one unbatched matrix (a node's
  // own or a group's shared one), so that all products of W add their parts with one GEMM when
  // the sweep reaches W.
  bool defer_weight_grad(const Call& c, int q) {
    if (!((c.op == matmul_ && c.na == 2 && q == 0) || (c.op == affine_ && q % 2 == 1 && q + 1 < c.na))) return false;
    if (joined(c, q)) return false;
    Node& W = single_operand(c, q);
    const CView& X = c.xp[q + 1];
    if (W.s->nd > 2 || W.s->bd != 1 || W.s->total() == 0 || X.s.nd > 2 || X.s.bd != c.y.s.bd) return false;
    grad_of(W);
    dw_.push_back({c.dy.p, X.p, X.s.total() / W.s->d[1], bw(W).dwq, c.op, c.G != nullptr});
    bw(W).dwq = int(dw_.size()) - 1;
    return true;
  }

  // The fused LSTM gates: r = d(pre-activations) once for all inputs (in an arena of its own, so it
  // outlives the call, and one layer's steps' r lie side by side); with deferral on, dW += r in^T
  // of a matrix W_x or W_h (no dropout, its input batched as the step) joins that weight's one
  // GEMM when the sweep reaches it, which then reads the r in place instead of gathering them.
  void lstm_gates_backward(const Call& c, bool full, bool defer) {
    int64_t nb = c.y.s.bd, G = c.y.s.d[0];
    float* r = dpre_.alloc(size_t(G * nb));
    ku::lstm_gates_dpre(c.y, c.dy, r);
    bool drop = c.op == lstm_gates_drop_;
    for (int q = 0; q < c.na; ++q) {
      if (!call_wants(c, q, full)) continue;
      if (defer && !drop && q == 0 && !c.G && lstm_input_site(nodes_[size_t(c.j)])) {
        // W_x^T r: with the other steps', at the end
        Node& m = single_operand(c, 0);
        dxq_.push_back({r, args_[size_t(nodes_[size_t(c.j)].a0)], args_[size_t(nodes_[size_t(c.j)].a0 + 2)], nb});
        grad_of(m);  // so the sweep reaches the leaf (and parks it until the flush)
        bw(m).pending = true;
        continue;
      }
      if (defer && !drop && (q == 2 || q == 3) && !joined(c, q)) {
        Node& m = single_operand(c, q);
        const CView& X = c.xp[q - 2];
        if (m.s->nd == 2 && m.s->bd == 1 && m.s->d[1] > 1 && X.s.bd == nb && X.s.total() == nb * m.s->d[1]) {
          grad_of(m);
          dw_.push_back({r, X.p, nb, bw(m).dwq, c.op, c.G != nullptr});
          bw(m).dwq = int(dw_.size()) - 1;
          continue;
        }
      }
      count_call(c.op);
      CallTimer timer(c.op);
      grad_into(c, q, full, false, [&](const View& dx, bool) { ku::lstm_gates_grad(c.xp, c.na, c.y.s, r, q, dx); });
    }
  }

  // Operand q's gradient of a group read in runs (plan_runs), written where the operands' gradients
  // lie instead of into a joined block that is then added into each (grad_into's last way): when
  // every member's operand is a member of a group whose gradient block backward fills, the runs'
  // segments whose gradients lie side by side there take one call of the op's runs kernel each.
  // False (nothing done) when some operand's gradient lies elsewhere, or the operand is a slice of
  // one group (grad_into writes that in place).
  bool grad_in_runs(const Call& c, int q, const KernelDef& k) {
    const GroupRec& G = *c.G;
    const Operand& r = gopnd_[size_t(G.x0 + q)];
    std::array<const float*, 8> xs{};  // a segment's operands
    if (!joined(c, q) || r.src >= 0 || G.na > int(xs.size())) return false;
    const int* ids = gops_.data() + r.ids;
    const int64_t* off = goff_.data() + G.o0;
    run_dx_.resize(size_t(G.nm));
    for (int m = 0; m < G.nm; ++m) {
      const int id = ids[m], gi = gof_[size_t(id)];
      if (gi < 0 || id > bwd_top_) return false;
      const GroupRec& S = grecs_[size_t(gi)];
      if (!S.g || !S.all_ng) return false;
      run_dx_[size_t(m)] = S.g + goff_[size_t(S.o0 + gat_[size_t(id)])];
    }
    const float* const* rx = grun_x_.data() + G.rx;
    const int64_t* rn = grun_n_.data() + G.r0;
    int m = 0;
    for (int run = 0; run < G.nr; ++run) {
      const int first = m;
      for (int64_t got = 0; got < rn[run]; ++m) got += off[m + 1] - off[m];  // the run's members
      for (int a = first; a < m;) {  // segments whose gradients lie side by side
        int e = a + 1;
        while (e < m && run_dx_[size_t(e)] == run_dx_[size_t(e - 1)] + (off[e] - off[e - 1])) ++e;
        bool all_fresh = true;
        for (int t = a; t < e; ++t) all_fresh &= fresh_[size_t(ids[t])] != 0;
        if (!all_fresh)  // the parts nothing wrote yet start at zero, then every part is added to
          for (int t = a; t < e; ++t)
            if (fresh_[size_t(ids[t])]) std::fill_n(run_dx_[size_t(t)], off[t + 1] - off[t], 0.0f);
        const int64_t at = off[a] - off[first], len = off[e] - off[a];
        for (int p = 0; p < G.na; ++p) xs[size_t(p)] = rx[size_t(run) * size_t(G.na) + size_t(p)] + at;
        k.bwd_runs(xs.data(), &len, 1, G.na, c.y.p + off[a], c.dy.p + off[a], q, run_dx_[size_t(a)], all_fresh);
        for (int t = a; t < e; ++t) fresh_[size_t(ids[t])] = 0;
        a = e;
      }
    }
    return true;
  }

  // A call's operand gradients (the node's, or the group's joined).
  void call_backward(const Call& c, bool full, bool defer) {
    if (c.op == lstm_gates_ || c.op == lstm_gates_drop_) {
      lstm_gates_backward(c, full, defer);
      return;
    }
    const KernelDef& k = kernels_[size_t(c.op)];
    if (c.G && c.G->nr > 0) {  // operands read in runs (plan_runs)
      const float* const* rx = grun_x_.data() + c.G->rx;
      const int64_t* rn = grun_n_.data() + c.G->r0;
      for (int q = 0; q < c.na; ++q) {
        if (!call_wants(c, q, full)) continue;
        count_call(c.op);
        CallTimer timer(c.op);
        if (grad_in_runs(c, q, k)) continue;
        grad_into(c, q, full, true, [&](const View& dx, bool set) {
          k.bwd_runs(rx, rn, c.G->nr, c.na, c.y.p, c.dy.p, q, dx.p, set);
        });
      }
      return;
    }
    const bool stacked = c.G && c.op == concat_ && stacks_vectors(*c.G);
    for (int q = 0; q < c.na; ++q) {
      if (!call_wants(c, q, full)) continue;
      if (defer && defer_weight_grad(c, q)) continue;
      count_call(c.op);
      CallTimer timer(c.op);
      if (stacked) {
        stacked_grad(c, q, full);
        continue;
      }
      if (c.G && (c.op == matmul_ || c.op == affine_)) ++ab::stats().input_grad;
      grad_into(c, q, full, k.bwd_set != nullptr, [&](const View& dx, bool set) {
        (set ? k.bwd_set : k.bwd)(c.xp, c.na, c.y, c.dy, q, dx, c.at);
      });
    }
  }

  void flush_weight_grad(Node& W) {
    items_.clear();
    int first = dw_[size_t(bw(W).dwq)].op, other = -1;
    bool group = false;
    for (int e = bw(W).dwq; e >= 0; e = dw_[size_t(e)].next) {
      const DeferredGrad& d = dw_[size_t(e)];
      if (d.op != first) other = d.op;
      group |= d.group;
      items_.push_back({d.x, d.n, nullptr, d.dy});
    }
    bw(W).dwq = -1;
    count_call(first);  // one dW product for all the weight's deferred parts
    if (other >= 0) count_call(other);
    CallTimer timer(first);
    if (items_.size() == 1 && group) ++ab::stats().weight_grad;  // (counted below for two or more)
    ab::weight_grad(bw(W).g, W.s->d[0], W.s->d[1], items_);
  }

  // Backward under autobatching: each live group reaching down to i gets one gradient block
  // (not zero-filled: each member's part is zeroed by its first adder or written whole by its
  // first writer), so its dy is read in place; backward() points its members <= i into it.
  void group_grad_blocks(int i) {
    for (GroupRec& G : grecs_) G.g = nullptr;
    for (int e : plan_) {
      if (e >= 0) continue;
      GroupRec& G = grecs_[size_t(-1 - e)];
      if (members(G)[0] <= i) G.g = grads_.alloc(size_t(goff_[size_t(G.o0 + G.nm)]));
    }
  }

  // Backward over the executed records in reverse.
  void planned_backward(int i, bool full) {
    Node& top = nodes_[size_t(i)];
    std::fill_n(grad_of(top), top.s->total(), 1.0f);
    for (auto it = plan_.rbegin(); it != plan_.rend(); ++it) {
      if (*it >= 0) {
        if (*it <= i) backward_node(*it, full, true);
      } else {
        group_backward(grecs_[size_t(-1 - *it)], i, full);
      }
    }
  }

  void group_backward(const GroupRec& G, int i, bool full) {
    if (!G.g) return;
    const int* mem = members(G);
    bool any = false;
    if (G.info->leaf == 3) {
      for (int k = 0; k < G.nm; ++k) {
        const Node& m = nodes_[size_t(mem[k])];
        any |= mem[k] <= i && (bw(m).pending || !fresh(m));
      }
    } else {  // (only leaves wait for deferred products: pending)
      for (int k = 0; k < G.nm && !any; ++k) any = mem[k] <= i && !fresh_[size_t(mem[k])];
    }
    if (!any) return;  // no gradient reached the group
    if (G.info->leaf == 3) {  // lookups: one scatter-add into the table (one storage: the signature's)
      PyObject* st = ref_of(mem[0]);
      Tensor* g = nullptr;
      rows_.clear();
      for (int k = 0; k < G.nm; ++k) {
        Node& m = nodes_[size_t(mem[k])];
        if (mem[k] > i || (fresh(m) && !bw(m).pending)) continue;
        if (bw(m).pending) {
          pending_leaves_.push_back(mem[k]);
          continue;
        }
        if (!attrs_of(m).flag(attr::lookup::update)) continue;
        if (!g) count_call(G.op), g = &contract::storage::grad(st);
        IntSpan idx = scatter_rows(m, *g);
        rows_.insert(rows_.end(), idx.begin(), idx.end());
      }
      if (!rows_.empty()) contract::storage::touch(st, rows_.data(), int64_t(rows_.size()));
      return;
    }
    const int64_t* off = goff_.data() + G.o0;
    for (int k = 0; k < G.nm; ++k) {  // the parts nothing wrote: zero (members past i have no gradient)
      if (mem[k] > i || fresh_[size_t(mem[k])]) std::fill_n(G.g + off[k], off[k + 1] - off[k], 0.0f);
      if (mem[k] <= i) fresh_[size_t(mem[k])] = 0;
    }
    const Call c(G.op, G.na, -1, &G, gxs_.data() + G.x0, G.y, G.g, G.ys, group_attrs(G));
    call_backward(c, full, true);
  }

  void check_finite(int j) {
    const Node& n = nodes_[size_t(j)];
    for (int64_t k = 0; k < n.s->total(); ++k)
      if (!std::isfinite(val(n)[k]))
        throw std::runtime_error("check_validity: " + n.info->name + " (node " + std::to_string(j) +
                                 ") produced NaN or Inf");
  }

  static py::object copy_out(const float* p, const Shape& s) {
    std::vector<int64_t> sh(s.d, s.d + s.nd);
    sh.push_back(s.bd);
    auto t = std::make_unique<Tensor>(sh);
    std::memcpy(t->data(), p, size_t(t->total()) * sizeof(float));
    return py::cast(std::move(t));
  }
};

}  // namespace


// The calls of every training step (renew_cg's reset, forward, the loss's scalar, backward) as
// plain CPython methods: pybind11's dispatcher (its argument loaders and call record) cost ~70 ns
// a call, a tenth of a small graph's forward.  Errors are the ones pybind11 would raise.
namespace {

Executor* executor_of(PyObject* self) {
  Executor* ex = instance_or_null<Executor>(self);
  if (!ex) PyErr_SetString(PyExc_TypeError, "cpu_eigen: expected an Executor");
  return ex;
}

bool arity(const char* name, Py_ssize_t want, Py_ssize_t got) {
  if (got == want) return true;
  PyErr_Format(PyExc_TypeError, "Executor.%s() takes %zd arguments (%zd given)", name, want, got);
  return false;
}

PyObject* ex_forward(PyObject* self, PyObject* const* args, Py_ssize_t n) {
  Executor* ex = executor_of(self);
  int a, b;
  if (!ex || !arity("forward", 2, n) || !int_arg(args[0], a) || !int_arg(args[1], b)) return nullptr;
  return guarded([&] {
    ex->forward(a, b);
    Py_RETURN_NONE;
  });
}

PyObject* ex_backward(PyObject* self, PyObject* const* args, Py_ssize_t n) {
  Executor* ex = executor_of(self);
  int i;
  if (!ex || !arity("backward", 2, n) || !int_arg(args[0], i)) return nullptr;
  const int full = PyObject_IsTrue(args[1]);
  if (full < 0) return nullptr;
  return guarded([&] {
    ex->backward(i, full != 0);
    Py_RETURN_NONE;
  });
}

PyObject* ex_scalar(PyObject* self, PyObject* const* args, Py_ssize_t n) {
  Executor* ex = executor_of(self);
  int i;
  if (!ex || !arity("scalar", 1, n) || !int_arg(args[0], i)) return nullptr;
  return guarded([&] { return PyFloat_FromDouble(ex->scalar(i)); });
}

PyObject* ex_reset(PyObject* self, PyObject*) {
  Executor* ex = executor_of(self);
  if (!ex) return nullptr;
  return guarded([&] {
    ex->reset();
    Py_RETURN_NONE;
  });
}

PyMethodDef executor_methods[] = {
    {"forward", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ex_forward)), METH_FASTCALL,
     "forward(a, b): compute nodes a..b-1"},
    {"backward", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ex_backward)), METH_FASTCALL,
     "backward(i, full): backpropagate from node i"},
    {"scalar", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ex_scalar)), METH_FASTCALL,
     "scalar(i) -> float: node i's first value"},
    {"reset", ex_reset, METH_NOARGS, "reset(): forget the graph, keep the memory"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void bind_executor(py::module_& m) {
  m.def("kernel_counts", [] {  // {op name: (nodes, calls, seconds)} of the ops with activity
    const KernelCounts& c = counts();
    const auto& t = kernel_table();
    py::dict d;
    for (size_t k = 0; k < t.size(); ++k)
      if (c.nodes[k] || c.calls[k]) d[py::str(t[k].name)] = py::make_tuple(c.nodes[k], c.calls[k], c.seconds[k]);
    return d;
  });
  m.def("reset_kernel_counts", [] { counts().reset(); });
  m.def("set_profiling", [](bool on) { counts().timing = on; });
  py::class_<Executor> cls(m, "Executor", py::dynamic_attr());
  cls.def(py::init<py::object>())
      .def("value", &Executor::value)
      .def("gradient", &Executor::gradient)
      .def("truncate", &Executor::truncate)
      .def("invalidate", &Executor::invalidate)
      .def("arena_floats", &Executor::arena_floats)
      .def("plan", &Executor::plan);
  // It reads a graph's packed nodes itself (contract::GraphSource): the front end need not make
  // the node tuples for it (dynet_api.graph: executors without this attribute get cg.nodes made).
  cls.attr("reads_packed_nodes") = true;
  for (PyMethodDef* d = executor_methods; d->ml_name; ++d) {
    py::object method = py::reinterpret_steal<py::object>(PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), d));
    if (!method) throw py::error_already_set();
    cls.attr(d->ml_name) = method;
  }
}

}  // namespace dy
