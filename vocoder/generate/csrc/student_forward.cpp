// Fused Parallel WaveNet student forward for CPU: noise and sample-rate conditioning in, waveform out.
//
// Why C++: the student's layers are narrow (16-32 channels), so in PyTorch every layer streams its whole-utterance
// activations through memory several times (conv, conditioning, gate, residual/skip, each a separate op); at 160k
// samples that is memory-bound. Here time is processed in tiles of TILE samples that stay in L1/L2: for one tile,
// every flow and every layer runs fused (dilated conv + conditioning projection + gate, then residual + skip), and
// only the flow's input and output samples leave the tile.
//
// Layout: activations are [channels][time] rows, vectorised over time (V = 16 samples per AVX-512 register), so any
// channel count works without padding and every sample is computed in its own lane by the same operations: the
// result does not depend on where a tile or a thread's part starts.
//
// Causality: each layer keeps its last (kernel - 1) * dilation input columns (each flow input its last `kernel`
// samples) in front of the tile as history, carried from tile to tile. Threads split an utterance into parts; a part
// starting at s starts computing at s - halo (halo = the student's receptive field minus one, from zero history, as
// the utterance start is), so its outputs from s on are exactly the sequential ones.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "vector_math.h"

namespace {

constexpr int TB = 4;                // time vectors per register block
constexpr int64_t BLOCK = TB * V;    // samples per register block
constexpr int64_t TILE = 4 * BLOCK;  // samples per tile: a layer's rows of one tile stay in L1
constexpr int64_t MIN_PART = 8192;   // an utterance is not split into parts shorter than this (halo overhead)
constexpr int64_t PARTS_PER_THREAD = 8;  // parts are handed out as threads finish, so a descheduled one holds up little

// acc[o][b] = bias[o] + sum_k w[o][k] * in[k][col + b * V ...]: OB output rows by TB time vectors, each input
// vector loaded once per OB rows and each weight broadcast once per TB vectors.
template <int OB>
inline void product(const float* const* w, const float* bias, int64_t K, const float* const* in, int64_t col,
                    vf (&acc)[OB][TB]) {
  for (int o = 0; o < OB; ++o)
    for (int b = 0; b < TB; ++b) acc[o][b] = splat(bias[o]);
  for (int64_t k = 0; k < K; ++k) {
    vf x[TB];
    for (int b = 0; b < TB; ++b) x[b] = load(in[k] + col + b * V);
    for (int o = 0; o < OB; ++o) {
      const vf wk = splat(w[o][k]);
      for (int b = 0; b < TB; ++b) acc[o][b] += wk * x[b];
    }
  }
}

struct Layer {
  const float* gate_weight;      // [2H][kernel * R + C]: taps oldest first, then the conditioning channels
  const float* residual_weight;  // [R + S][H]
  const float* residual_bias;    // [R + S]
  int64_t dilation, history;     // history = (kernel - 1) * dilation input columns kept before the tile
};

struct Flow {
  const float* input_weight;  // [R][kernel]
  const float* input_bias;    // [R]
  const float* head_weight;   // [2][S]: mu, log s
  const float* head_bias;     // [2]
  float skip_scale;
  std::vector<Layer> layers;
};

// One thread's working set for one part of one utterance.
struct Buffers {
  std::vector<std::vector<float>> x;      // flows + 1 rows of kernel history + TILE: each flow's input, then output
  std::vector<std::vector<float>> input;  // per layer (all flows): [R][history + TILE] layer input rows
  std::vector<float> local, skip, z;      // [C][TILE], [S][TILE], [H][BLOCK]
};

class Student {
 public:
  // weights per flow: input weight, input bias, head weight, head bias, then per layer gate weight, residual-skip
  // weight and bias. dims: residual R, half gate H, skip S, conditioning C, kernel.
  Student(std::vector<torch::Tensor> weights, std::vector<int64_t> dims, std::vector<int64_t> flow_layers,
          std::vector<int64_t> dilations, std::vector<double> skip_scales, double log_scale_min)
      : weights_(std::move(weights)), log_scale_min_(static_cast<float>(log_scale_min)) {
    TORCH_CHECK(dims.size() == 5 && skip_scales.size() == flow_layers.size(), "student_forward: bad dims");
    R_ = dims[0], H_ = dims[1], S_ = dims[2], C_ = dims[3], kernel_ = dims[4];
    K_ = kernel_ * R_ + C_;
    for (const auto& w : weights_)
      TORCH_CHECK(w.is_contiguous() && w.scalar_type() == at::kFloat, "student_forward: float32 weights expected");
    size_t index = 0, layer = 0;
    halo_ = 0;
    for (size_t f = 0; f < flow_layers.size(); ++f) {
      Flow flow{ptr(index), ptr(index + 1), ptr(index + 2), ptr(index + 3), static_cast<float>(skip_scales[f]), {}};
      index += 4;
      halo_ += kernel_;
      for (int64_t l = 0; l < flow_layers[f]; ++l, ++layer, index += 3) {
        const int64_t d = dilations.at(layer);
        flow.layers.push_back(Layer{ptr(index), ptr(index + 1), ptr(index + 2), d, (kernel_ - 1) * d});
        halo_ += (kernel_ - 1) * d;
      }
      flows_.push_back(std::move(flow));
    }
    TORCH_CHECK(index == weights_.size() && layer == dilations.size(), "student_forward: bad weights");
    layers_ = static_cast<int64_t>(layer);
  }

