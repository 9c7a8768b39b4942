// qdqforge compiled CPU calibration kernels (runtime/kernels/cpu_ext.py builds them with the QAT
// kernels; runtime/calibration/observe_ops.py and runtime/kernels/search_n.py call them).
// Namespace qdqforge_obs:
//
//   scan(x, take_top, take_bottom) -> (max |x|, count of NaN/inf, top, bottom)
//       one pass: the NaN/inf check, max |x|, and the take_top largest values and take_bottom
//       smallest values negated, each float64 and descending (torch.topk's values times the
//       tail's sign)
//   ifmr_bins(x, stats, radius, width, chunk)
//       IFMR's histogram update: stats [3, bins] float64 (n, S, SS) += the batch's bincounts,
//       chunk by chunk
//   ifmr_grid_error(stats, width, scales, lo, hi) -> [candidates, bins] float64
//       each candidate grid's summed squared error per histogram bin (before the row sum)
//   hfmg_windows(cum) -> [w, 2] int64
//       HFMG's greedy candidate windows from the histogram's float64 cumulative sum
//   hfmg_window_error(hist, windows, num_bits) -> [windows, bins] float64
//       each window's L2 error per source bin (before the row sum)
//   hfmg_window_terms(hist, prefix, windows, num_bits) -> ([windows, 2^b], [windows, 2^b - 1])
//       window_errors_fast's two terms per destination bin and inner edge (before the row sums)
//   search_n_squares(rows, shift, out) -> out
//       search-N's squared error of one shift per int32 value into out (float64, rows' shape;
//       runtime/kernels/search_n.py, before the row sums): five int32 passes and a copy in one
//
// Every value is bit for bit that of the torch expressions these kernels replace (see the Python
// docstrings): IEEE double arithmetic in the same order, no FMA (built with -ffp-contract=off),
// round half to even (std::nearbyint), bincount's sequential per-bin accumulation within each
// chunk, chunk sums added to the statistics in chunk order. Row sums stay with torch (sum(dim=1)
// on the same shapes), so the losses and the chosen candidate equal the torch path's exactly.
// The scan splits large batches between torch's threads (maxima, counts and tails merge
// exactly), the error kernels split their rows; the histogram pass counts its chunks on
// torch's threads and adds them in chunk order, so every bin's summation order is kept.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <queue>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;

// The `take` largest values seen (a min-heap of candidates): the multiset torch.topk returns.
class Tail {
 public:
  explicit Tail(int64_t take) : take_(take) { heap_.reserve(take); }
  void add(double v) {
    if (int64_t(heap_.size()) < take_) {
      heap_.push_back(v);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<double>());
    } else if (v > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<double>());
      heap_.back() = v;
      std::push_heap(heap_.begin(), heap_.end(), std::greater<double>());
    }
  }
  double threshold() const {  // a value must exceed this to enter; +inf when take is 0
    if (take_ == 0) return std::numeric_limits<double>::infinity();
    return int64_t(heap_.size()) < take_ ? -std::numeric_limits<double>::infinity() : heap_.front();
  }
  void absorb(const Tail& other) {
    for (double v : other.heap_) add(v);
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

constexpr int64_t kBlock = 256;

// One pass: NaN/inf count, max |x| (in T, as torch's abs().max()), and both tails. Blocks whose
// max and min cannot enter a tail are skipped after a vectorizable min/max scan.
// max, min and the NaN/inf count of p[0, n) (max/min are meaningless when the count is > 0)
template <typename T, typename A>
void block_stats(const T* p, int64_t n, A& bmax, A& bmin, int64_t& bad) {
  const A limit = std::numeric_limits<A>::max();
  bmax = -std::numeric_limits<A>::infinity();
  bmin = std::numeric_limits<A>::infinity();
  bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const A v = A(p[i]);  // exact: half and bfloat16 widen to float
    bad += !(std::fabs(v) <= limit);
    bmax = v > bmax ? v : bmax;
    bmin = v < bmin ? v : bmin;
  }
}

