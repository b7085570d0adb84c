// Fused Fast-WaveNet step for CPU: one call generates a block of samples for a whole batch.
//
// Why C++: at one sample per step, the plain PyTorch loop spends nearly all its time in per-op dispatch (about
// 200 small ops per sample). Here a step is a handful of register-blocked matrix-vector products over weights
// prepacked in column panels, a vectorised gate, and the project's sampling (float64, same semantics as
// `Sampling.choose`), with no allocation and no Python in the loop. The local-conditioning projections of all layers
// are computed here too, 8 steps at a time, so their weights are read once per 8 samples. A model with linear
// prediction (LPC order > 0) also predicts p_t from the signal's last `order` samples and its frame's coefficients,
// reads p_t's class through a second table, draws the excitation's class and keeps p_t plus it (clipped) as the
// signal, whose class is fed back: O(order) more per step.
//
// Threads: the utterances of a batch are shared out over torch's thread count of threads (the Generator's own
// Workers: this extension is built without OpenMP), with no synchronisation inside a step.
// One utterance may instead be split over two threads (gate-channel groups, residual-skip rows, head columns) that
// meet at one barrier per layer. Partial sums are added per group in a fixed order in both modes, so they give
// bitwise the same samples.
//
// Layout conventions (the Python side, cpu_kernel.py, packs to them):
//   * every channel count is padded to a multiple of V = 16 floats with zero weights and biases;
//   * a weight matrix [rows, N] is stored as column panels of at most PANEL columns, each panel row-major;
//   * conv rows are taps (oldest first) x residual channels, like `CausalConv1d.taps_matrix`;
//   * a layer's gate columns (conv output, conditioning) come in groups of [filter | gate] channels, so that a
//     thread owning a group computes its gated outputs alone;
//   * a layer's residual-skip matrix is the residual panels followed by the skip panels.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <type_traits>
#include <vector>

#include "vector_math.h"

#if defined(__x86_64__) && (defined(__AVX512F__) || defined(__F16C__))
#include <immintrin.h>
#endif

namespace {

constexpr int64_t PANEL = 128;  // columns per packed weight panel: 8 vectors, one cache-friendly row stream

using vb = int8_t __attribute__((vector_size(16)));

inline vf load_weights(const float* p) { return load(p); }

// fp16 weights: converted to fp32 in registers, so the products and sums stay fp32.
inline vf load_weights(const at::Half* p) {
#if defined(__x86_64__) && defined(__AVX512F__)
  return (vf)_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#elif defined(__x86_64__) && defined(__F16C__)
  const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  vf v;
  std::memcpy(&v, &lo, sizeof lo);
  std::memcpy(reinterpret_cast<char*>(&v) + sizeof lo, &hi, sizeof hi);
  return v;
#else
  vf v;
  for (int i = 0; i < V; ++i) v[i] = static_cast<float>(p[i]);
  return v;
#endif
}

// y[b][0 : NB*V] += sum over taps and rows k in [k0, k1) of x[b][tap][k] * w[tap * K + k][0 : NB*V]; row stride ld.
template <typename W, int BT, int NB>
inline void block(const W* w, int64_t ld, int64_t K, int64_t k0, int64_t k1, int taps, const float* const* x,
                  float* const* y) {
  vf acc[BT][NB];
  for (int b = 0; b < BT; ++b)
    for (int j = 0; j < NB; ++j) acc[b][j] = load(y[b] + j * V);
  for (int tap = 0; tap < taps; ++tap) {
    for (int64_t k = k0; k < k1; ++k) {
      const W* row = w + (tap * K + k) * ld;
      vf wv[NB];
      for (int j = 0; j < NB; ++j) wv[j] = load_weights(row + j * V);
      for (int b = 0; b < BT; ++b) {
        const vf xb = splat(x[b * taps + tap][k]);
        for (int j = 0; j < NB; ++j) acc[b][j] += xb * wv[j];
      }
    }
  }
  for (int b = 0; b < BT; ++b)
    for (int j = 0; j < NB; ++j) store(y[b] + j * V, acc[b][j]);
}

// Which rows and output columns of a product one call computes (threads split a step's products this way).
struct Range {
  int64_t c0, c1, k0, k1;
};

// y[b][c - c0] += x[b] @ W[rows k0..k1, column c] for c in [c0, c1), BT batch rows at once (each weight is loaded
// once per tile); W is [taps * K, N] in column panels, x[b * taps + tap] the tap's input.
template <typename W, int BT>
void matvec(const W* w, int64_t K, int taps, int64_t N, const float* const* x, float* const* y, Range r) {
  constexpr int NB = BT <= 2 ? 8 : (BT <= 4 ? 4 : 2);  // at most 16 accumulators, the rest for weights
  const int64_t rows = K * taps;
  float* yy[BT];
  for (int64_t p0 = r.c0 / PANEL * PANEL; p0 < r.c1; p0 += PANEL) {
    const int64_t pw = std::min(PANEL, N - p0), end = std::min(r.c1, p0 + pw) - p0;
    const W* panel = w + p0 * rows;
    for (int64_t c = std::max(r.c0, p0) - p0; c < end;) {
      for (int b = 0; b < BT; ++b) yy[b] = y[b] + p0 + c - r.c0;
      const int64_t left = (end - c) / V;
      if (left >= NB) {
        block<W, BT, NB>(panel + c, pw, K, r.k0, r.k1, taps, x, yy);
        c += NB * V;
      } else if (left >= 4 && NB > 4) {
        block<W, BT, 4>(panel + c, pw, K, r.k0, r.k1, taps, x, yy);
        c += 4 * V;
      } else if (left >= 2 && NB > 2) {
        block<W, BT, 2>(panel + c, pw, K, r.k0, r.k1, taps, x, yy);
        c += 2 * V;
      } else {
        block<W, BT, 1>(panel + c, pw, K, r.k0, r.k1, taps, x, yy);
        c += V;
      }
    }
  }
}

// int8 weights: column n of a matrix is scale[n] * q with q in [-127, 127] (scale[n]: the column's largest |w| over
// 127), stored as q + 128 so that one AVX-512 VNNI vpdpbusd multiplies 4 unsigned weight bytes by 4 signed input
// bytes and adds them into each of 16 int32 lanes. Rows come in groups of 4 (each tap's rows padded to a multiple
// of 4 with zero weights): a panel of pw columns is [rows / 4][pw][4]. Inputs are quantised per product to int8
// with one scale per vector (its largest |x| maps to 127); sum (q_w + 128) q_x - 128 sum q_x is the exact integer
// product, which the column and input scales turn back into floats.
struct Quantized {
  std::vector<int8_t> values;  // per tap, the quantised rows [k0, k1) zero-padded to a multiple of 4
  float scale = 0;             // x ~ scale * values
  int32_t sum = 0;             // sum of values, for the +128 offset of the weights
};

constexpr int64_t round4(int64_t n) { return (n + 3) / 4 * 4; }

// acc[j] += sum over r < 4 of w[4j + r] (unsigned) * x[r] (signed bytes of every lane of x, all lanes equal).
inline vi dot4(vi acc, vi w, vi x) {
#if defined(__x86_64__) && defined(__AVX512VNNI__)
  return (vi)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)w, (__m512i)x);