  // out [B, T] = the clamped waveform of noise z [B, T] under conditioning local [B, C, T]; gate_bias [B, layers, 2H]
  // is each layer's conv bias plus its speaker projection. parts: how many parts each utterance is split into
  // (0: one with one torch thread, else about PARTS_PER_THREAD per thread, none shorter than MIN_PART).
  void run(torch::Tensor z, torch::Tensor local, torch::Tensor gate_bias, torch::Tensor out, int64_t parts) const {
    for (const auto* t : {&z, &local, &gate_bias, &out})
      TORCH_CHECK(t->is_contiguous() && t->device().is_cpu() && t->scalar_type() == at::kFloat,
                  "student_forward: contiguous float32 CPU tensors expected");
    const int64_t batch = z.size(0), steps = z.size(1);
    TORCH_CHECK(local.size(0) == batch && local.size(1) == C_ && local.size(2) == steps, "student_forward: local");
    TORCH_CHECK(gate_bias.size(0) == batch && gate_bias.size(1) == layers_ && gate_bias.size(2) == 2 * H_,
                "student_forward: gate_bias");
    TORCH_CHECK(out.size(0) == batch && out.size(1) == steps, "student_forward: out");
    const int64_t threads = at::get_num_threads();
    if (parts <= 0) {
      const int64_t wanted = threads == 1 ? 1 : (PARTS_PER_THREAD * threads + batch - 1) / batch;
      parts = std::max<int64_t>(1, std::min(wanted, steps / MIN_PART));
    }
    const float* zp = z.data_ptr<float>();
    const float* lp = local.data_ptr<float>();
    const float* bp = gate_bias.data_ptr<float>();
    float* op = out.data_ptr<float>();
    py::gil_scoped_release no_gil;
    // One worker per torch thread, each taking the next (utterance, part) item until none is left: on a shared
    // machine a worker that gets less of a core computes fewer parts. Plain threads: at::parallel_for would run
    // serially here, since the extension is not built with OpenMP.
    const int64_t items = batch * parts, workers = std::min(threads, items);
    std::atomic<int64_t> next{0};
    const auto work = [&] {
      Buffers buffers = allocate();
      for (int64_t i = next++; i < items; i = next++) {
        const int64_t b = i / parts, part = i % parts;
        const int64_t start = steps * part / parts, stop = steps * (part + 1) / parts;
        run_part(zp + b * steps, lp + b * C_ * steps, bp + b * layers_ * 2 * H_, op + b * steps, steps, start, stop,
                 buffers);
      }
    };
    std::vector<std::thread> helpers;
    for (int64_t worker = 1; worker < workers; ++worker) helpers.emplace_back(work);
    work();
    for (auto& helper : helpers) helper.join();
  }

 private:
  const float* ptr(size_t index) const { return weights_.at(index).data_ptr<float>(); }

  Buffers allocate() const {
    Buffers buffers;
    buffers.x.assign(flows_.size() + 1, std::vector<float>(kernel_ + TILE));
    for (const auto& flow : flows_)
      for (const auto& layer : flow.layers) buffers.input.emplace_back(R_ * (layer.history + TILE));
    buffers.local.resize(C_ * TILE);
    buffers.skip.resize(S_ * TILE);
    buffers.z.resize(H_ * BLOCK);
    return buffers;
  }