#if defined(__AVX2__)
template <>
void block_stats<float, float>(const float* p, int64_t n, float& bmax, float& bmin, int64_t& bad) {
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 vmin = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256 limit = _mm256_set1_ps(std::numeric_limits<float>::max());
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int64_t i = 0, count = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(p + i);
    vmax = _mm256_max_ps(vmax, v);
    vmin = _mm256_min_ps(vmin, v);
    const __m256 finite = _mm256_cmp_ps(_mm256_and_ps(v, magnitude), limit, _CMP_LE_OQ);
    count += 8 - __builtin_popcount(unsigned(_mm256_movemask_ps(finite)));
  }
  alignas(32) float lanes_max[8], lanes_min[8];
  _mm256_store_ps(lanes_max, vmax);
  _mm256_store_ps(lanes_min, vmin);
  bmax = *std::max_element(lanes_max, lanes_max + 8);
  bmin = *std::min_element(lanes_min, lanes_min + 8);
  for (; i < n; ++i) {
    count += !(std::fabs(p[i]) <= std::numeric_limits<float>::max());
    bmax = p[i] > bmax ? p[i] : bmax;
    bmin = p[i] < bmin ? p[i] : bmin;
  }
  bad = count;
}
#endif

template <typename T>
std::tuple<double, int64_t> scan_impl(const T* p, int64_t n, Tail& top, Tail& bottom) {
  using A = typename std::conditional<std::is_same<T, double>::value, double, float>::type;
  double hi = top.threshold(), lo = bottom.threshold();  // bottom holds negated values
  double best = 0.0;
  int64_t bad = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    A bmax, bmin;
    int64_t bbad;
    block_stats<T, A>(p + start, end - start, bmax, bmin, bbad);
    bad += bbad;
    best = std::max(best, std::max(double(bmax), -double(bmin)));
    if (!(double(bmax) > hi) && !(-double(bmin) > lo)) continue;
    for (int64_t i = start; i < end; ++i) {
      const double v = double(p[i]);
      if (v > hi) {
        top.add(v);
        hi = top.threshold();
      }
      if (-v > lo) {
        bottom.add(-v);
        lo = bottom.threshold();
      }
    }
  }
  return {best, bad};
}

constexpr int64_t kParallelGrain = 1 << 16;  // elements: below this a pass stays on one thread

// scan_impl over blocks split between threads; maxima, minima, counts and tails merge exactly
// (a tail is a multiset: the largest `take` of the union are the largest of the parts' largest).
template <typename T>
std::tuple<double, int64_t> scan_parallel(const T* p, int64_t n, Tail& top, Tail& bottom,
                                          int64_t take_top, int64_t take_bottom) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(),
                                                               n / kParallelGrain));
  if (parts == 1) return scan_impl<T>(p, n, top, bottom);
  const int64_t step = (n / parts + kBlock - 1) / kBlock * kBlock;
  std::vector<Tail> tops(parts, Tail(take_top)), bottoms(parts, Tail(take_bottom));
  std::vector<std::tuple<double, int64_t>> found(parts);
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t start = std::min(n, k * step), stop = k == parts - 1 ? n : std::min(n, start + step);
      found[k] = scan_impl<T>(p + start, stop - start, tops[k], bottoms[k]);
    }
  });
  double best = 0.0;
  int64_t bad = 0;
  for (int64_t k = 0; k < parts; ++k) {
    best = std::max(best, std::get<0>(found[k]));
    bad += std::get<1>(found[k]);
    top.absorb(tops[k]);
    bottom.absorb(bottoms[k]);
  }
  return {best, bad};
}

std::tuple<double, int64_t, Tensor, Tensor> scan(const Tensor& x_in, int64_t take_top,
                                                 int64_t take_bottom) {
  TORCH_CHECK(take_top >= 0 && take_bottom >= 0, "take must be >= 0");
  const Tensor x = x_in.contiguous();
  Tail top(take_top), bottom(take_bottom);
  std::tuple<double, int64_t> found;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "scan", [&] {
    found = scan_parallel<scalar_t>(x.const_data_ptr<scalar_t>(), x.numel(), top, bottom,
                                    take_top, take_bottom);
  });
  return {std::get<0>(found), std::get<1>(found), top.sorted(), bottom.sorted()};
}

struct Bin {  // one cache line access per value instead of three
  double sum, squares;
  int64_t count, pad;
};

// The bin of a value, as torch computes ((x + R) / w).long() clamped; x / w == x * (1 / w)
// exactly when w is a power of two (IFMR's always is).
struct Binning {
  double radius, width, inverse;
  bool pow2;
  int64_t bins;
  Binning(double r, double w, int64_t b) : radius(r), width(w), inverse(1.0 / w), bins(b) {
    int exponent = 0;
    pow2 = std::frexp(w, &exponent) == 0.5;
  }
  int64_t operator()(double v) const {
    const int64_t idx = int64_t(pow2 ? (v + radius) * inverse : (v + radius) / width);
    return std::min(std::max(idx, int64_t(0)), bins - 1);
  }
};

// One chunk's bins, zero outside [lo, hi], the range of bins its values fell in.
struct ChunkBins {
  std::vector<Bin> bins;
  int64_t lo = 0, hi = -1;
};

