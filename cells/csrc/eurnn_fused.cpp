// The EURNN recurrence, forward and backward through time, in one compiled kernel per direction.
//
// Same math as the reference path of cells/eurnn.py: h_t = modReLU(U h_{t-1} + W x_t + b), with U
// a product of layers of 2x2 mixers after an optional diagonal phase (which acts first). Every
// sample of the batch is an independent recurrence, so the batch is split across threads and each
// thread runs whole sequences with its state in L1 cache: no synchronisation per step, no tensor
// per step.
//
// The state lives in an internal order of the units (`perm[j]` is the unit at position j), chosen
// on the Python side so that each layer's mixers act on contiguous runs ("segments") of positions:
// a segment (a, b, len, m) mixes positions a+k with b+k using mixer m+k, for k < len, and the loops
// over a segment vectorise. Stored states are in the natural order of the units.
//
// Backward keeps nothing per layer: for step t it recomputes U h_{t-1} from the stored state, then
// walks the layers backwards, inverting each mixer exactly (they are unitary) to recover its input
// while it propagates the gradient.
//
// Every output is bitwise the same whatever the number of threads: the batch is cut into chunks
// whose boundaries depend on the batch size (and the model's size) only, never on `threads`;
// gradients of the parameters are summed within a chunk in a fixed order and the chunks are added
// in order. Threads only decide who computes which chunk (they take the next one as they finish).

#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// modReLU(z) = relu(1 + beta / r) z, where r stands for |z| kept away from 0 in one of two forms
// (the `modrelu` option of eurnn.py, whose MODRELU_EPS gives eps):
//   smooth   (kNotebook = false): r = sqrt(|z|^2 + eps^2), smooth at z = 0;
//   notebook (kNotebook = true):  r = |z| + eps, torch_eunn's ModReLU (the original notebook's).
// `shift` is what is added: eps^2 (smooth) or eps (notebook), rounded once from double to T.
template <typename T>
T modrelu_shift(bool notebook, double eps) {
  return notebook ? T(eps) : T(eps * eps);
}

// Calls body(std::true_type{}) for the notebook form, body(std::false_type{}) for the smooth one,
// so that each form is a template parameter of the loops (no branch in them).
template <typename F>
void with_modrelu_form(bool notebook, F body) {
  if (notebook) {
    body(std::true_type{});
  } else {
    body(std::false_type{});
  }
}

struct Layout {
  int64_t n = 0;
  std::vector<int64_t> perm;     // position -> unit
  std::vector<int64_t> segments; // 4 per segment: a, b, len, mixer
  std::vector<int64_t> layers;   // layer l owns segments [layers[l], layers[l + 1])
  enum { kNatural, kSplit, kOther } order = kOther;  // kSplit: even units, then odd units
};

Layout read_layout(const torch::Tensor& perm, const torch::Tensor& segments, const torch::Tensor& layers) {
  Layout out;
  auto p = perm.contiguous().to(torch::kLong);
  auto s = segments.contiguous().to(torch::kLong);
  auto l = layers.contiguous().to(torch::kLong);
  out.n = p.numel();
  out.perm.assign(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel());
  out.segments.assign(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + s.numel());
  out.layers.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
  bool natural = true, split = out.n % 2 == 0;
  for (int64_t j = 0; j < out.n; ++j) {
    natural = natural && out.perm[j] == j;
    split = split && out.perm[j] == (j < out.n / 2 ? 2 * j : 2 * (j - out.n / 2) + 1);
  }
  out.order = natural ? Layout::kNatural : split ? Layout::kSplit : Layout::kOther;
  return out;
}

// dst[j] = src[perm[j]] (accumulate: +=), from the natural order of units to the internal one.
template <typename T, bool kAccumulate = false>
void to_internal(const Layout& lay, const T* __restrict src, T* __restrict dst) {
  const int64_t n = lay.n, half = n / 2;
  auto put = [](T& d, T v) { if (kAccumulate) d += v; else d = v; };
  if (lay.order == Layout::kNatural) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) put(dst[j], src[j]);
  } else if (lay.order == Layout::kSplit) {
#pragma omp simd
    for (int64_t k = 0; k < half; ++k) {
      put(dst[k], src[2 * k]);
      put(dst[half + k], src[2 * k + 1]);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) put(dst[j], src[lay.perm[j]]);
  }
}

