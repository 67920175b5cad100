// oneDNN's recurrent primitives behind XLA FFI custom calls: the "onednn" path of jaxrnn.scan on the CPU.
//
// One forward and one backward handler serve every cell; the attribute `kind` says which oneDNN
// primitive runs (jaxrnn/onednn.py maps the cells' parameters to oneDNN's layout):
//
//   kind 0  vanilla RNN, tanh       h_t = tanh(x_t U + h_{t-1} W + b)
//   kind 1  vanilla RNN, ReLU
//   kind 2  LSTM                    gates i, f, g, o; carry (h, c)
//   kind 3  GRU                     gates u, r, o; o_t = tanh(x_t U_o + (r_t * h_{t-1}) W_o + b_o)
//   kind 4  linear-before-reset GRU o_t = tanh(x_t U_o + b_o + r_t * (h_{t-1} W_o + b'_o))
//
// with h_t = u_t * h_{t-1} + (1 - u_t) * o_t for both GRUs. Shapes (float32, row-major):
//   x (T, N, I), h0 and c0 (N, H) (c0 of size 0 unless LSTM), weights_layer (I, G, H),
//   weights_iter (H, G, H), bias (G', H) (G' = 4 for kind 4, else G), y (T, N, H),
//   workspace: the bytes oneDNN's training forward keeps for the backward pass
//   (jaxrnn_onednn_workspace_size gives their number for a shape).
// One layer, one direction, time running forward: the caller flips for reverse.

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pthread.h>
#include <sched.h>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

#include <omp.h>

namespace {

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;

constexpr auto f32 = memory::data_type::f32;
constexpr auto left2right = dnnl::rnn_direction::unidirectional_left2right;

enum Kind : int64_t { kRnnTanh = 0, kRnnRelu = 1, kLstm = 2, kGru = 3, kLbrGru = 4 };

int64_t Gates(int64_t kind) { return kind == kLstm ? 4 : (kind == kGru || kind == kLbrGru) ? 3 : 1; }

dnnl::engine& Cpu() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Shape {
  int64_t kind, T, N, I, H;
};

// The descriptors of the caller's buffers, and of the weights in whatever format a primitive prefers.
struct Descs {
  memory::desc x, h, wl, wi, b, y, wl_any, wi_any;
  explicit Descs(const Shape& s) {
    const int64_t G = Gates(s.kind), B = s.kind == kLbrGru ? 4 : G;
    x = memory::desc({s.T, s.N, s.I}, f32, tag::tnc);
    h = memory::desc({1, 1, s.N, s.H}, f32, tag::ldnc);
    wl = memory::desc({1, 1, s.I, G, s.H}, f32, tag::ldigo);
    wi = memory::desc({1, 1, s.H, G, s.H}, f32, tag::ldigo);
    b = memory::desc({1, 1, B, s.H}, f32, tag::ldgo);
    y = memory::desc({s.T, s.N, s.H}, f32, tag::tnc);
    wl_any = memory::desc({1, 1, s.I, G, s.H}, f32, tag::any);
    wi_any = memory::desc({1, 1, s.H, G, s.H}, f32, tag::any);
  }
};

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // allocated per call: calls may run concurrently
  return attr;
}

dnnl::algorithm Activation(int64_t kind) {
  return kind == kRnnRelu ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_tanh;
}

dnnl::primitive_desc ForwardDesc(const Shape& s, dnnl::prop_kind prop) {
  const Descs d(s);
  const auto attr = UserScratchpad();
  switch (s.kind) {
    case kRnnTanh:
    case kRnnRelu:
      return dnnl::vanilla_rnn_forward::primitive_desc(Cpu(), prop, Activation(s.kind), left2right, d.x, d.h,
                                                       d.wl_any, d.wi_any, d.b, d.y, d.h, attr);
    case kLstm:
      return dnnl::lstm_forward::primitive_desc(Cpu(), prop, left2right, d.x, d.h, d.h, d.wl_any, d.wi_any, d.b,
                                                d.y, d.h, d.h, attr);
    case kGru:
      return dnnl::gru_forward::primitive_desc(Cpu(), prop, left2right, d.x, d.h, d.wl_any, d.wi_any, d.b, d.y,
                                               d.h, attr);
    default:
      return dnnl::lbr_gru_forward::primitive_desc(Cpu(), prop, left2right, d.x, d.h, d.wl_any, d.wi_any, d.b,
                                                   d.y, d.h, attr);
  }
}