  // Outputs [start, stop) of one utterance (z, local, gate bias and out already at its row), computed from
  // max(0, start - halo) on with zero history.
  void run_part(const float* z, const float* local, const float* gate_bias, float* out, int64_t steps, int64_t start,
                int64_t stop, Buffers& buf) const {
    const int64_t first = std::max<int64_t>(0, start - halo_);
    for (auto& x : buf.x) std::fill(x.begin(), x.end(), 0.0f);
    for (auto& input : buf.input) std::fill(input.begin(), input.end(), 0.0f);
    for (int64_t t0 = first; t0 < stop; t0 += TILE) {
      const int64_t n = std::min(TILE, stop - t0);
      if (t0 != first) carry_history(buf);
      // The tile's noise and conditioning, zero beyond the part's end (those lanes are computed and dropped).
      float* x0 = buf.x[0].data() + kernel_;
      std::copy(z + t0, z + t0 + n, x0);
      std::fill(x0 + n, x0 + TILE, 0.0f);
      for (int64_t c = 0; c < C_; ++c) {
        float* row = buf.local.data() + c * TILE;
        std::copy(local + c * steps + t0, local + c * steps + t0 + n, row);
        std::fill(row + n, row + TILE, 0.0f);
      }
      int64_t layer = 0;
      for (size_t f = 0; f < flows_.size(); ++f) {
        run_flow(flows_[f], layer, gate_bias, buf, buf.x[f].data(), buf.x[f + 1].data() + kernel_);
        layer += static_cast<int64_t>(flows_[f].layers.size());
      }
      const float* x = buf.x.back().data() + kernel_;
      for (int64_t t = std::max(t0, start); t < t0 + n; ++t) out[t] = std::min(1.0f, std::max(-1.0f, x[t - t0]));
    }
  }

  // The last columns of each row become the history in front of the next tile.
  void carry_history(Buffers& buf) const {
    for (auto& x : buf.x) std::memmove(x.data(), x.data() + TILE, kernel_ * sizeof(float));
    size_t index = 0;
    for (const auto& flow : flows_)
      for (const auto& layer : flow.layers) {
        const int64_t stride = layer.history + TILE;
        float* rows = buf.input[index++].data();
        for (int64_t r = 0; r < R_; ++r)
          std::memmove(rows + r * stride, rows + r * stride + TILE, layer.history * sizeof(float));
      }
  }

  // One flow over one tile: input [kernel history + TILE] samples of the flow's input, output [TILE] samples.
  void run_flow(const Flow& flow, int64_t first_layer, const float* gate_bias, Buffers& buf, const float* input,
                float* output) const {
    // Input conv over the input shifted right by one: taps j = 0..kernel-1 read times t - kernel + j.
    {
      const Layer& layer = flow.layers.front();
      float* rows = buf.input[first_layer].data();
      for (int64_t r = 0; r < R_; ++r) {
        float* row = rows + r * (layer.history + TILE) + layer.history;
        for (int64_t t = 0; t < TILE; t += V) {
          vf acc = splat(flow.input_bias[r]);
          for (int64_t j = 0; j < kernel_; ++j) acc += splat(flow.input_weight[r * kernel_ + j]) * load(input + t + j);
          store(row + t, acc);
        }
      }
    }
    std::fill(buf.skip.begin(), buf.skip.end(), 0.0f);
    std::vector<const float*> rows(K_), residual_in(R_), z_rows(H_);
    std::vector<float*> residual_out(R_), skip_rows(S_);
    for (int64_t h = 0; h < H_; ++h) z_rows[h] = buf.z.data() + h * BLOCK;
    for (int64_t s = 0; s < S_; ++s) skip_rows[s] = buf.skip.data() + s * TILE;
    const int64_t count = static_cast<int64_t>(flow.layers.size());
    for (int64_t l = 0; l < count; ++l) {
      const Layer& layer = flow.layers[l];
      const int64_t stride = layer.history + TILE;
      const float* in = buf.input[first_layer + l].data();
      for (int64_t j = 0; j < kernel_; ++j)
        for (int64_t c = 0; c < R_; ++c)
          rows[j * R_ + c] = in + c * stride + layer.history - (kernel_ - 1 - j) * layer.dilation;
      for (int64_t c = 0; c < C_; ++c) rows[kernel_ * R_ + c] = buf.local.data() + c * TILE;
      for (int64_t c = 0; c < R_; ++c) residual_in[c] = rows[(kernel_ - 1) * R_ + c];
      const bool last = l + 1 == count;
      if (!last) {
        const Layer& next = flow.layers[l + 1];
        for (int64_t c = 0; c < R_; ++c)
          residual_out[c] = buf.input[first_layer + l + 1].data() + c * (next.history + TILE) + next.history;
      }
      const float* bias = gate_bias + (first_layer + l) * 2 * H_;
      for (int64_t col = 0; col < TILE; col += BLOCK) {
        gated(layer, bias, rows.data(), col, buf.z.data());
        residual_skip(layer, z_rows.data(), col, last ? nullptr : residual_in.data(), residual_out.data(),
                      skip_rows.data());
      }
    }
    head(flow, input + kernel_, output, buf);
  }