#else
  uint8_t wb[4 * V];
  int8_t xb[4];
  std::memcpy(wb, &w, sizeof wb);
  std::memcpy(xb, &x, sizeof xb);
  for (int j = 0; j < V; ++j)
    for (int r = 0; r < 4; ++r) acc[j] += static_cast<int32_t>(wb[4 * j + r]) * xb[r];
  return acc;
#endif
}

// x[tap][k0 : k1) for every tap -> q, with one scale for all taps (they feed one product).
void quantize(const float* const* x, int taps, int64_t k0, int64_t k1, Quantized& q) {
  const int64_t n = k1 - k0, np = round4(n);
  const auto chunk = [&](int tap, int64_t k) {  // V inputs from k on, zeros past k1
    if (n - k >= V) return load(x[tap] + k0 + k);
    vf v = {};
    std::memcpy(&v, x[tap] + k0 + k, sizeof(float) * (n - k));
    return v;
  };
  vf largest = {};
  for (int tap = 0; tap < taps; ++tap)
    for (int64_t k = 0; k < n; k += V) {
      const vf v = chunk(tap, k);
      const vf magnitude = v < 0.0f ? -v : v;
      largest = magnitude > largest ? magnitude : largest;
    }
  float top = 0;
  for (int i = 0; i < V; ++i) top = std::max(top, largest[i]);
  const float inverse = top > 0 ? 127.0f / top : 0.0f;
  const vf magic = splat(12582912.0f);  // adding and subtracting 1.5 * 2^23 rounds to the nearest integer
  vi sum = {};
  for (int tap = 0; tap < taps; ++tap)
    for (int64_t k = 0; k < n; k += V) {  // writes up to V - 1 bytes past the tap's rows: the next tap or slack
      const vi v = __builtin_convertvector((chunk(tap, k) * inverse + magic) - magic, vi);
      sum += v;
      const vb bytes = __builtin_convertvector(v, vb);
      std::memcpy(q.values.data() + tap * np + k, &bytes, sizeof bytes);
    }
  q.scale = top / 127.0f;
  q.sum = 0;
  for (int i = 0; i < V; ++i) q.sum += sum[i];
}

// y[b][0 : NB*V] += dequantised sum over taps and row groups g in [g0, g1) of w rows 4g..4g+3 times x[b]'s.
template <int BT, int NB>
inline void block_q(const uint8_t* w, int64_t ld, int64_t tap_groups, int64_t g0, int64_t g1, int taps,
                    const Quantized* x, const float* scales, float* const* y) {
  vi acc[BT][NB] = {};
  for (int tap = 0; tap < taps; ++tap) {
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* row = w + (tap * tap_groups + g) * ld * 4;
      vi wv[NB];
      for (int j = 0; j < NB; ++j) std::memcpy(&wv[j], row + j * 4 * V, sizeof(vi));
      for (int b = 0; b < BT; ++b) {
        int32_t four;
        std::memcpy(&four, x[b].values.data() + (tap * (g1 - g0) + g - g0) * 4, sizeof four);
        const vi xb = four - vi{};
        for (int j = 0; j < NB; ++j) acc[b][j] = dot4(acc[b][j], wv[j], xb);
      }
    }
  }
  for (int b = 0; b < BT; ++b) {
    const int32_t offset = 128 * x[b].sum;
    for (int j = 0; j < NB; ++j) {
      const vf value = __builtin_convertvector(acc[b][j] - offset, vf);
      store(y[b] + j * V, load(y[b] + j * V) + value * (load(scales + j * V) * x[b].scale));
    }
  }
}

// matvec for int8 weights (W is [taps * round4(K), N] in column panels of row groups) and quantised inputs; rows
// r.k0 (a multiple of 4) to r.k1, as x[b] was quantised.
template <int BT>
void matvec_q(const uint8_t* w, const float* scales, int64_t K, int taps, int64_t N, const Quantized* x,
              float* const* y, Range r) {
  constexpr int NB = BT <= 2 ? 8 : (BT <= 4 ? 4 : 2);
  const int64_t tap_groups = round4(K) / 4, rows = tap_groups * 4 * taps, g0 = r.k0 / 4, g1 = round4(r.k1) / 4;
  float* yy[BT];
  for (int64_t p0 = r.c0 / PANEL * PANEL; p0 < r.c1; p0 += PANEL) {
    const int64_t pw = std::min(PANEL, N - p0), end = std::min(r.c1, p0 + pw) - p0;
    const uint8_t* panel = w + p0 * rows;
    for (int64_t c = std::max(r.c0, p0) - p0; c < end;) {
      for (int b = 0; b < BT; ++b) yy[b] = y[b] + p0 + c - r.c0;
      const int64_t left = (end - c) / V;
      const float* s = scales + p0 + c;
      if (left >= NB) {
        block_q<BT, NB>(panel + c * 4, pw, tap_groups, g0, g1, taps, x, s, yy);
        c += NB * V;
      } else if (left >= 4 && NB > 4) {
        block_q<BT, 4>(panel + c * 4, pw, tap_groups, g0, g1, taps, x, s, yy);
        c += 4 * V;
      } else if (left >= 2 && NB > 2) {
        block_q<BT, 2>(panel + c * 4, pw, tap_groups, g0, g1, taps, x, s, yy);
        c += 2 * V;
      } else {
        block_q<BT, 1>(panel + c * 4, pw, tap_groups, g0, g1, taps, x, s, yy);
        c += V;
      }
    }
  }
}

// y[b] += x[b] @ W over r for any weight type: float and half weights read x, int8 weights the quantised x in q.
template <typename W, int BT>
void product(const W* w, const float* scales, int64_t K, int taps, int64_t N, const float* const* x,
             const Quantized* q, float* const* y, Range r) {
  if constexpr (std::is_same_v<W, uint8_t>) matvec_q<BT>(w, scales, K, taps, N, q, y, r);
  else matvec<W, BT>(w, K, taps, N, x, y, r);
}

// Quantise the inputs x[b * taps + tap], rows [k0, k1), of BT products into q (int8 weights only).
template <typename W, int BT>
void quantize_inputs(const float* const* x, int taps, int64_t k0, int64_t k1, Quantized* q) {
  if constexpr (std::is_same_v<W, uint8_t>)
    for (int b = 0; b < BT; ++b) quantize(x + b * taps, taps, k0, k1, q[b]);
}

