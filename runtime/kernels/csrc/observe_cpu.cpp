// qdqforge compiled CPU calibration kernels (runtime/kernels/cpu_ext.py builds them with the QAT
// kernels; runtime/kernels/observe_ops.py calls them). Namespace qdqforge_obs:
//
//   absmax_nonfinite(x) -> (max |x|, count of NaN/inf)
//   ifmr_accumulate(x, stats, radius, width, chunk, take_top, take_bottom) -> (top, bottom)
//       IFMR's per-batch update: stats [3, bins] float64 (n, S, SS) += the batch's bincounts,
//       chunk by chunk, and the batch's take_top largest values and take_bottom smallest values
//       negated, each float64 and descending (torch.topk's values times the tail's sign)
//   ifmr_grid_error(stats, width, scales, lo, hi) -> [candidates, bins] float64
//       each candidate grid's summed squared error per histogram bin (before the row sum)
//   hfmg_windows(cum) -> [w, 2] int64
//       HFMG's greedy candidate windows from the histogram's float64 cumulative sum
//   hfmg_window_error(hist, windows, num_bits) -> [windows, bins] float64
//       each window's L2 error per source bin (before the row sum)
//
// Every value is bit for bit that of the torch expressions these kernels replace (see the Python
// docstrings): IEEE double arithmetic in the same order, no FMA (built with -ffp-contract=off),
// round half to even (std::nearbyint), bincount's sequential per-bin accumulation within each
// chunk, chunk sums added to the statistics in chunk order. Row sums stay with torch (sum(dim=1)
// on the same shapes), so the losses and the chosen candidate equal the torch path's exactly.
// Single-threaded: the calibration forward already uses torch's threads.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <queue>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

template <typename T>
std::tuple<double, int64_t> absmax_nonfinite_impl(const Tensor& x) {
  const T* p = x.const_data_ptr<T>();
  const int64_t n = x.numel();
  T best = T(0);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = double(p[i]);
    if (!std::isfinite(v)) {
      ++bad;
      continue;
    }
    const T a = T(std::fabs(v));
    if (a > best) best = a;
  }
  return {double(best), bad};
}

std::tuple<double, int64_t> absmax_nonfinite(const Tensor& x_in) {
  const Tensor x = x_in.contiguous();
  std::tuple<double, int64_t> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "absmax", [&] {
    out = absmax_nonfinite_impl<scalar_t>(x);
  });
  return out;
}

// The `take` largest values seen (a min-heap of candidates): the multiset torch.topk returns.
class Tail {
 public:
  explicit Tail(int64_t take) : take_(take) { heap_.reserve(take); }
  void add(double v) {
    if (int64_t(heap_.size()) < take_) {
      heap_.push_back(v);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<double>());
    } else if (take_ > 0 && v > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<double>());
      heap_.back() = v;
      std::push_heap(heap_.begin(), heap_.end(), std::greater<double>());
    }
  }
  double threshold() const {
    return int64_t(heap_.size()) < take_ || take_ == 0 ? -std::numeric_limits<double>::infinity()
                                                       : heap_.front();
  }
  Tensor sorted() {  // descending
    std::sort(heap_.begin(), heap_.end(), std::greater<double>());
    Tensor out = at::empty({int64_t(heap_.size())}, at::kDouble);
    std::copy(heap_.begin(), heap_.end(), out.data_ptr<double>());
    return out;
  }

 private:
  int64_t take_;
  std::vector<double> heap_;
};

template <typename T>
void accumulate_impl(const Tensor& x, Tensor& stats, double radius, double width, int64_t chunk,
                     Tail& top, Tail& bottom) {
  const T* p = x.const_data_ptr<T>();
  const int64_t n = x.numel(), bins = stats.size(1);
  double* sn = stats.data_ptr<double>();
  double* ss = sn + bins;
  double* sss = ss + bins;
  std::vector<int64_t> cn(bins);
  std::vector<double> cs(bins), css(bins);
  double hi = top.threshold(), lo = bottom.threshold();  // bottom holds negated values
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t end = std::min(n, start + chunk);
    std::fill(cn.begin(), cn.end(), 0);
    std::fill(cs.begin(), cs.end(), 0.0);
    std::fill(css.begin(), css.end(), 0.0);
    for (int64_t i = start; i < end; ++i) {
      const double v = double(p[i]);
      int64_t idx = int64_t((v + radius) / width);
      idx = std::min(std::max(idx, int64_t(0)), bins - 1);
      cn[idx] += 1;
      cs[idx] += v;
      css[idx] += v * v;
      if (v > hi) {
        top.add(v);
        hi = top.threshold();
      }
      if (-v > lo) {
        bottom.add(-v);
        lo = bottom.threshold();
      }
    }
    for (int64_t b = 0; b < bins; ++b) {
      sn[b] += double(cn[b]);
      ss[b] += cs[b];
      sss[b] += css[b];
    }
  }
}