dnnl::primitive_desc BackwardDesc(const Shape& s) {
  const Descs d(s);
  const auto attr = UserScratchpad();
  const auto fwd = ForwardDesc(s, dnnl::prop_kind::forward_training);
  const auto bwd = dnnl::prop_kind::backward;
  switch (s.kind) {
    case kRnnTanh:
    case kRnnRelu:
      return dnnl::vanilla_rnn_backward::primitive_desc(
          Cpu(), bwd, Activation(s.kind), left2right, d.x, d.h, d.wl_any, d.wi_any, d.b, d.y, d.h, d.x, d.h,
          d.wl_any, d.wi_any, d.b, d.y, d.h, dnnl::vanilla_rnn_forward::primitive_desc(fwd.get()), attr);
    case kLstm:
      return dnnl::lstm_backward::primitive_desc(
          Cpu(), bwd, left2right, d.x, d.h, d.h, d.wl_any, d.wi_any, d.b, d.y, d.h, d.h, d.x, d.h, d.h, d.wl_any,
          d.wi_any, d.b, d.y, d.h, d.h, dnnl::lstm_forward::primitive_desc(fwd.get()), attr);
    case kGru:
      return dnnl::gru_backward::primitive_desc(Cpu(), bwd, left2right, d.x, d.h, d.wl_any, d.wi_any, d.b, d.y,
                                                d.h, d.x, d.h, d.wl_any, d.wi_any, d.b, d.y, d.h,
                                                dnnl::gru_forward::primitive_desc(fwd.get()), attr);
    default:
      return dnnl::lbr_gru_backward::primitive_desc(Cpu(), bwd, left2right, d.x, d.h, d.wl_any, d.wi_any, d.b,
                                                    d.y, d.h, d.x, d.h, d.wl_any, d.wi_any, d.b, d.y, d.h,
                                                    dnnl::lbr_gru_forward::primitive_desc(fwd.get()), attr);
  }
}

// A primitive and its descriptor, made once per shape on each caller thread (making an RNN's descriptor costs
// about as much as running a small one) and kept for the process's life: the threads never end.
struct Made {
  dnnl::primitive_desc pd;
  dnnl::primitive primitive;
};

enum Direction : int64_t { kInference = 0, kTraining = 1, kBackward = 2 };

const Made& Primitive(const Shape& s, Direction direction) {
  thread_local std::map<std::array<int64_t, 6>, Made> made;
  const std::array<int64_t, 6> key{s.kind, s.T, s.N, s.I, s.H, direction};
  auto found = made.find(key);
  if (found == made.end()) {
    dnnl::primitive_desc pd = direction == kBackward    ? BackwardDesc(s)
                              : direction == kTraining ? ForwardDesc(s, dnnl::prop_kind::forward_training)
                                                       : ForwardDesc(s, dnnl::prop_kind::forward_inference);
    found = made.emplace(key, Made{pd, dnnl::primitive(pd)}).first;
  }
  return found->second;
}

memory Wrap(const memory::desc& desc, const void* data) {
  return memory(desc, Cpu(), const_cast<void*>(data));
}

// `user` in the format the primitive wants (`wanted`): itself, or a reordered copy.
memory InFormat(const memory& user, const memory::desc& wanted, dnnl::stream& stream) {
  if (user.get_desc() == wanted) return user;
  memory copy(wanted, Cpu());
  dnnl::reorder(user, copy).execute(stream, const_cast<memory&>(user), copy);
  return copy;
}

// The scratchpad, kept per thread from call to call: allocated afresh, its pages (megabytes: every step's
// gates) would be faulted in again by every call.
memory Scratchpad(const dnnl::primitive_desc& pd) {
  thread_local std::vector<char> buffer;
  const auto desc = pd.scratchpad_desc();
  if (buffer.size() < desc.get_size()) buffer.resize(desc.get_size());
  return memory(desc, Cpu(), buffer.data());
}