// A two-thread barrier for the split step: spins briefly (a step is tens of microseconds), then yields the core,
// so a partner descheduled on a busy machine does not make the other burn its time slice.
class Barrier {
 public:
  void wait() {
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
      if (spins < 500) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  std::atomic<int> arrived_{0}, generation_{0};
};

// Runs work(0), ..., work(parts - 1) at the same time, part 0 on the calling thread, on threads made for this call.
// Not at::parallel_for: that is inline OpenMP code, and this extension is built without OpenMP, where it runs every
// part on the calling thread. Only for a call that finds its Generator's Workers busy (another Python thread).
template <typename F>
void run_on_new_threads(int parts, const F& work) {
  std::vector<std::thread> helpers;
  for (int part = 1; part < parts; ++part) helpers.emplace_back([&work, part] { work(part); });
  work(0);
  for (auto& helper : helpers) helper.join();
}

// Spins (with pause) until done() or for about `budget`; whether done() came true.
template <typename F>
bool spin_until(const F& done, std::chrono::microseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (int spins = 1;; ++spins) {
    if (done()) return true;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
    if (spins % 64 == 0 && std::chrono::steady_clock::now() > deadline) return done();
  }
}

// The helper threads of one Generator, made once and reused by every call: a thread made per call starts on
// the caller's core, and the first steps of each split block ran much slower than the steady state while the
// scheduler moved it (docs/BENCHMARKS.md). Between calls a helper spins for kSpin (the next block of a stream follows within microseconds), then
// sleeps on a condition variable, so an idle service burns no core. The destructor wakes and joins them.
class Workers {
 public:
  static constexpr std::chrono::microseconds kSpin{2000};

  ~Workers() {
    if (forked()) return;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->stop = true;
      state_->epoch.fetch_add(1, std::memory_order_release);
    }
    state_->wake.notify_all();
    for (auto& helper : state_->helpers) helper.join();
  }

  // Makes enough helpers for `parts` parts (run does too; calling it early keeps a thread's start out of a call).
  void reserve(int parts) {
    State& s = *state_;
    while (static_cast<int>(s.helpers.size()) + 1 < parts) {
      const int part = static_cast<int>(s.helpers.size()) + 1;
      const uint64_t seen = s.epoch.load(std::memory_order_relaxed);
      s.helpers.emplace_back([&s, part, seen] { helper(s, part, seen); });
    }
  }

  // Runs work(0), ..., work(parts - 1) at the same time, part 0 on the calling thread; returns when all are done.
  // Not reentrant: the caller holds `busy`.
  void run(int parts, const std::function<void(int)>& work) {
    if (forked()) state_ = std::make_unique<State>();
    reserve(parts);
    State& s = *state_;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.work = &work;
      s.parts = parts;
      s.pending.store(parts - 1, std::memory_order_relaxed);
      s.epoch.fetch_add(1, std::memory_order_release);
    }
    s.wake.notify_all();
    work(0);
    const auto finished = [&s] { return s.pending.load(std::memory_order_acquire) == 0; };
    if (!spin_until(finished, kSpin)) {
      std::unique_lock<std::mutex> lock(s.mutex);
      s.done.wait(lock, finished);
    }
  }

  std::mutex busy;

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable wake, done;
    std::atomic<uint64_t> epoch{0};  // bumped once per call (and to stop)
    std::atomic<int> pending{0};     // helpers still working on this call
    const std::function<void(int)>* work = nullptr;
    int parts = 0;
    bool stop = false;
    pid_t owner = getpid();
    std::vector<std::thread> helpers;
  };

  // Whether this is a forked child, which has none of the parent's threads: then their handles are abandoned
  // (joining or destroying them is undefined) and state_ is null.
  bool forked() {
    if (state_->owner == getpid()) return false;
    state_.release();  // NOLINT(bugprone-unused-return-value): leaked on purpose
    return true;
  }

  static void helper(State& s, int part, uint64_t seen) {
    for (;;) {
      const auto called = [&s, seen] { return s.epoch.load(std::memory_order_acquire) != seen; };
      if (!spin_until(called, kSpin)) {
        std::unique_lock<std::mutex> lock(s.mutex);
        s.wake.wait(lock, called);
      }
      const std::function<void(int)>* work;
      {
        std::lock_guard<std::mutex> lock(s.mutex);  // this call's epoch, work and parts, consistently
        if (s.stop) return;
        seen = s.epoch.load(std::memory_order_relaxed);
        work = part < s.parts ? s.work : nullptr;
      }
      if (work == nullptr) continue;  // this call needs fewer threads
      (*work)(part);
      if (s.pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(s.mutex);  // a caller between its check and its wait gets the notify
        s.done.notify_one();
      }
    }
  }

  std::unique_ptr<State> state_ = std::make_unique<State>();
};

// vocoder.audio.mu_law_encode of one float32 value, bit for bit: the number of `thresholds` (mu_law_thresholds:
// the smallest value of each class 1..mu under it) at or below the value.
inline int64_t mu_law_encode(float wav, const float* thresholds, int64_t mu) {
  return std::upper_bound(thresholds, thresholds + mu, wav) - thresholds;
}

constexpr int64_t kMaxOrder = 32;  // the largest model.lpc_order (vocoder.config.LPC_MAX_ORDER)

// p_t = sum_k a[k] recent[k] (recent newest first: s[t-1], s[t-2], ...) rounded exactly as
// vocoder.features.lpc.predict rounds it: each product to float, zero-padded to a power of two, halves added
// pairwise. The build contracts a * b + c into one FMA (one rounding) elsewhere; not here (and not inlined into
// code that does).
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("fp-contract=off")))
#endif
float linear_prediction(const float* a, const float* recent, int64_t order) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  float terms[kMaxOrder];
  int64_t width = 1;
  while (width < order) width *= 2;
  for (int64_t k = 0; k < width; ++k) terms[k] = k < order ? a[k] * recent[k] : 0.0f;
  while (width > 1) {
    width /= 2;
    for (int64_t k = 0; k < width; ++k) terms[k] = terms[k] + terms[k + width];
  }
  return terms[0];
}

enum Strategy : int64_t { kSample = 0, kArgmax = 1, kMean = 2 };

struct SamplingParams {
  int64_t strategy;
  double temperature;  // unless the step has its own (a voicing-tied schedule: Block::temperatures)
  int64_t top_k;  // <= 0: off
  double top_p;   // >= 1: off
  const double* centres;
  const float* thresholds;  // mu_law_encode's, mu of them
  int64_t mu;
};

// Sampling.choose for one row -> (class id, waveform value), with its float64 scratch allocated once per tile.
struct Chooser {
  std::vector<double> probs, sorted;
  std::vector<int64_t> order;

