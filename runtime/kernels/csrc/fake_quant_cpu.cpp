// qdqforge compiled CPU fake-quant kernels (runtime/kernels/cpu_ext.py builds and loads them).
//
// Three ops in namespace qdqforge_cpu, each one torch::autograd::Function so that a QAT step pays
// one dispatcher call per quantizer and no Python autograd.Function; the math, bit for bit where
// the docstrings say so, is that of runtime/kernels/ulq.py and ulq_act_cpu.py:
//
//   ulq_act(x, clip_max, clip_min?, num_bits)    ULQ activation, AMCT's clip gradients
//   arq_retrain(w, num_bits, channel_wise)        symmetric min-max weight, STE
//   ulq_weight(w, scale, num_bits, grad_factor)   learnable-scale weight, LSQ gradient
//
// w is channel-major: its rows w[c] (axis 0) are the output channels; per tensor (channel_wise
// false, or one scale) the whole tensor is one row. The output has w's shape. Forward values equal the Python paths
// exactly (IEEE division, round half to even, no FMA: built with -ffp-contract=off); gradient sums
// are accumulated in double per fixed-size chunk and combined in chunk order, so they do not
// depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <limits>
#include <utility>
#include <cmath>
#include <vector>

namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr int64_t kChunk = 16384;
constexpr double kFltEpsilon = 1.1920928955078125e-07;

int64_t qmin_of(int64_t bits) { return -(int64_t(1) << (bits - 1)); }
int64_t qmax_of(int64_t bits) { return (int64_t(1) << (bits - 1)) - 1; }

// ---- ULQ activation ----------------------------------------------------------------------------

// The grid of ulq_act_cpu.scalar_grid: s and o in the clips' dtype C, thresholds cast to T.
template <typename T>
struct ActGrid {
  T s, lo, hi, t_lo, t_hi;  // t_lo/t_hi: clamp bounds of round(x/s), qmin - o and qmax - o
};

template <typename C, typename T>
ActGrid<T> act_grid(double clip_max, double clip_min, int64_t bits) {
  const C s = (C(clip_max) - C(clip_min)) / C((int64_t(1) << bits) - 1);
  const C o = std::nearbyint(C(qmin_of(bits)) - C(clip_min) / s);
  const T lo = T(s * (C(qmin_of(bits)) - o)), hi = T(s * (C(qmax_of(bits)) - o));
  return {T(s), lo, hi, T(double(qmin_of(bits)) - double(o)), T(double(qmax_of(bits)) - double(o))};
}

template <typename T>
void act_forward(const T* x, T* y, int64_t n, const ActGrid<T>& g) {
  at::parallel_for(0, n, kChunk, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T t = std::nearbyint(x[i] / g.s);
      t = t < g.t_lo ? g.t_lo : (t > g.t_hi ? g.t_hi : t);
      y[i] = t * g.s;
    }
  });
}

// One block of at most kBlock elements (it stays in L1): an elementwise pass writes grad_x and
// the per-element terms, then kLanes independent lanes of T sum {g e inside, g (x > hi), g,
// g inside} into sums. Both loops are branch-free so the compiler vectorizes them (the clamp by
// comparisons lets NaN through, as torch.clamp does).
constexpr int kLanes = 16;
constexpr int64_t kBlock = 512;

template <typename T>
void act_backward_block(const T* __restrict x, const T* __restrict grad, T* __restrict grad_x,
                        int64_t n, const ActGrid<T>& g, double* sums) {
  T inside[kBlock], up[kBlock];
  const T lo = g.lo, hi = g.hi, s = g.s;
  for (int64_t i = 0; i < n; ++i) {
    const T xv = x[i], gv = grad[i];
    const bool below = xv < lo, above = xv > hi;
    const T gx = (below | above) ? T(0) : gv;
    grad_x[i] = gx;
    const T low_clamped = below ? lo : xv;
    const T v = (above ? hi : low_clamped) / s;
    inside[i] = gx * (std::nearbyint(v) - v);
    up[i] = above ? gv : T(0);
  }
  T acc[4][kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      acc[0][l] += inside[i + l];
      acc[1][l] += up[i + l];
      acc[2][l] += grad[i + l];
      acc[3][l] += grad_x[i + l];
    }
  }
  for (; i < n; ++i) {  // the tail, in lane 0
    acc[0][0] += inside[i];
    acc[1][0] += up[i];
    acc[2][0] += grad[i];
    acc[3][0] += grad_x[i];
  }
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < kLanes; ++l) sums[k] += acc[k][l];
}