// dst[perm[j]] = src[j], from the internal order of units to the natural one.
template <typename T>
void to_natural(const Layout& lay, const T* __restrict src, T* __restrict dst) {
  const int64_t n = lay.n, half = n / 2;
  if (lay.order == Layout::kNatural) {
    std::copy(src, src + n, dst);
  } else if (lay.order == Layout::kSplit) {
#pragma omp simd
    for (int64_t k = 0; k < half; ++k) {
      dst[2 * k] = src[k];
      dst[2 * k + 1] = src[half + k];
    }
  } else {
    for (int64_t j = 0; j < n; ++j) dst[lay.perm[j]] = src[j];
  }
}

// How many chunks the batch is cut into: at most kMaxChunks (enough for as many threads), one
// sample or more each, and few enough that the per-chunk parameter gradients (`grad_values`
// values each) stay under kChunkGradBytes in all. Depends on the shapes only, never on threads.
constexpr int64_t kMaxChunks = 64;
constexpr int64_t kChunkGradBytes = int64_t(64) << 20;

int64_t chunk_count(int64_t batch, int64_t grad_values, int64_t value_bytes) {
  const int64_t by_memory = kChunkGradBytes / std::max<int64_t>(1, grad_values * value_bytes);
  return std::max<int64_t>(1, std::min({batch, kMaxChunks, by_memory}));
}

// Runs body(chunk, first, last) for `chunks` contiguous parts of [0, total) (sizes differ by at
// most one), on up to `threads` threads, each taking the next chunk not yet taken. Chunk
// boundaries depend on `total` and `chunks` only; which thread runs a chunk does not matter.
template <typename F>
void run_chunks(int64_t total, int64_t chunks, int64_t threads, F body) {
  auto part = [&](int64_t c) {
    int64_t first = total * c / chunks, last = total * (c + 1) / chunks;
    body(c, first, last);
  };
  threads = std::max<int64_t>(1, std::min(threads, chunks));
  if (threads == 1) {
    for (int64_t c = 0; c < chunks; ++c) part(c);
    return;
  }
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) part(c);
  };
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < threads; ++w) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

// Per-call constants, in the internal order of units.
template <typename T>
struct Params {
  int64_t n, inputs, mixers;
  bool has_omega;
  std::vector<T> cos_t, sin_t, cos_p, sin_p;  // per mixer
  std::vector<T> cos_o, sin_o;                // diagonal phase, per position
  std::vector<T> beta, b_in, w;               // per position; w is (n, inputs)
  T modrelu_shift;                            // see modrelu_shift()
};

template <typename T>
Params<T> read_params(const Layout& lay, const torch::Tensor& w, const torch::Tensor& b_in, const torch::Tensor& theta,
                      const torch::Tensor& phi, const torch::Tensor& omega, const torch::Tensor& beta, bool notebook,
                      double eps) {
  Params<T> p;
  p.modrelu_shift = modrelu_shift<T>(notebook, eps);
  p.n = lay.n;
  p.inputs = w.size(1);
  p.mixers = theta.numel();
  p.has_omega = omega.numel() > 0;
  auto th = theta.contiguous(), ph = phi.contiguous();
  const T* thp = th.data_ptr<T>();
  const T* php = ph.data_ptr<T>();
  for (int64_t m = 0; m < p.mixers; ++m) {
    p.cos_t.push_back(std::cos(thp[m]));
    p.sin_t.push_back(std::sin(thp[m]));
    p.cos_p.push_back(std::cos(php[m]));
    p.sin_p.push_back(std::sin(php[m]));
  }
  auto wc = w.contiguous(), bc = b_in.contiguous(), be = beta.contiguous();
  torch::Tensor om = p.has_omega ? omega.contiguous() : omega;
  p.w.resize(p.n * p.inputs);
  for (int64_t j = 0; j < p.n; ++j) {
    int64_t u = lay.perm[j];
    p.beta.push_back(be.data_ptr<T>()[u]);
    p.b_in.push_back(bc.data_ptr<T>()[u]);
    for (int64_t i = 0; i < p.inputs; ++i) p.w[j * p.inputs + i] = wc.data_ptr<T>()[u * p.inputs + i];
    if (p.has_omega) {
      p.cos_o.push_back(std::cos(om.data_ptr<T>()[u]));
      p.sin_o.push_back(std::sin(om.data_ptr<T>()[u]));
    }
  }
  return p;
}