  explicit Chooser(int64_t classes) : probs(classes), sorted(classes), order(classes) {}

  std::pair<int64_t, float> operator()(const float* logits, int64_t C, double uniform, double temperature,
                                       const SamplingParams& s) {
    if (s.strategy == kArgmax) {
      const int64_t id = std::max_element(logits, logits + C) - logits;
      return {id, static_cast<float>(s.centres[id])};
    }
    for (int64_t i = 0; i < C; ++i) probs[i] = static_cast<double>(logits[i]) / temperature;
    if (s.top_k > 0 && s.top_k < C) {
      std::copy(probs.begin(), probs.end(), sorted.begin());
      std::nth_element(sorted.begin(), sorted.begin() + (s.top_k - 1), sorted.end(), std::greater<double>());
      const double kth = sorted[s.top_k - 1];
      for (auto& value : probs)
        if (value < kth) value = -INFINITY;
    }
    const double top = *std::max_element(probs.begin(), probs.end());
    double total = 0;
    for (auto& value : probs) total += (value = std::exp(value - top));
    for (auto& value : probs) value /= total;
    if (s.top_p < 1) {
      // Keep the smallest prefix (by descending probability) whose mass reaches top_p, as Sampling does.
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return probs[a] > probs[b]; });
      if (tie_at_cut(C, s.top_p)) {
        // Which of several equal classes falls outside the nucleus is up to the sort: take torch's order, as
        // Sampling does (only then, since it costs a tensor op).
        const auto indices = std::get<1>(torch::from_blob(probs.data(), {1, C}, torch::kDouble).sort(-1, true));
        std::copy_n(indices.data_ptr<int64_t>(), C, order.begin());
      }
      double cumulative = 0, kept = 0;
      for (const int64_t i : order) {
        cumulative += probs[i];
        if (cumulative - probs[i] >= s.top_p) probs[i] = 0;
      }
      for (const double value : probs) kept += value;
      for (auto& value : probs) value /= kept;
    }
    if (s.strategy == kMean) {
      double mean = 0;
      for (int64_t i = 0; i < C; ++i) mean += probs[i] * s.centres[i];
      const float value = static_cast<float>(mean);
      return {mu_law_encode(value, s.thresholds, s.mu), value};
    }
    double cumulative = 0;
    for (int64_t i = 0; i < C; ++i) sorted[i] = (cumulative += probs[i]);
    const double target = uniform * sorted[C - 1];
    const int64_t id = std::min<int64_t>(std::upper_bound(sorted.begin(), sorted.end(), target) - sorted.begin(), C - 1);
    return {id, static_cast<float>(s.centres[id])};
  }

  // Whether a run of equal probabilities (in `order`) straddles the top-p cut.
  bool tie_at_cut(int64_t C, double top_p) const {
    double cumulative = 0;
    bool dropped = false;
    for (int64_t r = 0; r < C; ++r) {
      const double p = probs[order[r]];
      cumulative += p;
      const bool drop = cumulative - p >= top_p;
      if (r > 0 && drop != dropped && p == probs[order[r - 1]]) return true;
      dropped = drop;
    }
    return false;
  }
};

// Weights of index i in Generator::weights_.
// kPredictionTable: an LPC model's prediction embedding times the input taps, like kInputTable (empty without LPC);
// kThresholds: mu_law_encode's (mu_law_thresholds).
enum Weight : int { kInputTable, kInputBias, kLocal, kConv, kResidualSkip, kResidualBias, kSkipBias, kHead1, kHead1Bias,
                    kHead2, kHead2Bias, kPredictionTable, kThresholds, kWeightCount };

class Generator {
 public:
  // dims: residual R, half gate H, skip S, classes C, local channels, kernel, input kernel, gate groups, the
  // padded Rp, Hp, Sp, Cp, and the LPC order (0: none) and hop length (samples per frame of LPC coefficients).
  // Gate columns come in `groups` blocks of [filter | gate] Hp / groups channels each.
  // scales: with int8 (uint8) weights, the column scales of the conv, residual-skip and two head matrices, in that
  // order (conv and residual-skip ones [layers, columns]); none otherwise. The local matrix is then fp16.
  Generator(std::vector<torch::Tensor> weights, std::vector<int64_t> dims, std::vector<int64_t> dilations,
            double skip_scale, std::vector<torch::Tensor> scales)
      : weights_(std::move(weights)), dilations_(std::move(dilations)), skip_scale_(static_cast<float>(skip_scale)) {
    TORCH_CHECK(weights_.size() == kWeightCount && dims.size() == 14, "wavenet_step: bad weights or dims");
    R_ = dims[0], H_ = dims[1], S_ = dims[2], C_ = dims[3], local_ = dims[4], kernel_ = dims[5];
    input_kernel_ = dims[6], groups_ = dims[7], Rp_ = dims[8], Hp_ = dims[9], Sp_ = dims[10], Cp_ = dims[11];
    order_ = dims[12], hop_ = dims[13];
    TORCH_CHECK(order_ >= 0 && order_ <= kMaxOrder && hop_ > 0, "wavenet_step: bad LPC order or hop");
    TORCH_CHECK(weights_[kPredictionTable].numel() == (order_ ? input_kernel_ * C_ * Rp_ : 0) &&
                    weights_[kThresholds].numel() == C_ - 1,
                "wavenet_step: bad prediction table or mu-law thresholds");
    int64_t offset = 0;
    for (const int64_t d : dilations_) {
      const int64_t length = (kernel_ - 1) * d + 1;
      offsets_.push_back(offset);
      lengths_.push_back(length);
      offset += length;
    }
    ring_rows_ = offset;
    if (groups_ == 2) workers_.reserve(2);  // the split's partner, started before any timed block
    half_ = weights_[kConv].scalar_type() == at::kHalf;
    int8_ = weights_[kConv].scalar_type() == at::kByte;
    TORCH_CHECK(scales.size() == (int8_ ? 4 : 0), "wavenet_step: int8 weights need 4 scale tensors, others none");
    for (size_t i = 0; i < scales.size(); ++i) {
      TORCH_CHECK(scales[i].is_contiguous() && scales[i].scalar_type() == at::kFloat, "wavenet_step: bad scales");
      scales_[std::array{kConv, kResidualSkip, kHead1, kHead2}[i]] = std::move(scales[i]);
    }
  }

  // Zeroed state rings for `batch` utterances, [batch, ring rows, Rp]. Zeroed here, on one thread: a torch fill this
  // large runs on torch's OpenMP threads, whose idle spin afterwards (milliseconds) takes the core a split needs.
  torch::Tensor new_rings(int64_t batch) const {
    auto rings = torch::empty({batch, ring_rows_, Rp_});
    std::memset(rings.data_ptr<float>(), 0, rings.numel() * sizeof(float));
    return rings;
  }