// Per chunk of kChunk elements (blocks summed in double), chunks combined in order: the sums do
// not depend on the thread count. grad_x is always written (a scratch buffer if unwanted).
template <typename T>
std::array<double, 4> act_backward(const T* x, const T* grad, T* grad_x, int64_t n,
                                   const ActGrid<T>& g) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::array<double, 4>> part(chunks, {0.0, 0.0, 0.0, 0.0});
  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t end = std::min(n, (c + 1) * kChunk);
      for (int64_t b = c * kChunk; b < end; b += kBlock)
        act_backward_block(x + b, grad + b, grad_x + b, std::min(kBlock, end - b), g,
                           part[c].data());
    }
  });
  std::array<double, 4> sum{0.0, 0.0, 0.0, 0.0};
  for (const auto& p : part)
    for (int k = 0; k < 4; ++k) sum[k] += p[k];
  return sum;
}

template <typename T>
double rounding_error(double clip, T s) {
  const T c = T(clip) / s;
  return double(std::nearbyint(c) - c);
}

Tensor clip_grad(double value, const Tensor& like) {
  return at::full(like.sizes(), value, like.options());
}

struct UlqAct : public torch::autograd::Function<UlqAct> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, const Tensor& clip_max,
                        const c10::optional<Tensor>& clip_min, int64_t bits) {
    const Tensor x = x_in.contiguous();
    const bool has_min = clip_min.has_value() && clip_min->defined();
    TORCH_CHECK(clip_max.numel() == 1 && (!has_min || clip_min->numel() == 1),
                "ulq_act: clip_max and clip_min must hold one value each");
    TORCH_CHECK(bits >= 2 && bits <= 16, "ulq_act: num_bits ", bits, " not in 2..16");
    const double cmax = clip_max.item<double>(), cmin = has_min ? clip_min->item<double>() : 0.0;
    Tensor y = at::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ulq_act_forward", [&] {
      const auto g = clip_max.scalar_type() == at::kDouble
                         ? act_grid<double, scalar_t>(cmax, cmin, bits)
                         : act_grid<float, scalar_t>(cmax, cmin, bits);
      act_forward<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), x.numel(), g);
    });
    ctx->save_for_backward({x, clip_max});
    ctx->saved_data["cmax"] = cmax;
    ctx->saved_data["cmin"] = cmin;
    ctx->saved_data["bits"] = bits;
    ctx->saved_data["has_min"] = has_min;
    if (has_min) ctx->saved_data["clip_min"] = *clip_min;
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &clip_max = saved[1];
    const Tensor grad = grads[0].contiguous();
    const double cmax = ctx->saved_data["cmax"].toDouble(), cmin = ctx->saved_data["cmin"].toDouble();
    const int64_t bits = ctx->saved_data["bits"].toInt();
    const bool want_x = ctx->needs_input_grad(0);
    Tensor grad_x = at::empty_like(x);
    double g_max = 0, g_min = 0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ulq_act_backward", [&] {
      const auto g = clip_max.scalar_type() == at::kDouble
                         ? act_grid<double, scalar_t>(cmax, cmin, bits)
                         : act_grid<float, scalar_t>(cmax, cmin, bits);
      const auto s = act_backward<scalar_t>(x.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
                                            grad_x.data_ptr<scalar_t>(), x.numel(), g);
      const double s_up = s[1], s_low = s[2] - s[3] - s[1];
      const double common = (s[0] + rounding_error<scalar_t>(cmax, g.s) * s_up +
                             rounding_error<scalar_t>(cmin, g.s) * s_low) /
                            double((int64_t(1) << bits) - 1);
      g_max = common + s_up;
      g_min = s_low - common;
    });
    Tensor grad_min;
    if (ctx->saved_data["has_min"].toBool())
      grad_min = clip_grad(g_min, ctx->saved_data["clip_min"].toTensor());
    return {want_x ? grad_x : Tensor(), clip_grad(g_max, clip_max), grad_min, Tensor()};
  }
};