// v <- U v for one state (re, im) in internal order: the diagonal phase (if any), then the layers.
template <typename T>
void apply_unitary(const Layout& lay, const Params<T>& p, T* __restrict re, T* __restrict im) {
  if (p.has_omega) {
    const T *co = p.cos_o.data(), *so = p.sin_o.data();
#pragma omp simd
    for (int64_t j = 0; j < p.n; ++j) {
      T r = re[j], i = im[j];
      re[j] = co[j] * r - so[j] * i;
      im[j] = so[j] * r + co[j] * i;
    }
  }
  const int64_t nl = static_cast<int64_t>(lay.layers.size()) - 1;
  for (int64_t l = 0; l < nl; ++l) {
    for (int64_t s = lay.layers[l]; s < lay.layers[l + 1]; ++s) {
      const int64_t* seg = &lay.segments[4 * s];
      T *ar = re + seg[0], *ai = im + seg[0], *br = re + seg[1], *bi = im + seg[1];
      const T *c = p.cos_t.data() + seg[3], *sn = p.sin_t.data() + seg[3];
      const T *cp = p.cos_p.data() + seg[3], *sp = p.sin_p.data() + seg[3];
      const int64_t len = seg[2];
#pragma omp simd
      for (int64_t k = 0; k < len; ++k) {
        T ur = c[k] * ar[k] - sn[k] * br[k], ui = c[k] * ai[k] - sn[k] * bi[k];
        T nbr = sn[k] * ar[k] + c[k] * br[k], nbi = sn[k] * ai[k] + c[k] * bi[k];
        ar[k] = cp[k] * ur - sp[k] * ui;
        ai[k] = sp[k] * ur + cp[k] * ui;
        br[k] = nbr;
        bi[k] = nbi;
      }
    }
  }
}

// re[j] += b_in[j] + sum_i w[j, i] x[i]: the input projection, real part only.
template <typename T>
void add_input(const Params<T>& p, const T* __restrict x, T* __restrict re) {
  const T* w = p.w.data();
  const T* b = p.b_in.data();
  if (p.inputs == 1) {
    const T x0 = x[0];
#pragma omp simd
    for (int64_t j = 0; j < p.n; ++j) re[j] += b[j] + w[j] * x0;
    return;
  }
  for (int64_t j = 0; j < p.n; ++j) {
    T acc = b[j];
    for (int64_t i = 0; i < p.inputs; ++i) acc += w[j * p.inputs + i] * x[i];
    re[j] += acc;
  }
}

// 1 / r, r the modReLU's |z| of form kNotebook (see modrelu_shift).
template <bool kNotebook, typename T>
inline T inv_abs(T zr, T zi, T shift) {
  if constexpr (kNotebook) {
    return T(1) / (std::sqrt(zr * zr + zi * zi) + shift);
  } else {
    return T(1) / std::sqrt(zr * zr + zi * zi + shift);
  }
}

// Back through modReLU h = s z, s = relu(1 + beta / r), for one unit: (gr, gi) holds dL/dh on
// entry and dL/dz on exit; returns dL/dbeta. With q = 1[s > 0] / r and dr/dz = k z:
//   dh/dz . g = s g - beta q^2 k (g . z) z,   dh/dbeta . g = q (g . z),
// where k = 1 / r (smooth) or 1 / |z| (notebook; 0 at z = 0, as the derivative of torch's
// complex abs that the reference path differentiates).
template <bool kNotebook, typename T>
inline T modrelu_backward(T zr, T zi, T beta, T shift, T& gr, T& gi) {
  T ir = inv_abs<kNotebook>(zr, zi, shift);
  T s = std::max(T(0), T(1) + beta * ir);
  T q = s > T(0) ? ir : T(0);
  T k;
  if constexpr (kNotebook) {
    T a = std::sqrt(zr * zr + zi * zi);
    k = a > T(0) ? T(1) / a : T(0);
  } else {
    k = ir;
  }
  T dot = gr * zr + gi * zi;
  T coef = -beta * q * q * k * dot;
  gr = s * gr + coef * zr;
  gi = s * gi + coef * zi;
  return q * dot;
}