  // Generate steps [start, stop) into ids / waveform / logits ([B, T...]); rings, id_ring [B, input kernel] (with
  // LPC [B, 2 * input kernel]: the signal's class ids, then the prediction's), previous and, with LPC, history
  // [B, order] (the signal's last samples, sample t at t % order) carry the state between calls. local [B, local
  // channels, n] holds the conditioning of steps [local_start, local_start + n), which must cover [start, stop): the
  // caller upsamples it block by block (read in place: a transposed copy per block would also wake torch's OpenMP
  // threads); coefficients [B, frames, order] an LPC model's predictors of frames local_start / hop onwards, which
  // must cover [start, stop) (computed block by block too); layer_bias [B, layers * 2Hp] (conv bias plus speaker
  // projection), uniforms [B, n] float64 the draws of the same steps as local (drawn block by block too), and
  // temperatures, when given, [B, n] float64 each step's own temperature in place of the sampling's.
  void run(torch::Tensor rings, torch::Tensor id_ring, torch::Tensor previous, c10::optional<torch::Tensor> history,
           torch::Tensor local, int64_t local_start, c10::optional<torch::Tensor> coefficients,
           torch::Tensor layer_bias, torch::Tensor uniforms, c10::optional<torch::Tensor> temperatures,
           int64_t start, int64_t stop, torch::Tensor ids,
           torch::Tensor waveform, c10::optional<torch::Tensor> logits, int64_t strategy, double temperature,
           int64_t top_k, double top_p, torch::Tensor centres, bool split) {
    for (const auto* t : {&rings, &id_ring, &previous, &local, &layer_bias, &uniforms, &ids, &waveform, &centres})
      TORCH_CHECK(t->is_contiguous() && t->device().is_cpu(), "wavenet_step: CPU contiguous tensors expected");
    TORCH_CHECK(local.scalar_type() == at::kFloat && uniforms.scalar_type() == at::kDouble);
    TORCH_CHECK(local.size(1) == local_ && local_start <= start && stop <= local_start + local.size(2) &&
                    stop <= ids.size(1),
                "wavenet_step: bad local features");
    TORCH_CHECK(uniforms.size(0) == ids.size(0) && uniforms.size(1) == local.size(2), "wavenet_step: bad uniforms");
    if (temperatures)
      TORCH_CHECK(temperatures->is_contiguous() && temperatures->device().is_cpu() &&
                      temperatures->scalar_type() == at::kDouble && temperatures->sizes() == uniforms.sizes(),
                  "wavenet_step: temperatures expected like uniforms ([B, n] float64, CPU, contiguous)");
    if (logits) TORCH_CHECK(logits->is_contiguous() && logits->size(2) == C_);
    const int64_t batch = ids.size(0);
    TORCH_CHECK(id_ring.numel() == batch * input_kernel_ * (order_ ? 2 : 1), "wavenet_step: bad id ring");
    TORCH_CHECK(history.has_value() == (order_ > 0) && coefficients.has_value() == (order_ > 0),
                "wavenet_step: an LPC model needs history and coefficients, any other model neither");
    if (order_) {
      for (const auto* t : {&*history, &*coefficients})
        TORCH_CHECK(t->is_contiguous() && t->device().is_cpu() && t->scalar_type() == at::kFloat,
                    "wavenet_step: CPU contiguous float32 LPC tensors expected");
      TORCH_CHECK(history->numel() == batch * order_ && coefficients->dim() == 3 && coefficients->size(0) == batch &&
                      coefficients->size(2) == order_ &&
                      (local_start / hop_ + coefficients->size(1)) * hop_ >= stop,
                  "wavenet_step: bad LPC history or coefficients");
    }
    const Block block{rings.data_ptr<float>(),
                      id_ring.data_ptr<int64_t>(),
                      previous.data_ptr<int64_t>(),
                      order_ ? history->data_ptr<float>() : nullptr,
                      local.data_ptr<float>(),
                      local_start,
                      local.size(2),
                      order_ ? coefficients->data_ptr<float>() : nullptr,
                      order_ ? coefficients->size(1) : 0,
                      local_start / hop_,
                      layer_bias.data_ptr<float>(),
                      uniforms.data_ptr<double>(),
                      temperatures ? temperatures->data_ptr<double>() : nullptr,
                      start,
                      stop,
                      ids.size(1),
                      ids.data_ptr<int64_t>(),
                      waveform.data_ptr<float>(),
                      logits ? logits->data_ptr<float>() : nullptr,
                      SamplingParams{strategy, temperature, top_k, top_p, centres.data_ptr<double>(),
                                     weights_[kThresholds].data_ptr<float>(), C_ - 1}};
    py::gil_scoped_release no_gil;
    if (split) {
      // One utterance, two cores: each thread computes half of every product (gate channels, residual-skip rows,
      // head columns) and they meet at one barrier per layer.
      TORCH_CHECK(batch == 1 && groups_ == 2, "wavenet_step: only one utterance of a two-group model splits");
      TORCH_CHECK(std::max({Rp_, Sp_, Cp_}) <= Shared::kMax, "wavenet_step: too many channels to split");
      const auto shared = std::make_unique<Shared>();
      run_parts(2, [&](int part) { dispatch(1, 0, block, part, 2, shared.get()); });
      return;
    }
    // Utterances are independent: each of torch's threads generates its own slice of the batch for the whole block,
    // so the threads never wait for each other within a step.
    const int64_t threads = std::clamp<int64_t>(at::get_num_threads(), 1, batch), slice = (batch + threads - 1) / threads;
    run_parts(static_cast<int>(threads), [&](int part) {
      for (int64_t b = part * slice, end = std::min(batch, b + slice); b < end;) {
        const int64_t left = end - b;
        const int tile = left >= 8 ? 8 : (left >= 4 ? 4 : (left >= 2 ? 2 : 1));
        dispatch(tile, b, block, 0, 1, nullptr);
        b += tile;
      }
    });
  }

 private:
  struct Block {
    float* rings;
    int64_t* id_ring;
    int64_t* previous;
    float* history;
    const float* local;
    int64_t local_start, local_steps;
    const float* coefficients;
    int64_t frames, first_frame;  // coefficients [B, frames, order] of frames first_frame onwards
    const float* layer_bias;
    const double* uniforms;
    const double* temperatures;  // nullptr: the sampling's one temperature for every step
    int64_t start, stop, total;
    int64_t* ids;
    float* waveform;
    float* logits;
    SamplingParams sampling;
  };

  // What the two threads of a split step exchange: residual partial sums (double-buffered by layer parity, so one
  // thread can write layer l + 1's while the other still reads layer l's), skip partial sums, head activations.
  struct Shared {
    static constexpr int64_t kMax = 4096;
    alignas(64) float residual[2][2][kMax];
    alignas(64) float skip[2][kMax];
    alignas(64) float hidden[kMax];
    alignas(64) float logits[kMax];
    Barrier barrier;
  };