Tensor ulq_act(const Tensor& x, const Tensor& clip_max, const c10::optional<Tensor>& clip_min,
               int64_t num_bits) {
  return UlqAct::apply(x, clip_max, clip_min, num_bits);
}

// ---- weights: arq_retrain and ulq_retrain ------------------------------------------------------

// min and max of one row as torch.aminmax gives them (NaN if the row holds one): kLanes lanes
// so the loop vectorizes; a row holding NaN or inf (v - v is NaN) is rescanned in scalar code.
template <typename T>
std::pair<T, T> row_min_max(const T* __restrict row, int64_t k) {
  T lo[kLanes], hi[kLanes], bad[kLanes];
  for (int l = 0; l < kLanes; ++l) lo[l] = hi[l] = row[0], bad[l] = T(0);
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const T v = row[i + l];
      lo[l] = std::min(lo[l], v);
      hi[l] = std::max(hi[l], v);
      bad[l] += v - v;
    }
  }
  for (; i < k; ++i) lo[0] = std::min(lo[0], row[i]), hi[0] = std::max(hi[0], row[i]), bad[0] += row[i] - row[i];
  T a = lo[0], b = hi[0], nonfinite = bad[0];
  for (int l = 1; l < kLanes; ++l) a = std::min(a, lo[l]), b = std::max(b, hi[l]), nonfinite += bad[l];
  if (!std::isnan(nonfinite)) return {a, b};
  for (int64_t j = 0; j < k; ++j) {
    if (std::isnan(row[j])) return {row[j], row[j]};
    a = std::min(a, row[j]), b = std::max(b, row[j]);
  }
  return {a, b};
}

// ARQ's symmetric scale of one row (quant_math.symmetric_scale in T); NaN rows give NaN.
template <typename T>
T arq_row_scale(const T* row, int64_t k, int64_t bits) {
  const auto [lo, hi] = row_min_max(row, k);
  if (std::isnan(lo)) return lo;
  const T a = std::abs(lo), b = std::abs(hi);
  const T s = a > b ? a / T(-qmin_of(bits)) : b / T(qmax_of(bits));
  return s < T(kFltEpsilon) ? T(1) : s;
}

template <typename T>
void weight_row_forward(const T* row, T* out, int64_t k, T s, int64_t bits) {
  const T qmin = T(qmin_of(bits)), qmax = T(qmax_of(bits));
  for (int64_t i = 0; i < k; ++i) {
    T t = std::nearbyint(row[i] / s);
    t = t < qmin ? qmin : (t > qmax ? qmax : t);
    out[i] = t * s;
  }
}

struct ArqRetrain : public torch::autograd::Function<ArqRetrain> {
  static Tensor forward(AutogradContext* ctx, const Tensor& m_in, int64_t bits,
                        bool channel_wise) {
    TORCH_CHECK(m_in.dim() >= 1, "arq_retrain: expected a weight with an output-channel axis");
    TORCH_CHECK(bits >= 2 && bits <= 16, "arq_retrain: num_bits ", bits, " not in 2..16");
    const Tensor m = m_in.contiguous();
    Tensor out = at::empty_like(m);
    if (m.numel() == 0) return out;
    const int64_t rows = channel_wise ? m.size(0) : 1, k = m.numel() / rows;
    AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "arq_retrain_forward", [&] {
      const scalar_t* src = m.data_ptr<scalar_t>();
      scalar_t* dst = out.data_ptr<scalar_t>();
      at::parallel_for(0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(k, 1)),
                       [&](int64_t rb, int64_t re) {
                         for (int64_t r = rb; r < re; ++r) {
                           const scalar_t s = arq_row_scale(src + r * k, k, bits);
                           weight_row_forward(src + r * k, dst + r * k, k, s, bits);
                         }
                       });
    });
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {grads[0], Tensor(), Tensor()};
  }
};

Tensor arq_retrain(const Tensor& w, int64_t num_bits, bool channel_wise) {
  return ArqRetrain::apply(w, num_bits, channel_wise);
}