template <bool kNotebook, typename T>
void forward_kernel(const Layout& lay, const Params<T>& p, const T* x, const T* h0, T* hs, int64_t batch,
                    int64_t steps, int64_t threads) {
  const int64_t n = p.n, inputs = p.inputs;
  const T* beta = p.beta.data();
  const T shift = p.modrelu_shift;
  run_chunks(batch, chunk_count(batch, 0, sizeof(T)), threads, [&](int64_t, int64_t first, int64_t last) {
    std::vector<T> state(2 * n);
    T *re = state.data(), *im = state.data() + n;
    for (int64_t b = first; b < last; ++b) {
      if (h0) {
        to_internal(lay, h0 + b * 2 * n, re);
        to_internal(lay, h0 + b * 2 * n + n, im);
      } else {
        std::fill(re, re + 2 * n, T(0));
      }
      for (int64_t t = 0; t < steps; ++t) {
        apply_unitary(lay, p, re, im);
        add_input(p, x + (b * steps + t) * inputs, re);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T s = std::max(T(0), T(1) + beta[j] * inv_abs<kNotebook>(re[j], im[j], shift));
          re[j] *= s;
          im[j] *= s;
        }
        T* out = hs + (b * steps + t) * 2 * n;
        to_natural(lay, re, out);
        to_natural(lay, im, out + n);
      }
    }
  });
}

// Parameter gradients of one chunk of the batch, in internal order.
template <typename T>
struct Grads {
  std::vector<T> theta, phi, omega, beta, b_in, w;
  Grads(const Params<T>& p)
      : theta(p.mixers), phi(p.mixers), omega(p.has_omega ? p.n : 0), beta(p.n), b_in(p.n), w(p.n * p.inputs) {}
};

// Back through v <- U v for one state: (re, im) holds U v on entry and v on exit, (gr, gi) holds
// dL/d(U v) on entry and dL/dv on exit; parameter gradients are added to g.
template <typename T>
void unitary_backward(const Layout& lay, const Params<T>& p, T* __restrict re, T* __restrict im, T* __restrict gr,
                      T* __restrict gi, Grads<T>& g) {
  const int64_t nl = static_cast<int64_t>(lay.layers.size()) - 1;
  for (int64_t l = nl - 1; l >= 0; --l) {
    for (int64_t s = lay.layers[l]; s < lay.layers[l + 1]; ++s) {
      const int64_t* seg = &lay.segments[4 * s];
      T *ar = re + seg[0], *ai = im + seg[0], *br = re + seg[1], *bi = im + seg[1];
      T *gar = gr + seg[0], *gai = gi + seg[0], *gbr = gr + seg[1], *gbi = gi + seg[1];
      const T *c = p.cos_t.data() + seg[3], *sn = p.sin_t.data() + seg[3];
      const T *cp = p.cos_p.data() + seg[3], *sp = p.sin_p.data() + seg[3];
      T *gth = g.theta.data() + seg[3], *gph = g.phi.data() + seg[3];
      const int64_t len = seg[2];
#pragma omp simd
      for (int64_t k = 0; k < len; ++k) {
        // Forward: u = c a - s b, a' = e^{i phi} u, b' = s a + c b.
        T pr = ar[k], pi = ai[k], qr = br[k], qi = bi[k];          // a', b'
        T gpr = gar[k], gpi = gai[k], gqr = gbr[k], gqi = gbi[k];  // dL/da', dL/db'
        gph[k] += gpi * pr - gpr * pi;
        T ur = cp[k] * pr + sp[k] * pi, ui = cp[k] * pi - sp[k] * pr;        // u = e^{-i phi} a'
        T gur = cp[k] * gpr + sp[k] * gpi, gui = cp[k] * gpi - sp[k] * gpr;  // dL/du
        // du/dtheta = -b', db'/dtheta = u.
        gth[k] += gqr * ur + gqi * ui - gur * qr - gui * qi;
        ar[k] = c[k] * ur + sn[k] * qr;
        ai[k] = c[k] * ui + sn[k] * qi;
        br[k] = c[k] * qr - sn[k] * ur;
        bi[k] = c[k] * qi - sn[k] * ui;
        gar[k] = c[k] * gur + sn[k] * gqr;
        gai[k] = c[k] * gui + sn[k] * gqi;
        gbr[k] = c[k] * gqr - sn[k] * gur;
        gbi[k] = c[k] * gqi - sn[k] * gui;
      }
    }
  }
  if (p.has_omega) {  // the diagonal phase acted first: y = e^{i omega} u
    const T *co = p.cos_o.data(), *so = p.sin_o.data();
    T* go = g.omega.data();
#pragma omp simd
    for (int64_t j = 0; j < p.n; ++j) {
      T yr = re[j], yi = im[j], gyr = gr[j], gyi = gi[j];
      go[j] += gyi * yr - gyr * yi;
      re[j] = co[j] * yr + so[j] * yi;
      im[j] = co[j] * yi - so[j] * yr;
      gr[j] = co[j] * gyr + so[j] * gyi;
      gi[j] = co[j] * gyi - so[j] * gyr;
    }
  }
}