// The process's cores, handed out to the calls that run at once (XLA runs independent ones, the two directions
// of a bidirectional layer, side by side): a call waits until as many cores as it has threads are free, so
// the teams of calls at once never hold more threads than there are cores. An OpenMP team with more threads
// than free cores is much slower than one thread: each step's barrier waits for a thread without a core.
class Cores {
 public:
  explicit Cores(int64_t threads) {
    std::unique_lock<std::mutex> lock(Mutex());
    taken_ = std::max<int64_t>(1, std::min<int64_t>(threads, Total()));
    Freed().wait(lock, [this] { return Free() >= taken_; });
    Free() -= taken_;
  }
  ~Cores() {
    std::lock_guard<std::mutex> lock(Mutex());
    Free() += taken_;
    Freed().notify_all();
  }

 private:
  static int64_t Total() {
    static const int64_t total = [] {
      cpu_set_t allowed;
      CPU_ZERO(&allowed);
      return sched_getaffinity(0, sizeof(allowed), &allowed) == 0 ? std::max(1, CPU_COUNT(&allowed)) : 1;
    }();
    return total;
  }
  static int64_t& Free() {
    static int64_t free = Total();
    return free;
  }
  static std::mutex& Mutex() {
    static std::mutex mutex;
    return mutex;
  }
  static std::condition_variable& Freed() {
    static std::condition_variable freed;
    return freed;
  }
  int64_t taken_;
};

// The threads that call oneDNN. libgomp gives each calling thread a team of its own and, once its teams hold
// more threads than there are cores, lets their workers spin only briefly before sleeping: a recurrent
// primitive opens a parallel region per time step, and waking the workers for each cost more than the
// region's work (two threads were slower than one). So the handlers, which XLA calls from any of its
// threads, hand each call to one of these: one while calls come one at a time, so one team, whose workers
// spin between a step's regions. Calls that come at once (several CPU devices) get one each.
class Caller {
 public:
  // Runs `job` on a caller thread with `threads` OpenMP threads; returns when it is done.
  static void Run(int64_t threads, const std::function<void()>& job) {
    Cores cores(threads);
    Caller* caller = Take();
    {
      std::unique_lock<std::mutex> lock(caller->mutex_);
      caller->job_ = &job;
      caller->threads_ = threads;
      caller->wake_.notify_one();
      caller->done_.wait(lock, [caller] { return caller->job_ == nullptr; });
    }
    Give(caller);
  }

 private:
  Caller() { std::thread([this] { Loop(); }).detach(); }  // lives as long as the process

  void Loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return job_ != nullptr; });
      if (threads_ > 0) omp_set_num_threads(static_cast<int>(threads_));
      (*job_)();
      job_ = nullptr;
      done_.notify_one();
    }
  }

  static std::mutex& PoolMutex() {
    static std::mutex mutex;
    static const int forked = pthread_atfork(nullptr, nullptr, [] {
      // a forked child has none of the parent's threads: forget their callers (leaked), start afresh
      new (&PoolMutex()) std::mutex;
      Idle().clear();
    });
    (void)forked;
    return mutex;
  }
  static std::vector<Caller*>& Idle() {
    static std::vector<Caller*> idle;
    return idle;
  }
  static Caller* Take() {
    std::lock_guard<std::mutex> lock(PoolMutex());
    if (Idle().empty()) return new Caller();
    Caller* caller = Idle().back();
    Idle().pop_back();
    return caller;
  }
  static void Give(Caller* caller) {
    std::lock_guard<std::mutex> lock(PoolMutex());
    Idle().push_back(caller);
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void()>* job_ = nullptr;
  int64_t threads_ = 0;
};