// ulq_retrain backward over one block of a row: writes grad_m, returns sum g local (module
// docstring of ulq.py), in the lanes-then-sum shape of act_backward_block.
template <typename T>
double weight_backward_block(const T* __restrict m, const T* __restrict grad, T* __restrict grad_m,
                             int64_t n, T s, int64_t bits) {
  T local[kBlock];
  const T qmin = T(qmin_of(bits)), qmax = T(qmax_of(bits));
  for (int64_t i = 0; i < n; ++i) {
    const T v = m[i] / s;
    const bool lower = v < qmin, upper = v > qmax;
    grad_m[i] = (lower | upper) ? T(0) : grad[i];
    const T inside = std::nearbyint(v) - v;
    local[i] = grad[i] * (lower ? qmin : (upper ? qmax : inside));
  }
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += local[i + l];
  for (; i < n; ++i) acc[0] += local[i];
  double sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

struct UlqWeight : public torch::autograd::Function<UlqWeight> {
  static Tensor forward(AutogradContext* ctx, const Tensor& m_in, const Tensor& scale_in,
                        int64_t bits, double factor) {
    TORCH_CHECK(m_in.dim() >= 1 && (scale_in.numel() == 1 || scale_in.numel() == m_in.size(0)),
                "ulq_weight: ", scale_in.numel(), " scales for a weight of ",
                m_in.dim() >= 1 ? m_in.size(0) : 0, " output channels");
    TORCH_CHECK(bits >= 2 && bits <= 16, "ulq_weight: num_bits ", bits, " not in 2..16");
    const Tensor m = m_in.contiguous(), scale = scale_in.to(m_in.scalar_type()).contiguous();
    Tensor out = at::empty_like(m);
    const int64_t rows = scale.numel(), k = rows ? m.numel() / rows : 0;
    AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "ulq_weight_forward", [&] {
      const scalar_t *src = m.data_ptr<scalar_t>(), *s = scale.data_ptr<scalar_t>();
      scalar_t* dst = out.data_ptr<scalar_t>();
      at::parallel_for(0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(k, 1)),
                       [&](int64_t rb, int64_t re) {
                         for (int64_t r = rb; r < re; ++r)
                           weight_row_forward(src + r * k, dst + r * k, k, s[r], bits);
                       });
    });
    ctx->save_for_backward({m, scale});
    ctx->saved_data["bits"] = bits;
    ctx->saved_data["factor"] = factor;
    ctx->saved_data["scale_dtype"] = scale_in.scalar_type();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &m = saved[0], &scale = saved[1];
    const Tensor grad = grads[0].contiguous();
    const int64_t bits = ctx->saved_data["bits"].toInt();
    const double factor = ctx->saved_data["factor"].toDouble();
    const int64_t rows = scale.numel(), k = rows ? m.numel() / rows : 0;
    Tensor grad_m = at::empty_like(m), grad_s = at::empty_like(scale);
    AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "ulq_weight_backward", [&] {
      const scalar_t *src = m.data_ptr<scalar_t>(), *s = scale.data_ptr<scalar_t>();
      const scalar_t* g = grad.data_ptr<scalar_t>();
      scalar_t *gm = grad_m.data_ptr<scalar_t>(), *gs = grad_s.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 1, [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
          double acc = 0;
          for (int64_t b = r * k; b < (r + 1) * k; b += kBlock)
            acc += weight_backward_block(src + b, g + b, gm + b, std::min(kBlock, (r + 1) * k - b),
                                         s[r], bits);
          gs[r] = scalar_t(acc * factor);
        }
      });
    });
    const auto dtype = ctx->saved_data["scale_dtype"].toScalarType();
    return {grad_m, grad_s.to(dtype), Tensor(), Tensor()};
  }
};

Tensor ulq_weight(const Tensor& m, const Tensor& scale, int64_t num_bits, double grad_factor) {
  return UlqWeight::apply(m, scale, num_bits, grad_factor);
}

}  // namespace

TORCH_LIBRARY(qdqforge_cpu, lib) {
  lib.def("ulq_act(Tensor x, Tensor clip_max, Tensor? clip_min, int num_bits) -> Tensor");
  lib.def("arq_retrain(Tensor w, int num_bits, bool channel_wise) -> Tensor");
  lib.def("ulq_weight(Tensor w, Tensor scale, int num_bits, float grad_factor) -> Tensor");
}

TORCH_LIBRARY_IMPL(qdqforge_cpu, CompositeImplicitAutograd, lib) {
  lib.impl("ulq_act", &ulq_act);
  lib.impl("arq_retrain", &arq_retrain);
  lib.impl("ulq_weight", &ulq_weight);
}