template <bool kNotebook, typename T>
void backward_kernel(const Layout& lay, const Params<T>& p, const T* x, const T* h0, const T* hs, const T* g_out,
                     bool real_only, T* g_x, T* g_h0, std::vector<Grads<T>>& grads, int64_t batch, int64_t steps,
                     int64_t threads) {
  const int64_t n = p.n, inputs = p.inputs, out_width = real_only ? n : 2 * n;
  const T* beta = p.beta.data();
  const T shift = p.modrelu_shift;
  run_chunks(batch, static_cast<int64_t>(grads.size()), threads, [&](int64_t chunk, int64_t first, int64_t last) {
    Grads<T>& g = grads[chunk];
    std::vector<T> buf(5 * n);
    T *re = buf.data(), *im = re + n, *gr = im + n, *gi = gr + n, *xp = gi + n;
    for (int64_t b = first; b < last; ++b) {
      std::fill(gr, gr + 2 * n, T(0));  // dL/dh_t carried from step t + 1
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* go = g_out + (b * steps + t) * out_width;
        to_internal<T, true>(lay, go, gr);
        if (!real_only) to_internal<T, true>(lay, go + n, gi);
        const T* prev = t > 0 ? hs + (b * steps + t - 1) * 2 * n : (h0 ? h0 + b * 2 * n : nullptr);
        if (prev) {
          to_internal(lay, prev, re);
          to_internal(lay, prev + n, im);
        } else {
          std::fill(re, re + 2 * n, T(0));
        }
        apply_unitary(lay, p, re, im);  // U h_{t-1}
        const T* xt = x + (b * steps + t) * inputs;
        std::fill(xp, xp + n, T(0));
        add_input(p, xt, xp);
        T* gbeta = g.beta.data();
        T* gb = g.b_in.data();
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          gbeta[j] += modrelu_backward<kNotebook>(re[j] + xp[j], im[j], beta[j], shift, gr[j], gi[j]);  // dL/dz
          gb[j] += gr[j];
        }
        T* gw = g.w.data();
        if (inputs == 1) {
          const T x0 = xt[0];
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) gw[j] += gr[j] * x0;
        } else {
          for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < inputs; ++i) gw[j * inputs + i] += gr[j] * xt[i];
        }
        if (g_x) {
          T* gxt = g_x + (b * steps + t) * inputs;
          for (int64_t i = 0; i < inputs; ++i) {
            T acc = 0;
            for (int64_t j = 0; j < n; ++j) acc += p.w[j * inputs + i] * gr[j];
            gxt[i] = acc;
          }
        }
        unitary_backward(lay, p, re, im, gr, gi, g);  // (gr, gi) is now dL/dh_{t-1} through U
      }
      if (g_h0) {
        to_natural(lay, gr, g_h0 + b * 2 * n);
        to_natural(lay, gi, g_h0 + b * 2 * n + n);
      }
    }
  });
}