template <typename T>
void count_chunk(const T* p, int64_t start, int64_t end, const Binning& bin, ChunkBins& part) {
  int64_t lo = bin.bins, hi = -1;
  for (int64_t i = start; i < end; ++i) {
    const double v = double(p[i]);
    const int64_t k = bin(v);
    lo = std::min(lo, k);
    hi = std::max(hi, k);
    Bin& b = part.bins[k];
    b.count += 1;
    b.sum += v;
    b.squares += v * v;
  }
  part.lo = lo;
  part.hi = hi;
}

// torch.bincount per chunk (sequential per bin) added to the statistics in chunk order. Chunks
// are counted into private bins by torch's threads, a round of one chunk per thread at a time,
// then added to the statistics chunk by chunk in chunk order (the bins split between the
// threads): every bin's sums are those of the one-thread loop, whatever the thread count.
template <typename T>
void bins_impl(const T* p, int64_t n, Tensor& stats, double radius, double width, int64_t chunk) {
  const int64_t bins = stats.size(1);
  double* sn = stats.data_ptr<double>();
  double* ss = sn + bins;
  double* sss = ss + bins;
  const Binning bin(radius, width, bins);
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t lanes = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), chunks));
  std::vector<ChunkBins> parts(lanes);
  for (auto& part : parts) part.bins.assign(bins, Bin{0.0, 0.0, 0, 0});
  for (int64_t first = 0; first < chunks; first += lanes) {
    const int64_t count = std::min(lanes, chunks - first);
    at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t start = (first + k) * chunk;
        count_chunk(p, start, std::min(n, start + chunk), bin, parts[k]);
      }
    });
    at::parallel_for(0, bins, 1 << 12, [&](int64_t begin, int64_t end) {
      for (int64_t k = 0; k < count; ++k) {  // chunk order, for every bin
        Bin* part = parts[k].bins.data();
        for (int64_t b = std::max(begin, parts[k].lo); b < std::min(end, parts[k].hi + 1); ++b) {
          sn[b] += double(part[b].count);
          ss[b] += part[b].sum;
          sss[b] += part[b].squares;
          part[b] = Bin{0.0, 0.0, 0, 0};
        }
      }
    });
  }
}

void ifmr_bins(const Tensor& x_in, Tensor stats, double radius, double width, int64_t chunk) {
  TORCH_CHECK(stats.scalar_type() == at::kDouble && stats.is_contiguous() && stats.dim() == 2 &&
                  stats.size(0) == 3,
              "stats must be a contiguous [3, bins] float64 tensor");
  TORCH_CHECK(chunk > 0, "chunk must be > 0");
  const Tensor x = x_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ifmr_bins", [&] {
    bins_impl<scalar_t>(x.const_data_ptr<scalar_t>(), x.numel(), stats, radius, width, chunk);
  });
}

// ---- IFMR candidate errors (ifmr_histogram._grid_error, element by element) ------------------

// body(k) for every row k < count, rows split between torch's threads when the work is large;
// each row is computed alone, so the values do not depend on the thread count.
template <typename Body>
void for_rows(int64_t count, int64_t width, const Body& body) {
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(width, 1));
  at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) body(k);
  });
}

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
  for_rows(count, bins, [&](int64_t k) {
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
  });
  return out;
}

// ---- search-N (search_n._squared_error_sums, element by element) -----------------------------

// (clamp(r >> n, int16) << n - r)^2 as float64: the arithmetic shift floors like torch's
// bitwise_right_shift; the left shift goes through uint32 (two's complement, as torch shifts);
// every step fits int32 (search_n's docstring), so the difference equals the int64 one, and
// double(d) * double(d) is the product torch's double().mul_() computes.
Tensor search_n_squares(const Tensor& rows_in, int64_t shift, Tensor out) {
  TORCH_CHECK(rows_in.scalar_type() == at::kInt, "rows must be int32");
  TORCH_CHECK(shift >= 1 && shift <= 16, "shift must be in 1..16");
  TORCH_CHECK(out.scalar_type() == at::kDouble && out.is_contiguous() &&
                  out.sizes() == rows_in.sizes(),
              "out must be a contiguous float64 tensor of rows' shape");
  const Tensor rows = rows_in.contiguous();
  const int32_t* p = rows.const_data_ptr<int32_t>();
  double* o = out.data_ptr<double>();
  const int n = int(shift);
  at::parallel_for(0, rows.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int32_t carried = p[i] >> n;
      carried = carried < -32768 ? -32768 : (carried > 32767 ? 32767 : carried);
      const int32_t diff = int32_t(uint32_t(carried) << n) - p[i];
      o[i] = double(diff) * double(diff);
    }
  });
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
  for_rows(count, bins, [&](int64_t k) {
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
  });
  return out;
}