// Runs `body` (which may throw) on a caller thread; its exception comes back as an FFI error.
// How many threads a call gets. `threads` > 0 (the user's OMP_NUM_THREADS): that many. `threads` < 0: one
// or -threads, whichever ran this shape faster lately. A team waits at every time step's barrier for its
// slowest thread; on cores that other programs keep busy one thread can be several times faster than all,
// on idle cores slower: so both are timed (kFirstTries times each, then a moving average), the faster is
// taken, and the other is tried again every kProbeEvery calls, as the machine's load changes.
class Threads {
 public:
  using Key = std::array<int64_t, 6>;  // kind, T, N, I, H, direction

  static int64_t Pick(const Key& key, int64_t threads) {
    if (threads > 0 || threads == -1) return std::abs(threads);
    std::lock_guard<std::mutex> lock(Mutex());
    Seen& seen = Table()[key];
    const int64_t many = -threads, call = seen.calls++;
    if (call < 2 * kFirstTries) return call % 2 ? 1 : many;  // both, a few times each, before choosing
    const bool one = seen.seconds[0] <= seen.seconds[1];
    if (call % kProbeEvery == 0) return one ? many : 1;
    return one ? 1 : many;
  }

  static void Took(const Key& key, int64_t threads, int64_t used, double seconds) {
    if (threads >= -1) return;
    std::lock_guard<std::mutex> lock(Mutex());
    Seen& seen = Table()[key];
    double& kept = seen.seconds[used == 1 ? 0 : 1];
    // the first tries: the fastest (a first call also pays for its pages and kernels); then a moving average
    kept = kept < 0 ? seconds : seen.calls <= 2 * kFirstTries ? std::min(kept, seconds) : 0.7 * kept + 0.3 * seconds;
  }

 private:
  static constexpr int64_t kFirstTries = 3, kProbeEvery = 16;
  struct Seen {
    double seconds[2] = {-1.0, -1.0};  // recent time with one thread, with all: -1 before the first
    int64_t calls = 0;
  };
  static std::mutex& Mutex() {
    static std::mutex mutex;
    return mutex;
  }
  static std::map<Key, Seen>& Table() {
    static std::map<Key, Seen> table;
    return table;
  }
};

template <class Body>
ffi::Error OnCaller(const char* what, const Threads::Key& key, int64_t threads, Body body) {
  std::string failure;
  bool failed = false;
  const int64_t used = Threads::Pick(key, threads);
  const auto start = std::chrono::steady_clock::now();
  Caller::Run(used, [&] {
    try {
      body();
    } catch (const std::exception& e) {
      failed = true;
      failure = std::string("jaxrnn onednn ") + what + ": " + e.what();
    }
  });
  Threads::Took(key, threads, used, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return failed ? ffi::Error::Internal(failure) : ffi::Error::Success();
}

// The arguments of both directions: the sequence, the states at both ends (with the cell state for the LSTM),
// the weights in the format the primitive wants, the bias, the scratchpad, and the workspace where there is
// one (`workspace` null: inference).
std::unordered_map<int, memory> StateArgs(const Shape& s, const Descs& d, const dnnl::primitive_desc& pd,
                                          dnnl::stream& stream, const void* x, const void* h0, const void* c0,
                                          const void* wl, const void* wi, const void* b, const void* y,
                                          const void* hT, const void* cT, const void* workspace,
                                          size_t workspace_bytes) {
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC_LAYER, Wrap(d.x, x)},
      {DNNL_ARG_SRC_ITER, Wrap(d.h, h0)},
      {DNNL_ARG_WEIGHTS_LAYER, InFormat(Wrap(d.wl, wl), pd.weights_desc(0), stream)},
      {DNNL_ARG_WEIGHTS_ITER, InFormat(Wrap(d.wi, wi), pd.weights_desc(1), stream)},
      {DNNL_ARG_BIAS, Wrap(d.b, b)},
      {DNNL_ARG_DST_LAYER, Wrap(d.y, y)},
      {DNNL_ARG_DST_ITER, Wrap(d.h, hT)},
      {DNNL_ARG_SCRATCHPAD, Scratchpad(pd)},
  };
  if (s.kind == kLstm) {
    args[DNNL_ARG_SRC_ITER_C] = Wrap(d.h, c0);
    args[DNNL_ARG_DST_ITER_C] = Wrap(d.h, cT);
  }
  if (workspace != nullptr) {
    if (workspace_bytes != pd.workspace_desc().get_size()) throw std::invalid_argument("workspace of the wrong size");
    args[DNNL_ARG_WORKSPACE] = Wrap(pd.workspace_desc(), workspace);
  }
  return args;
}