void check_inputs(const torch::Tensor& x, const torch::Tensor& w, int64_t n) {
  TORCH_CHECK(x.device().is_cpu(), "the fused EURNN kernel runs on CPU tensors only");
  TORCH_CHECK(x.dim() == 3, "x must be (batch, steps, inputs)");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == n && w.size(1) == x.size(2), "W must be (hidden, inputs)");
}

// notebook, eps: the modReLU's form and epsilon (see modrelu_shift).
torch::Tensor forward(torch::Tensor x, torch::Tensor w, torch::Tensor b_in, torch::Tensor theta, torch::Tensor phi,
                      torch::Tensor omega, torch::Tensor beta, bool notebook, double eps,
                      c10::optional<torch::Tensor> h0, torch::Tensor perm, torch::Tensor segments,
                      torch::Tensor layers, int64_t threads) {
  Layout lay = read_layout(perm, segments, layers);
  check_inputs(x, w, lay.n);
  x = x.contiguous();
  torch::Tensor h0c = h0 ? h0->contiguous() : torch::Tensor();
  const int64_t batch = x.size(0), steps = x.size(1);
  auto hs = torch::empty({batch, steps, 2 * lay.n}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "eurnn_fused_forward", [&] {
    auto p = read_params<scalar_t>(lay, w, b_in, theta, phi, omega, beta, notebook, eps);
    pybind11::gil_scoped_release no_gil;
    with_modrelu_form(notebook, [&](auto form) {
      forward_kernel<decltype(form)::value>(lay, p, x.data_ptr<scalar_t>(),
                                            h0c.defined() ? h0c.data_ptr<scalar_t>() : nullptr,
                                            hs.data_ptr<scalar_t>(), batch, steps, threads);
    });
  });
  return hs;
}