std::tuple<Tensor, Tensor> ifmr_accumulate(const Tensor& x_in, Tensor stats, double radius,
                                           double width, int64_t chunk, int64_t take_top,
                                           int64_t take_bottom) {
  TORCH_CHECK(stats.scalar_type() == at::kDouble && stats.is_contiguous() && stats.dim() == 2 &&
                  stats.size(0) == 3,
              "stats must be a contiguous [3, bins] float64 tensor");
  TORCH_CHECK(chunk > 0 && take_top >= 0 && take_bottom >= 0, "bad chunk or take");
  const Tensor x = x_in.contiguous();
  Tail top(take_top), bottom(take_bottom);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ifmr", [&] {
    accumulate_impl<scalar_t>(x, stats, radius, width, chunk, top, bottom);
  });
  return {top.sorted(), bottom.sorted()};
}

// ---- IFMR candidate errors (ifmr_histogram._grid_error, element by element) ------------------

struct Candidate {
  double scale, lo, hi;
  double grid(double v) const {  // round(minimum(maximum(v, lo), hi) / scale) * scale
    return std::nearbyint(std::min(std::max(v, lo), hi) / scale) * scale;
  }
};

double cube(double v) { return v * v * v; }  // torch's pow(x, 3) is x * x * x

double multi_step_error(double n, double a, double width, const Candidate& c, double q_lo,
                        double q_hi) {
  const double b = a + width;
  double inside = std::min(b, c.hi) - std::max(a, c.lo);
  inside = inside < 0.0 ? 0.0 : inside;
  double err = n * inside / width * c.scale * c.scale / 12;
  const double top = std::max(a, c.hi);
  err = err + (b > c.hi ? n / width * (cube(b - q_hi) - cube(top - q_hi)) / 3 : 0.0);
  const double bottom = std::min(b, c.lo);
  return err + (a < c.lo ? n / width * (cube(bottom - q_lo) - cube(a - q_lo)) / 3 : 0.0);
}

Tensor ifmr_grid_error(const Tensor& stats_in, double width, const Tensor& scales_in,
                       const Tensor& lo_in, const Tensor& hi_in) {
  const Tensor stats = stats_in.to(at::kDouble).contiguous();
  const Tensor scales = scales_in.to(at::kDouble).contiguous();
  const Tensor los = lo_in.to(at::kDouble).contiguous(), his = hi_in.to(at::kDouble).contiguous();
  TORCH_CHECK(stats.dim() == 2 && stats.size(0) == 4, "stats must be [4, bins]: n, S, SS, left");
  const int64_t bins = stats.size(1), count = scales.numel();
  Tensor out = at::empty({count, bins}, at::kDouble);
  const double *n = stats.const_data_ptr<double>(), *total = n + bins, *squares = total + bins,
               *left = squares + bins;
  for (int64_t k = 0; k < count; ++k) {
    const double s = scales.const_data_ptr<double>()[k];
    const double safe = s < 1.1920928955078125e-07 ? 1.0 : s;
    const Candidate c{safe, los.const_data_ptr<double>()[k], his.const_data_ptr<double>()[k]};
    const double q_lo = c.grid(c.lo), q_hi = c.grid(c.hi);
    double* row = out.data_ptr<double>() + k * bins;
    for (int64_t j = 0; j < bins; ++j) {
      const double q1 = c.grid(left[j]), q2 = c.grid(left[j] + width);
      if ((q2 - q1) <= safe * 1.000001) {
        const double half = (q1 + q2) / 2 - left[j];
        row[j] = squares[j] - 2 * q2 * total[j] + n[j] * q2 * q2 -
                 (q2 - q1) * n[j] * half * half / width;
      } else {
        row[j] = multi_step_error(n[j], left[j], width, c, q_lo, q_hi);
      }
    }
  }
  return out;
}