  // z[h][0 : BLOCK] = tanh(filter h) * sigmoid(gate h) of the conv + conditioning product at columns col...
  void gated(const Layer& layer, const float* bias, const float* const* rows, int64_t col, float* z) const {
    int64_t h = 0;
    for (; h + 2 <= H_; h += 2) gated_rows<2>(layer, bias, rows, col, z, h);
    for (; h < H_; ++h) gated_rows<1>(layer, bias, rows, col, z, h);
  }

  template <int P>
  void gated_rows(const Layer& layer, const float* bias, const float* const* rows, int64_t col, float* z,
                  int64_t h) const {
    const float* w[2 * P];
    float row_bias[2 * P];
    for (int p = 0; p < P; ++p) {
      w[p] = layer.gate_weight + (h + p) * K_, w[P + p] = layer.gate_weight + (H_ + h + p) * K_;
      row_bias[p] = bias[h + p], row_bias[P + p] = bias[H_ + h + p];
    }
    vf acc[2 * P][TB];
    product<2 * P>(w, row_bias, K_, rows, col, acc);
    for (int p = 0; p < P; ++p)
      for (int b = 0; b < TB; ++b) store(z + (h + p) * BLOCK + b * V, gate(acc[p][b], acc[P + p][b]));
  }

  // Residual rows: out = (in + residual) * sqrt(1/2) (skipped after a flow's last layer); skip rows: skip += skip.
  void residual_skip(const Layer& layer, const float* const* z, int64_t col, const float* const* in,
                     float* const* out, float* const* skip) const {
    const int64_t first = in == nullptr ? R_ : 0;
    int64_t o = first;
    for (; o + 4 <= R_ + S_; o += 4) residual_skip_rows<4>(layer, z, col, in, out, skip, o);
    for (; o < R_ + S_; ++o) residual_skip_rows<1>(layer, z, col, in, out, skip, o);
  }

  template <int OB>
  void residual_skip_rows(const Layer& layer, const float* const* z, int64_t col, const float* const* in,
                          float* const* out, float* const* skip, int64_t o) const {
    const float* w[OB];
    for (int i = 0; i < OB; ++i) w[i] = layer.residual_weight + (o + i) * H_;
    vf acc[OB][TB];
    product<OB>(w, layer.residual_bias + o, H_, z, 0, acc);
    const vf half = splat(static_cast<float>(std::sqrt(0.5)));
    for (int i = 0; i < OB; ++i) {
      const int64_t row = o + i;
      for (int b = 0; b < TB; ++b) {
        const int64_t at = col + b * V;
        if (row < R_) store(out[row] + at, (load(in[row] + at) + acc[i][b]) * half);
        else store(skip[row - R_] + at, load(skip[row - R_] + at) + acc[i][b]);
      }
    }
  }

  // mu, log s = head(relu(skip * scale)); the flow's output x * exp(max(log s, min)) + mu.
  void head(const Flow& flow, const float* input, float* output, Buffers& buf) const {
    for (auto& v : buf.skip) v = std::max(0.0f, v * flow.skip_scale);
    std::vector<const float*> rows(S_);
    for (int64_t s = 0; s < S_; ++s) rows[s] = buf.skip.data() + s * TILE;
    const float* w[2] = {flow.head_weight, flow.head_weight + S_};
    for (int64_t col = 0; col < TILE; col += BLOCK) {
      vf acc[2][TB];
      product<2>(w, flow.head_bias, S_, rows.data(), col, acc);
      for (int b = 0; b < TB; ++b) {
        const vf log_s = acc[1][b] < log_scale_min_ ? splat(log_scale_min_) : acc[1][b];
        const int64_t at = col + b * V;
        store(output + at, load(input + at) * vexp(log_s) + acc[0][b]);
      }
    }
  }

  std::vector<torch::Tensor> weights_;
  std::vector<Flow> flows_;
  float log_scale_min_;
  int64_t R_, H_, S_, C_, kernel_, K_, layers_, halo_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  py::class_<Student>(m, "Student")
      .def(py::init<std::vector<torch::Tensor>, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>,
                    std::vector<double>, double>())
      .def("run", &Student::run);
}