// Returns dL/dx (undefined unless asked), dL/dW, dL/db, dL/dtheta, dL/dphi, dL/domega, dL/dbeta, dL/dh0.
std::vector<torch::Tensor> backward(torch::Tensor g_out, torch::Tensor x, torch::Tensor w, torch::Tensor b_in,
                                    torch::Tensor theta, torch::Tensor phi, torch::Tensor omega, torch::Tensor beta,
                                    bool notebook, double eps, c10::optional<torch::Tensor> h0, torch::Tensor hs,
                                    torch::Tensor perm, torch::Tensor segments, torch::Tensor layers, bool real_only,
                                    bool need_x, int64_t threads) {
  Layout lay = read_layout(perm, segments, layers);
  check_inputs(x, w, lay.n);
  x = x.contiguous();
  g_out = g_out.contiguous();
  hs = hs.contiguous();
  torch::Tensor h0c = h0 ? h0->contiguous() : torch::Tensor();
  const int64_t batch = x.size(0), steps = x.size(1), n = lay.n, inputs = x.size(2);
  TORCH_CHECK(g_out.size(2) == (real_only ? n : 2 * n), "gradient of the output has the wrong width");
  torch::Tensor g_x = need_x ? torch::empty_like(x) : torch::Tensor();
  torch::Tensor g_h0 = h0c.defined() ? torch::empty_like(h0c) : torch::Tensor();
  auto opts = x.options();
  torch::Tensor g_w = torch::zeros({n, inputs}, opts), g_b = torch::zeros({n}, opts);
  torch::Tensor g_theta = torch::zeros_like(theta), g_phi = torch::zeros_like(phi);
  torch::Tensor g_omega = torch::zeros_like(omega), g_beta = torch::zeros({n}, opts);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "eurnn_fused_backward", [&] {
    auto p = read_params<scalar_t>(lay, w, b_in, theta, phi, omega, beta, notebook, eps);
    const int64_t grad_values = 2 * p.mixers + (p.has_omega ? 3 : 2) * n + n * inputs;
    const int64_t chunks = chunk_count(batch, grad_values, sizeof(scalar_t));
    std::vector<Grads<scalar_t>> grads(chunks, Grads<scalar_t>(p));
    {
      pybind11::gil_scoped_release no_gil;
      with_modrelu_form(notebook, [&](auto form) {
        backward_kernel<decltype(form)::value>(
            lay, p, x.data_ptr<scalar_t>(), h0c.defined() ? h0c.data_ptr<scalar_t>() : nullptr,
            hs.data_ptr<scalar_t>(), g_out.data_ptr<scalar_t>(), real_only, need_x ? g_x.data_ptr<scalar_t>() : nullptr,
            g_h0.defined() ? g_h0.data_ptr<scalar_t>() : nullptr, grads, batch, steps, threads);
      });
    }
    // Sum the chunks in order and put units back in their natural order.
    scalar_t *gw = g_w.data_ptr<scalar_t>(), *gb = g_b.data_ptr<scalar_t>(), *gbe = g_beta.data_ptr<scalar_t>();
    scalar_t *gth = g_theta.data_ptr<scalar_t>(), *gph = g_phi.data_ptr<scalar_t>();
    scalar_t* gom = p.has_omega ? g_omega.data_ptr<scalar_t>() : nullptr;
    for (const auto& g : grads) {
      for (int64_t m = 0; m < p.mixers; ++m) {
        gth[m] += g.theta[m];
        gph[m] += g.phi[m];
      }
      for (int64_t j = 0; j < n; ++j) {
        int64_t u = lay.perm[j];
        gb[u] += g.b_in[j];
        gbe[u] += g.beta[j];
        if (gom) gom[u] += g.omega[j];
        for (int64_t i = 0; i < inputs; ++i) gw[u * inputs + i] += g.w[j * inputs + i];
      }
    }
  });
  return {g_x, g_w, g_b, g_theta, g_phi, g_omega, g_beta, g_h0};
}

// ---------------------------------------------------------------------------------------------
// The dense path's step loop (DenseRecurrence in eurnn.py): one GEMM per step through ATen, and
// modReLU and its derivative fused into one pass per step instead of a dozen tensor operations.
// Same math and the same saved tensors as the Python loop, which runs where this is not built.
// Unlike the fused kernel, its results depend on the number of threads: the GEMMs are ATen's (MKL
// on x86), which splits sums across threads (float64 at most sizes; float32 at batch 1 and the
// long dL/dM product), as do the dense path's torch operations outside this loop.

// z[t] += [xproj[t], 0]; out = s(z) z, for one step of B rows.
template <bool kNotebook, typename T>
void modrelu_step(T* z, const T* xp, const T* bias, T shift, T* out, int64_t batch, int64_t n) {
  for (int64_t b = 0; b < batch; ++b) {
    T *zr = z + b * 2 * n, *zi = zr + n, *hr = out + b * 2 * n, *hi = hr + n;
    const T* x = xp + b * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      zr[j] += x[j];
      T s = std::max(T(0), T(1) + bias[j] * inv_abs<kNotebook>(zr[j], zi[j], shift));
      hr[j] = s * zr[j];
      hi[j] = s * zi[j];
    }
  }
}

// g_z = dL/dz for one step of B rows, from dL/dh = g_h (carried) + g_out (this step's output,
// rows g_out_row apart; its real half only when real_only); dL/dbias is added to g_bias.
template <bool kNotebook, typename T>
void modrelu_backward_step(const T* z, const T* g_out, int64_t g_out_row, const T* g_h, const T* bias, T shift,
                           T* g_bias, T* g_z, int64_t batch, int64_t n, bool real_only) {
  for (int64_t b = 0; b < batch; ++b) {
    const T *zr = z + b * 2 * n, *zi = zr + n, *gor = g_out + b * g_out_row, *ghr = g_h + b * 2 * n, *ghi = ghr + n;
    const T* goi = real_only ? nullptr : gor + n;
    T *gzr = g_z + b * 2 * n, *gzi = gzr + n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      T gr = ghr[j] + gor[j], gi = goi ? ghi[j] + goi[j] : ghi[j];
      g_bias[j] += modrelu_backward<kNotebook>(zr[j], zi[j], bias[j], shift, gr, gi);
      gzr[j] = gr;
      gzi[j] = gi;
    }
  }
}