  void dispatch(int tile, int64_t b0, const Block& block, int part, int parts, Shared* shared) const {
    if (int8_) {
      switch (tile) {
        case 8: return steps<uint8_t, 8>(b0, block, part, parts, shared);
        case 4: return steps<uint8_t, 4>(b0, block, part, parts, shared);
        case 2: return steps<uint8_t, 2>(b0, block, part, parts, shared);
        default: return steps<uint8_t, 1>(b0, block, part, parts, shared);
      }
    }
    if (half_) {
      switch (tile) {
        case 8: return steps<at::Half, 8>(b0, block, part, parts, shared);
        case 4: return steps<at::Half, 4>(b0, block, part, parts, shared);
        case 2: return steps<at::Half, 2>(b0, block, part, parts, shared);
        default: return steps<at::Half, 1>(b0, block, part, parts, shared);
      }
    }
    switch (tile) {
      case 8: return steps<float, 8>(b0, block, part, parts, shared);
      case 4: return steps<float, 4>(b0, block, part, parts, shared);
      case 2: return steps<float, 2>(b0, block, part, parts, shared);
      default: return steps<float, 1>(b0, block, part, parts, shared);
    }
  }

  // Runs work(0), ..., work(parts - 1) at the same time on this Generator's threads, or, if another call is using
  // them, on threads made for this call.
  void run_parts(int parts, const std::function<void(int)>& work) {
    if (parts == 1) return work(0);
    std::unique_lock<std::mutex> lock(workers_.busy, std::try_to_lock);
    if (lock.owns_lock()) workers_.run(parts, work);
    else run_on_new_threads(parts, work);
  }

  template <typename W>
  const W* weight(Weight index) const {
    return static_cast<const W*>(weights_[index].data_ptr());
  }

  const float* bias(Weight index) const { return weights_[index].data_ptr<float>(); }

  // Column scales of an int8 matrix from column `offset` on; nullptr for other precisions.
  const float* scale(Weight index, int64_t offset = 0) const {
    return scales_[index].defined() ? scales_[index].data_ptr<float>() + offset : nullptr;
  }

  // Conditioning of time steps [t, t + tt) for BT utterances, columns of gate groups [g0, g1) of every layer;
  // features: room for TT steps' local features.
  template <typename W, int BT, int TT>
  void conditioning(int64_t b0, const Block& blk, int64_t t, int64_t g0, int64_t g1, float* const* out,
                    float* features) const {
    // With int8 weights the local matrix is fp16: its inputs (features of any range, such as F0) lose too much as
    // int8, and it is read once per 8 steps, so its bytes matter little.
    using L = std::conditional_t<std::is_same_v<W, uint8_t>, at::Half, W>;
    const int64_t layers = static_cast<int64_t>(dilations_.size()), width = layers * 2 * Hp_, group = 2 * Hp_ / groups_;
    for (int b = 0; b < BT; ++b) {
      const float* x[TT];
      float* y[TT];
      const float* bias = blk.layer_bias + (b0 + b) * width;
      const float* local = blk.local + (b0 + b) * local_ * blk.local_steps + (t - blk.local_start);
      for (int64_t c = 0; c < local_; ++c)
        for (int i = 0; i < TT; ++i) features[i * local_ + c] = local[c * blk.local_steps + i];
      for (int i = 0; i < TT; ++i) {
        x[i] = features + i * local_;
        y[i] = out[b] + i * width;
        std::copy(bias, bias + width, y[i]);
      }
      if (g0 == 0 && g1 == groups_) {
        matvec<L, TT>(weight<L>(kLocal), local_, 1, width, x, y, Range{0, width, 0, local_});
        continue;
      }
      for (int64_t l = 0; l < layers; ++l) {
        const int64_t c0 = l * 2 * Hp_ + g0 * group, c1 = l * 2 * Hp_ + g1 * group;
        float* yc[TT];
        for (int i = 0; i < TT; ++i) yc[i] = y[i] + c0;
        matvec<L, TT>(weight<L>(kLocal), local_, 1, width, x, yc, Range{c0, c1, 0, local_});
      }
    }
  }