// hfmg.window_errors_fast, element by element: each window's inside term per destination bin
// [windows, D] and cut-edge term per inner edge [windows, D - 1]; `prefix` is _moment_prefix(hist)
// [3, bins + 1]. The row sums stay torch's (row_sums in Python).
std::tuple<Tensor, Tensor> hfmg_window_terms(const Tensor& hist_in, const Tensor& prefix_in,
                                             const Tensor& windows_in, int64_t num_bits) {
  const Tensor hist = hist_in.to(at::kDouble).contiguous();
  const Tensor prefix = prefix_in.to(at::kDouble).contiguous();
  const Tensor windows = windows_in.to(at::kDouble).contiguous();
  const int64_t bins = hist.numel(), count = windows.size(0);
  const int64_t dst = int64_t(1) << num_bits;
  TORCH_CHECK(prefix.dim() == 2 && prefix.size(0) == 3 && prefix.size(1) == bins + 1,
              "prefix must be [3, bins + 1]");
  const double* h = hist.const_data_ptr<double>();
  const double *m0 = prefix.const_data_ptr<double>(), *m1 = m0 + bins + 1, *m2 = m1 + bins + 1;
  const double* w = windows.const_data_ptr<double>();
  Tensor inside = at::empty({count, dst}, at::kDouble), cuts = at::empty({count, dst - 1}, at::kDouble);
  std::vector<double> edges(dst + 1), centre(dst);
  for (int64_t k = 0; k < count; ++k) {
    const double left = w[2 * k], right = w[2 * k + 1];
    const double width = (right - left + 1) / double(dst);
    for (int64_t e = 0; e <= dst; ++e) edges[e] = left + double(e) * width;
    for (int64_t d = 0; d < dst; ++d) centre[d] = (edges[d] + edges[d + 1]) / 2;
    double* in_row = inside.data_ptr<double>() + k * dst;
    double* cut_row = cuts.data_ptr<double>() + k * (dst - 1);
    for (int64_t d = 0; d < dst; ++d) {
      int64_t first = d == 0 ? 0 : int64_t(std::ceil(edges[d]));
      int64_t end = d == dst - 1 ? bins : int64_t(std::floor(edges[d + 1]));
      end = std::max(end, first);
      const double s0 = m0[end] - m0[first], s1 = m1[end] - m1[first], s2 = m2[end] - m2[first];
      const double c = centre[d];
      in_row[d] = s2 - 2 * c * s1 + (c * c + 1.0 / 12) * s0;
    }
    for (int64_t d = 0; d + 1 < dst; ++d) {
      const double cut = edges[d + 1], src = std::floor(cut);
      const int64_t at_src = std::min(std::max(int64_t(src), int64_t(0)), bins - 1);
      const double mass = cut > src ? h[at_src] : 0.0;
      const double c_l = centre[d], c_r = centre[d + 1];
      const double split = cube(cut - c_l) - cube(src - c_l) + cube(src + 1 - c_r) - cube(cut - c_r);
      cut_row[d] = mass * split / 3;
    }
  }
  return {inside, cuts};
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
  lib.def("scan(Tensor x, int take_top, int take_bottom) -> (float, int, Tensor, Tensor)");
  lib.def("ifmr_bins(Tensor x, Tensor(a!) stats, float radius, float width, int chunk) -> ()");
  lib.def("ifmr_grid_error(Tensor stats, float width, Tensor scales, Tensor lo, Tensor hi) -> Tensor");
  lib.def("hfmg_windows(Tensor cum) -> Tensor");
  lib.def("hfmg_window_error(Tensor hist, Tensor windows, int num_bits) -> Tensor");
  lib.def(
      "hfmg_window_terms(Tensor hist, Tensor prefix, Tensor windows, int num_bits) -> "
      "(Tensor, Tensor)");
  lib.def("search_n_squares(Tensor rows, int shift, Tensor(a!) out) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(qdqforge_obs, CPU, lib) {
  lib.impl("scan", scan);
  lib.impl("ifmr_bins", ifmr_bins);
  lib.impl("ifmr_grid_error", ifmr_grid_error);
  lib.impl("hfmg_windows", hfmg_windows);
  lib.impl("hfmg_window_error", hfmg_window_error);
  lib.impl("hfmg_window_terms", hfmg_window_terms);
  lib.impl("search_n_squares", search_n_squares);
}