Shape ShapeOf(int64_t kind, ffi::AnyBuffer x, ffi::AnyBuffer h0) {
  const auto xd = x.dimensions();
  return Shape{kind, xd[0], xd[1], xd[2], h0.dimensions()[1]};
}

ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer h0, ffi::AnyBuffer c0, ffi::AnyBuffer wl, ffi::AnyBuffer wi,
                   ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> hT,
                   ffi::Result<ffi::AnyBuffer> cT, ffi::Result<ffi::AnyBuffer> workspace, int64_t kind,
                   int64_t threads, bool training) {
  const Shape s = ShapeOf(kind, x, h0);
  const Threads::Key key{kind, s.T, s.N, s.I, s.H, training ? kTraining : kInference};
  return OnCaller("forward", key, threads, [&] {
    const Descs d(s);
    const Made& made = Primitive(s, training ? kTraining : kInference);
    dnnl::stream stream(Cpu());
    auto args = StateArgs(s, d, made.pd, stream, x.untyped_data(), h0.untyped_data(), c0.untyped_data(),
                          wl.untyped_data(), wi.untyped_data(), b.untyped_data(), y->untyped_data(),
                          hT->untyped_data(), cT->untyped_data(), training ? workspace->untyped_data() : nullptr,
                          workspace->size_bytes());
    made.primitive.execute(stream, args);
    stream.wait();
  });
}