  template <typename W, int BT>
  void steps(int64_t b0, const Block& blk, int part, int parts, Shared* shared) const {
    constexpr int64_t kTimeTile = 8;  // conditioning is computed for this many steps at once
    const int64_t layers = static_cast<int64_t>(dilations_.size()), width = layers * 2 * Hp_;
    const int64_t conv_size = weights_[kConv].size(1), rs_size = weights_[kResidualSkip].size(1);
    const int64_t group = Hp_ / groups_;  // gate channels per group
    const float half = static_cast<float>(std::sqrt(0.5));
    const bool lead = part == 0;  // the thread that writes state and results
    // This thread's share: gate groups [g0, g1), so z channels [g0, g1) * group, residual-skip rows within them;
    // head columns [head0, head1) and class columns [class0, class1).
    const int64_t g0 = groups_ * part / parts, g1 = groups_ * (part + 1) / parts;
    const auto share = [&](int64_t n) {
      return std::pair<int64_t, int64_t>{n / V * part / parts * V, n / V * (part + 1) / parts * V};
    };
    const auto [head0, head1] = share(Sp_);
    const auto [class0, class1] = share(Cp_);
    const Range conv_range{g0 * 2 * group, g1 * 2 * group, 0, R_};
    std::vector<float> scratch(BT * (kTimeTile * width + Rp_ + 3 * Hp_ + groups_ * (Rp_ + Sp_) + 2 * Sp_ + Cp_));
    float *cond[BT], *x[BT], *h[BT], *z[BT], *res[BT], *skip[BT], *a[BT], *h1[BT], *lg[BT];
    float* cursor = scratch.data();
    for (int b = 0; b < BT; ++b) {
      cond[b] = cursor, cursor += kTimeTile * width;
      x[b] = cursor, cursor += Rp_;
      h[b] = cursor, cursor += 2 * Hp_;
      z[b] = cursor, cursor += Hp_;
      res[b] = cursor, cursor += groups_ * Rp_;
      skip[b] = cursor, cursor += groups_ * Sp_;
      a[b] = cursor, cursor += Sp_;
      h1[b] = cursor, cursor += Sp_;
      lg[b] = cursor, cursor += Cp_;
    }
    std::vector<float> features(kTimeTile * local_);
    std::vector<const float*> taps(BT * kernel_);
    // int8 weights: the quantised inputs of BT products, with V bytes of slack.
    std::vector<Quantized> quantized(BT);
    for (auto& q : quantized) q.values.resize(std::max({kernel_ * round4(R_), Hp_, Sp_}) + V);
    std::vector<int64_t> previous(blk.previous + b0, blk.previous + b0 + BT);
    // LPC: every thread keeps its own copy of the signal's last `order` samples (both threads of a split step
    // compute the same prediction, as they sample the same id), and this step's prediction per utterance.
    std::vector<float> history(order_ ? blk.history + b0 * order_ : nullptr,
                               order_ ? blk.history + (b0 + BT) * order_ : nullptr);
    std::array<float, BT> prediction{};
    float recent[kMaxOrder];
    const int64_t id_stride = input_kernel_ * (order_ ? 2 : 1);
    Chooser choose(C_);
    // Residual and skip partial sums of each gate group's rows of the residual-skip product, in the shared block
    // when two threads split the step, else in this thread's scratch: either way the groups' partial sums are
    // added in the same order, so both modes give bitwise the same samples.
    const auto residual_part = [&](int b, int64_t g, int64_t parity) {
      return parts > 1 ? shared->residual[parity][g] : res[b] + g * Rp_;
    };
    const auto skip_part = [&](int b, int64_t g) { return parts > 1 ? shared->skip[g] : skip[b] + g * Sp_; };

    for (int64_t t = blk.start; t < blk.stop; ++t) {
      const int64_t tile_step = (t - blk.start) % kTimeTile;
      if (tile_step == 0) {
        const int64_t left = blk.stop - t;
        float* out[BT];
        for (int b = 0; b < BT; ++b) out[b] = cond[b];
        if (left >= 8) conditioning<W, BT, 8>(b0, blk, t, g0, g1, out, features.data());
        else for (int64_t i = 0; i < left; ++i) {
          for (int b = 0; b < BT; ++b) out[b] = cond[b] + i * width;
          conditioning<W, BT, 1>(b0, blk, t + i, g0, g1, out, features.data());
        }
      }
      // Input conv: a table lookup per tap (embedding times tap weights), the newest tap is the previous sample;
      // an LPC model adds the lookup of each tap's prediction class (the newest: this step's p_t from the signal's
      // last `order` samples and the coefficients of sample t's frame).
      for (int b = 0; b < BT; ++b) {
        const int64_t row = b0 + b;
        int64_t* ring = blk.id_ring + row * id_stride;
        int64_t* prediction_ring = ring + input_kernel_;
        int64_t prediction_id = 0;
        if (order_) {
          const float* past = history.data() + b * order_;
          for (int64_t k = 0, slot = (t + order_ - 1) % order_; k < order_; ++k, slot = slot ? slot - 1 : order_ - 1)
            recent[k] = past[slot];  // s[t - 1 - k], zero before the first sample
          prediction[b] = linear_prediction(blk.coefficients + (row * blk.frames + t / hop_ - blk.first_frame) * order_, recent, order_);
          prediction_id = mu_law_encode(prediction[b], blk.sampling.thresholds, blk.sampling.mu);
        }
        std::copy(bias(kInputBias), bias(kInputBias) + Rp_, x[b]);
        for (int64_t j = 0; j < input_kernel_; ++j) {
          const int64_t when = t - (input_kernel_ - 1 - j);
          if (when < 0) continue;  // before the first sample: zero padding
          const bool newest = j == input_kernel_ - 1;
          const int64_t id = newest ? previous[b] : ring[when % input_kernel_];
          const float* e = bias(kInputTable) + (j * C_ + id) * Rp_;
          for (int64_t i = 0; i < Rp_; i += V) store(x[b] + i, load(x[b] + i) + load(e + i));
          if (!order_) continue;
          const int64_t predicted = newest ? prediction_id : prediction_ring[when % input_kernel_];
          const float* p = bias(kPredictionTable) + (j * C_ + predicted) * Rp_;
          for (int64_t i = 0; i < Rp_; i += V) store(x[b] + i, load(x[b] + i) + load(p + i));
        }
        if (lead) ring[t % input_kernel_] = previous[b];
        if (lead && order_) prediction_ring[t % input_kernel_] = prediction_id;
        for (int64_t g = g0; g < g1; ++g) {
          if (g == 0) std::copy(bias(kSkipBias), bias(kSkipBias) + Sp_, skip_part(b, g));
          else std::fill(skip_part(b, g), skip_part(b, g) + Sp_, 0.0f);
        }
      }
      for (int64_t l = 0; l < layers; ++l) {
        const int64_t length = lengths_[l], d = dilations_[l], parity = l & 1;
        for (int b = 0; b < BT; ++b) {
          float* ring = blk.rings + ((b0 + b) * ring_rows_ + offsets_[l]) * Rp_;
          for (int64_t j = 0; j + 1 < kernel_; ++j) {
            int64_t position = (t - (kernel_ - 1 - j) * d) % length;
            taps[b * kernel_ + j] = ring + (position < 0 ? position + length : position) * Rp_;
          }
          taps[b * kernel_ + kernel_ - 1] = x[b];
          if (lead) std::copy(x[b], x[b] + Rp_, ring + (t % length) * Rp_);
          const float* c = cond[b] + tile_step * width + l * 2 * Hp_;
          std::copy(c + conv_range.c0, c + conv_range.c1, h[b] + conv_range.c0);
        }
        float* hc[BT];
        for (int b = 0; b < BT; ++b) hc[b] = h[b] + conv_range.c0;
        const int taps_count = static_cast<int>(kernel_);
        quantize_inputs<W, BT>(taps.data(), taps_count, 0, R_, quantized.data());
        product<W, BT>(weight<W>(kConv) + l * conv_size, scale(kConv, l * 2 * Hp_), R_, taps_count, 2 * Hp_,
                       taps.data(), quantized.data(), hc, conv_range);
        for (int b = 0; b < BT; ++b)
          for (int64_t g = g0; g < g1; ++g)
            for (int64_t i = 0; i < group; i += V)
              store(z[b] + g * group + i, gate(load(h[b] + 2 * g * group + i), load(h[b] + (2 * g + 1) * group + i)));
        const W* rs = weight<W>(kResidualSkip) + l * rs_size;
        const W* skip_weights = rs + (int8_ ? round4(H_) : H_) * Rp_;
        const float *residual_scale = scale(kResidualSkip, l * (Rp_ + Sp_)),
                    *skip_scale = scale(kResidualSkip, l * (Rp_ + Sp_) + Rp_);
        for (int64_t g = g0; g < g1; ++g) {
          float *rp[BT], *sp[BT];
          for (int b = 0; b < BT; ++b) {
            rp[b] = residual_part(b, g, parity);
            sp[b] = skip_part(b, g);
            if (g == 0) std::copy(bias(kResidualBias) + l * Rp_, bias(kResidualBias) + (l + 1) * Rp_, rp[b]);
            else std::fill(rp[b], rp[b] + Rp_, 0.0f);
          }
          const int64_t k0 = std::min(g * group, H_), k1 = std::min((g + 1) * group, H_);
          quantize_inputs<W, BT>(z, 1, k0, k1, quantized.data());
          product<W, BT>(rs, residual_scale, H_, 1, Rp_, z, quantized.data(), rp, Range{0, Rp_, k0, k1});
          product<W, BT>(skip_weights, skip_scale, H_, 1, Sp_, z, quantized.data(), sp, Range{0, Sp_, k0, k1});
        }
        if (parts > 1) shared->barrier.wait();
        for (int b = 0; b < BT; ++b)
          for (int64_t i = 0; i < Rp_; i += V) {
            vf sum = load(residual_part(b, 0, parity) + i);
            for (int64_t g = 1; g < groups_; ++g) sum += load(residual_part(b, g, parity) + i);
            store(x[b] + i, (load(x[b] + i) + sum) * half);
          }
      }
      // Head: relu(skip * scale) -> 1x1 -> relu -> 1x1 (each thread its share of the columns).
      float *hp[BT], *lp[BT];
      for (int b = 0; b < BT; ++b) {
        for (int64_t i = 0; i < Sp_; i += V) {
          vf v = load(skip_part(b, 0) + i);
          for (int64_t g = 1; g < groups_; ++g) v += load(skip_part(b, g) + i);
          v *= skip_scale_;
          store(a[b] + i, v > 0.0f ? v : splat(0.0f));
        }
        hp[b] = (parts > 1 ? shared->hidden : h1[b]) + head0;
        lp[b] = (parts > 1 ? shared->logits : lg[b]) + class0;
        std::copy(bias(kHead1Bias) + head0, bias(kHead1Bias) + head1, hp[b]);
        std::copy(bias(kHead2Bias) + class0, bias(kHead2Bias) + class1, lp[b]);
      }
      quantize_inputs<W, BT>(a, 1, 0, S_, quantized.data());
      product<W, BT>(weight<W>(kHead1), scale(kHead1), S_, 1, Sp_, a, quantized.data(), hp, Range{head0, head1, 0, S_});
      for (int b = 0; b < BT; ++b)
        for (int64_t i = 0; i < head1 - head0; i += V) {
          const vf v = load(hp[b] + i);
          store(hp[b] + i, v > 0.0f ? v : splat(0.0f));
        }
      if (parts > 1) shared->barrier.wait();
      const float* hidden[BT];
      for (int b = 0; b < BT; ++b) hidden[b] = parts > 1 ? shared->hidden : h1[b];
      quantize_inputs<W, BT>(hidden, 1, 0, S_, quantized.data());
      product<W, BT>(weight<W>(kHead2), scale(kHead2), S_, 1, Cp_, hidden, quantized.data(), lp,
                     Range{class0, class1, 0, S_});
      if (parts > 1) shared->barrier.wait();
      for (int b = 0; b < BT; ++b) {
        // Every thread samples (the same id, from the same logits and uniform): it needs it for the next step.
        const float* row_logits = parts > 1 ? shared->logits : lg[b];
        const int64_t row = b0 + b, at = row * blk.total + t;
        const int64_t draw = row * blk.local_steps + (t - blk.local_start);
        const double temperature = blk.temperatures ? blk.temperatures[draw] : blk.sampling.temperature;
        auto [id, value] = choose(row_logits, C_, blk.uniforms[draw], temperature, blk.sampling);
        if (order_) {  // the excitation drawn; the signal (prediction plus it, clipped) kept and fed back
          value = std::min(1.0f, std::max(-1.0f, prediction[b] + value));
          id = mu_law_encode(value, blk.sampling.thresholds, blk.sampling.mu);
          history[b * order_ + t % order_] = value;
        }
        previous[b] = id;
        if (!lead) continue;
        if (order_) blk.history[row * order_ + t % order_] = value;
        blk.ids[at] = id;
        blk.waveform[at] = value;
        blk.previous[row] = id;
        if (blk.logits != nullptr) std::copy(row_logits, row_logits + C_, blk.logits + at * C_);
      }
    }
  }