// ---- HFMG window errors (hfmg.window_errors, element by element) ------------------------------

double cube_norm(double begin, double end, double density) {
  return density * (cube(end) - cube(begin)) / 3.0;
}

Tensor hfmg_window_error(const Tensor& hist_in, const Tensor& windows_in, int64_t num_bits) {
  const Tensor hist = hist_in.to(at::kDouble).contiguous();
  const Tensor windows = windows_in.to(at::kDouble).contiguous();
  TORCH_CHECK(windows.dim() == 2 && windows.size(1) == 2, "windows must be [w, 2]");
  const int64_t bins = hist.numel(), count = windows.size(0);
  const double dst_bins = double(int64_t(1) << num_bits);
  const double* h = hist.const_data_ptr<double>();
  const double* w = windows.const_data_ptr<double>();
  Tensor out = at::empty({count, bins}, at::kDouble);
  for (int64_t k = 0; k < count; ++k) {
    const double left = w[2 * k], right = w[2 * k + 1];
    const double dst_width = (right - left + 1) / dst_bins, half = dst_width / 2;
    double* row = out.data_ptr<double>() + k * bins;
    for (int64_t j = 0; j < bins; ++j) {
      const double begin = double(j) - left, end = double(j) - left + 1;
      const double db = std::min(std::max(std::floor(begin / dst_width), 0.0), dst_bins - 1);
      const double de = std::min(std::max(std::floor(end / dst_width), 0.0), dst_bins - 1);
      double norm = cube_norm(begin - (db + 0.5) * dst_width, half, h[j]);
      norm = norm + (de - db - 1) * cube_norm(-half, half, h[j]);
      row[j] = norm + cube_norm(-half, end - (de + 0.5) * dst_width, h[j]);
    }
  }
  return out;
}

// hfmg.candidate_windows: bisect_right = upper_bound, bisect_left = lower_bound on the same doubles.
Tensor hfmg_windows(const Tensor& cum_in) {
  const Tensor cum_t = cum_in.to(at::kDouble).contiguous();
  const double* cum = cum_t.const_data_ptr<double>();
  const int64_t bins = cum_t.numel();
  const double total = cum[bins - 1];
  const double step = std::ceil(total / 100000);
  int64_t left = 0, right = bins - 1;
  double cut_left = 0.0, cut_right = 0.0;
  std::vector<int64_t> out{left, right};
  while (right - left + 1 > bins / 4 && cut_left + cut_right < total) {
    const int64_t new_left =
        std::min(int64_t(std::upper_bound(cum, cum + bins, cut_left + step) - cum), right);
    const int64_t new_right = std::max(
        int64_t(std::lower_bound(cum, cum + bins, total - cut_right - step) - cum) - 1, left);
    if (new_left - left > right - new_right) {
      left = new_left;
      cut_left = cut_left + step;
    } else {
      right = new_right;
      cut_right = cut_right + step;
    }
    if (out[out.size() - 2] != left || out.back() != right) {
      out.push_back(left);
      out.push_back(right);
    }
  }
  Tensor windows = at::empty({int64_t(out.size() / 2), 2}, at::kLong);
  std::copy(out.begin(), out.end(), windows.data_ptr<int64_t>());
  return windows;
}

}  // namespace

TORCH_LIBRARY(qdqforge_obs, lib) {
  lib.def("absmax_nonfinite(Tensor x) -> (float, int)");
  lib.def(
      "ifmr_accumulate(Tensor x, Tensor(a!) stats, float radius, float width, int chunk, "
      "int take_top, int take_bottom) -> (Tensor, Tensor)");
  lib.def("ifmr_grid_error(Tensor stats, float width, Tensor scales, Tensor lo, Tensor hi) -> Tensor");
  lib.def("hfmg_windows(Tensor cum) -> Tensor");
  lib.def("hfmg_window_error(Tensor hist, Tensor windows, int num_bits) -> Tensor");
}

TORCH_LIBRARY_IMPL(qdqforge_obs, CPU, lib) {
  lib.impl("absmax_nonfinite", absmax_nonfinite);
  lib.impl("ifmr_accumulate", ifmr_accumulate);
  lib.impl("ifmr_grid_error", ifmr_grid_error);
  lib.impl("hfmg_windows", hfmg_windows);
  lib.impl("hfmg_window_error", hfmg_window_error);
}