ffi::Error Backward(ffi::AnyBuffer x, ffi::AnyBuffer h0, ffi::AnyBuffer c0, ffi::AnyBuffer wl, ffi::AnyBuffer wi,
                    ffi::AnyBuffer b, ffi::AnyBuffer y, ffi::AnyBuffer hT, ffi::AnyBuffer cT,
                    ffi::AnyBuffer workspace, ffi::AnyBuffer dy, ffi::AnyBuffer dhT, ffi::AnyBuffer dcT,
                    ffi::Result<ffi::AnyBuffer> dx, ffi::Result<ffi::AnyBuffer> dh0, ffi::Result<ffi::AnyBuffer> dc0,
                    ffi::Result<ffi::AnyBuffer> dwl, ffi::Result<ffi::AnyBuffer> dwi, ffi::Result<ffi::AnyBuffer> db,
                    int64_t kind, int64_t threads) {
  const Shape s = ShapeOf(kind, x, h0);
  const Threads::Key key{kind, s.T, s.N, s.I, s.H, kBackward};
  return OnCaller("backward", key, threads, [&] {
    const Descs d(s);
    const Made& made = Primitive(s, kBackward);
    const auto& pd = made.pd;
    dnnl::stream stream(Cpu());
    auto args = StateArgs(s, d, pd, stream, x.untyped_data(), h0.untyped_data(), c0.untyped_data(),
                          wl.untyped_data(), wi.untyped_data(), b.untyped_data(), y.untyped_data(),
                          hT.untyped_data(), cT.untyped_data(), workspace.untyped_data(), workspace.size_bytes());
    // oneDNN adds the weights' gradients to what their buffers hold: start from zero, in the format it wants.
    const auto diff_wl_desc = pd.diff_weights_desc(0), diff_wi_desc = pd.diff_weights_desc(1);
    memory user_dwl = Wrap(d.wl, dwl->untyped_data()), user_dwi = Wrap(d.wi, dwi->untyped_data());
    memory diff_wl = diff_wl_desc == d.wl ? user_dwl : memory(diff_wl_desc, Cpu());
    memory diff_wi = diff_wi_desc == d.wi ? user_dwi : memory(diff_wi_desc, Cpu());
    std::memset(diff_wl.get_data_handle(), 0, diff_wl_desc.get_size());
    std::memset(diff_wi.get_data_handle(), 0, diff_wi_desc.get_size());
    std::memset(db->untyped_data(), 0, db->size_bytes());
    args[DNNL_ARG_DIFF_DST_LAYER] = Wrap(d.y, dy.untyped_data());
    args[DNNL_ARG_DIFF_DST_ITER] = Wrap(d.h, dhT.untyped_data());
    args[DNNL_ARG_DIFF_SRC_LAYER] = Wrap(d.x, dx->untyped_data());
    args[DNNL_ARG_DIFF_SRC_ITER] = Wrap(d.h, dh0->untyped_data());
    args[DNNL_ARG_DIFF_WEIGHTS_LAYER] = diff_wl;
    args[DNNL_ARG_DIFF_WEIGHTS_ITER] = diff_wi;
    args[DNNL_ARG_DIFF_BIAS] = Wrap(d.b, db->untyped_data());
    if (kind == kLstm) {
      args[DNNL_ARG_DIFF_DST_ITER_C] = Wrap(d.h, dcT.untyped_data());
      args[DNNL_ARG_DIFF_SRC_ITER_C] = Wrap(d.h, dc0->untyped_data());
    }
    made.primitive.execute(stream, args);
    if (diff_wl != user_dwl) dnnl::reorder(diff_wl, user_dwl).execute(stream, diff_wl, user_dwl);
    if (diff_wi != user_dwi) dnnl::reorder(diff_wi, user_dwi).execute(stream, diff_wi, user_dwi);
    stream.wait();
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxrnn_onednn_forward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // h0
                                  .Arg<ffi::AnyBuffer>()  // c0
                                  .Arg<ffi::AnyBuffer>()  // weights_layer
                                  .Arg<ffi::AnyBuffer>()  // weights_iter
                                  .Arg<ffi::AnyBuffer>()  // bias
                                  .Ret<ffi::AnyBuffer>()  // y
                                  .Ret<ffi::AnyBuffer>()  // hT
                                  .Ret<ffi::AnyBuffer>()  // cT
                                  .Ret<ffi::AnyBuffer>()  // workspace
                                  .Attr<int64_t>("kind")
                                  .Attr<int64_t>("threads")
                                  .Attr<bool>("training"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxrnn_onednn_backward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // h0
                                  .Arg<ffi::AnyBuffer>()  // c0
                                  .Arg<ffi::AnyBuffer>()  // weights_layer
                                  .Arg<ffi::AnyBuffer>()  // weights_iter
                                  .Arg<ffi::AnyBuffer>()  // bias
                                  .Arg<ffi::AnyBuffer>()  // y
                                  .Arg<ffi::AnyBuffer>()  // hT
                                  .Arg<ffi::AnyBuffer>()  // cT
                                  .Arg<ffi::AnyBuffer>()  // workspace
                                  .Arg<ffi::AnyBuffer>()  // dy
                                  .Arg<ffi::AnyBuffer>()  // dhT
                                  .Arg<ffi::AnyBuffer>()  // dcT
                                  .Ret<ffi::AnyBuffer>()  // dx
                                  .Ret<ffi::AnyBuffer>()  // dh0
                                  .Ret<ffi::AnyBuffer>()  // dc0
                                  .Ret<ffi::AnyBuffer>()  // dweights_layer
                                  .Ret<ffi::AnyBuffer>()  // dweights_iter
                                  .Ret<ffi::AnyBuffer>()  // dbias
                                  .Attr<int64_t>("kind")
                                  .Attr<int64_t>("threads"));

// The bytes of workspace the training forward of `kind` keeps at this shape; -1 where oneDNN has no primitive.
extern "C" int64_t jaxrnn_onednn_workspace_size(int64_t kind, int64_t T, int64_t N, int64_t I, int64_t H) {
  try {
    return static_cast<int64_t>(
        ForwardDesc(Shape{kind, T, N, I, H}, dnnl::prop_kind::forward_training).workspace_desc().get_size());
  } catch (const std::exception&) {
    return -1;
  }
}

// The major, minor and patch version of the oneDNN this runs on, as 10000 * major + 100 * minor + patch.
extern "C" int64_t jaxrnn_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return 10000 * v->major + 100 * v->minor + v->patch;
}