  std::vector<torch::Tensor> weights_;
  std::array<torch::Tensor, kWeightCount> scales_;  // int8 column scales, by weight index (others undefined)
  std::vector<int64_t> dilations_, offsets_, lengths_;
  float skip_scale_;
  int64_t R_, H_, S_, C_, local_, kernel_, input_kernel_, groups_, Rp_, Hp_, Sp_, Cp_, order_, hop_, ring_rows_;
  bool half_, int8_;
  Workers workers_;
};

// tanh(f) * sigmoid(g) elementwise with the kernel's approximation (for testing its error).
torch::Tensor gate_activation(torch::Tensor f, torch::Tensor g) {
  TORCH_CHECK(f.sizes() == g.sizes() && f.scalar_type() == at::kFloat && g.scalar_type() == at::kFloat);
  const int64_t n = f.numel(), padded = (n + V - 1) / V * V;
  std::vector<float> fp(padded), gp(padded), out(padded);
  std::copy_n(f.contiguous().data_ptr<float>(), n, fp.begin());
  std::copy_n(g.contiguous().data_ptr<float>(), n, gp.begin());
  for (int64_t i = 0; i < padded; i += V) store(out.data() + i, gate(load(fp.data() + i), load(gp.data() + i)));
  return torch::from_blob(out.data(), f.sizes(), torch::kFloat).clone();
}

// The kernel's p_t for each row of coefficients and history [N, order] (newest first), for testing its rounding.
torch::Tensor prediction_rows(torch::Tensor coefficients, torch::Tensor history) {
  TORCH_CHECK(coefficients.sizes() == history.sizes() && coefficients.dim() == 2 &&
              coefficients.size(1) <= kMaxOrder && coefficients.scalar_type() == at::kFloat &&
              history.scalar_type() == at::kFloat);
  const auto a = coefficients.contiguous(), s = history.contiguous();
  const int64_t rows = a.size(0), order = a.size(1);
  auto out = torch::empty({rows});
  for (int64_t r = 0; r < rows; ++r)
    out.data_ptr<float>()[r] = linear_prediction(a.data_ptr<float>() + r * order, s.data_ptr<float>() + r * order, order);
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  py::class_<Generator>(m, "Generator")
      .def(py::init<std::vector<torch::Tensor>, std::vector<int64_t>, std::vector<int64_t>, double,
                    std::vector<torch::Tensor>>())
      .def("new_rings", &Generator::new_rings)
      .def("run", &Generator::run);
  m.def("gate_activation", &gate_activation);
  m.def("linear_prediction", &prediction_rows);
#if defined(__x86_64__) && defined(__AVX512VNNI__)
  m.attr("int8_vnni") = true;
#else
  m.attr("int8_vnni") = false;  // int8 weights still work, through a slow portable product
#endif
}