std::vector<torch::Tensor> dense_forward(torch::Tensor xproj, torch::Tensor m, torch::Tensor bias, bool notebook,
                                         double eps, torch::Tensor h0) {
  xproj = xproj.contiguous();
  m = m.contiguous();
  const int64_t steps = xproj.size(0), batch = xproj.size(1), n = xproj.size(2);
  auto z = torch::empty({steps, batch, 2 * n}, xproj.options());
  auto hs = torch::empty_like(z);
  torch::Tensor h = h0.contiguous();
  auto be = bias.contiguous();
  for (int64_t t = 0; t < steps; ++t) {
    torch::Tensor zt = z.select(0, t), ht = hs.select(0, t);
    at::mm_out(zt, h, m);
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "eurnn_dense_forward", [&] {
      with_modrelu_form(notebook, [&](auto form) {
        modrelu_step<decltype(form)::value>(zt.data_ptr<scalar_t>(), xproj.select(0, t).data_ptr<scalar_t>(),
                                            be.data_ptr<scalar_t>(), modrelu_shift<scalar_t>(notebook, eps),
                                            ht.data_ptr<scalar_t>(), batch, n);
      });
    });
    h = ht;
  }
  return {z, hs};
}

// Returns dL/dxproj (a view of dL/dz), dL/dM, dL/dbias, dL/dh0.
std::vector<torch::Tensor> dense_backward(torch::Tensor g_out, torch::Tensor z, torch::Tensor hs, torch::Tensor m,
                                          torch::Tensor bias, bool notebook, double eps, torch::Tensor h0,
                                          bool real_only) {
  // g_out often is a transposed view of a (B, T, N) gradient: read it in place (rows of N
  // contiguous values) rather than copy it.
  if (g_out.stride(2) != 1) g_out = g_out.contiguous();
  const int64_t steps = z.size(0), batch = z.size(1), n2 = z.size(2), n = n2 / 2;
  auto g_z = torch::empty_like(z);
  auto g_h = torch::zeros({batch, n2}, z.options());  // dL/dh_t carried from step t + 1
  auto g_bias = torch::zeros({n}, z.options());
  auto m_t = m.t().contiguous();
  auto be = bias.contiguous();
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "eurnn_dense_backward", [&] {
    const scalar_t shift = modrelu_shift<scalar_t>(notebook, eps);
    with_modrelu_form(notebook, [&](auto form) {
      for (int64_t t = steps - 1; t >= 0; --t) {
        modrelu_backward_step<decltype(form)::value>(
            z.select(0, t).data_ptr<scalar_t>(), g_out.select(0, t).data_ptr<scalar_t>(), g_out.stride(1),
            g_h.data_ptr<scalar_t>(), be.data_ptr<scalar_t>(), shift, g_bias.data_ptr<scalar_t>(),
            g_z.select(0, t).data_ptr<scalar_t>(), batch, n, real_only);
        at::mm_out(g_h, g_z.select(0, t), m_t);  // carried to h_{t-1}
      }
    });
  });
  auto g_m = h0.t().mm(g_z.select(0, 0));
  if (steps > 1)  // one (2N, (T-1)B) x ((T-1)B, 2N) matmul for all other steps
    g_m.addmm_(hs.narrow(0, 0, steps - 1).reshape({-1, n2}).t(), g_z.narrow(0, 1, steps - 1).reshape({-1, n2}));
  return {g_z.narrow(2, 0, n), g_m, g_bias, g_h};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "EURNN recurrence, all steps: (B, T, 2N) states [Re h, Im h]");
  m.def("backward", &backward, "gradients of the EURNN recurrence, all steps");
  m.def("dense_forward", &dense_forward, "the dense path's steps: (z, hs), each (T, B, 2N)");
  m.def("dense_backward", &dense_backward, "gradients of the dense path's steps");
}
