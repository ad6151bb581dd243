// sign(x) in {-1, +1} with the clipped straight-through estimator, one pass each way (cpnas.signext).
//
// The same function as cpnas.binary's torch form, bit for bit:
//   forward   out = copysign(1, x + 0)   (+0.0 and -0.0 give +1; a NaN gives the sign of its sign bit)
//   backward  gx  = |x| <= 1 ? g : +0    (a NaN x gives +0, as aten::hardtanh_backward(g, x, -(1+eps), 1+eps))
// The torch form is two passes forward (x + 0, then copysign against a 0-dim tensor); here the forward is
// one pass and the backward one pass, in an autograd Function in C++, so neither goes through Python.
// (A variant saving a 1-byte mask |x| <= 1 instead of x measured 10-50 % slower than this one on an
// AVX-512 CPU, for 64x{16..64}x{8..32}^2 inputs in both memory formats, and was left out.) Loops are written for the compiler's vectorizer (built -O3 -march=native on the machine that
// runs them) and split over torch's intra-op threads (at::parallel_for).
//
// Only dense (non-overlapping) CPU float32/float64 tensors take the flat loops; anything else is handled
// by the same torch ops as the torch form.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t GRAIN = 1 << 15;  // elements per task: below this one thread does the whole tensor

bool flat(const at::Tensor& t) {
  return t.device().is_cpu() && t.is_non_overlapping_and_dense() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

template <typename T>
void sign_loop(const T* __restrict x, T* __restrict out, int64_t n) {
  at::parallel_for(0, n, GRAIN, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = std::copysign(T(1), x[i] + T(0));
  });
}

template <typename T>
void ste_loop(const T* __restrict g, const T* __restrict x, T* __restrict out, int64_t n) {
  at::parallel_for(0, n, GRAIN, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gv = g[i];  // loaded unconditionally, so the loop vectorizes to a compare and a blend
      out[i] = std::abs(x[i]) <= T(1) ? gv : T(0);  // NaN x: +0, as hardtanh_backward
    }
  });
}

at::Tensor torch_sign(const at::Tensor& x) {
  return at::copysign(at::ones({}, x.options()), x + 0.0);
}

at::Tensor torch_ste(const at::Tensor& g, const at::Tensor& x) {
  const double bound = 1.0 + (x.scalar_type() == at::kDouble ? std::numeric_limits<double>::epsilon()
                                                             : (double)std::numeric_limits<float>::epsilon());
  return at::hardtanh_backward(g, x, -bound, bound);
}

// x's values laid out exactly as `like` (dense), copying only if the strides differ
at::Tensor as_layout(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides() && t.is_non_overlapping_and_dense() && t.scalar_type() == like.scalar_type())
    return t;
  at::Tensor out = at::empty_like(like);
  out.copy_(t);
  return out;
}

at::Tensor sign_forward(const at::Tensor& x) {
  if (!flat(x)) return torch_sign(x);
  at::Tensor out = at::empty_like(x);  // a dense input's strides are kept
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sign_forward", [&] {
    sign_loop<scalar_t>(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), x.numel());
  });
  return out;
}

at::Tensor ste_backward(const at::Tensor& grad, const at::Tensor& x) {
  if (!flat(x) || !grad.device().is_cpu() || grad.scalar_type() != x.scalar_type()) return torch_ste(grad, x);
  at::Tensor g = as_layout(grad, x);
  at::Tensor out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ste_backward", [&] {
    ste_loop<scalar_t>(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), x.numel());
  });
  return out;
}

struct SignSTE : public torch::autograd::Function<SignSTE> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return sign_forward(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {ste_backward(grads[0], saved[0])};
  }
};

at::Tensor sign_ste(const at::Tensor& x) { return SignSTE::apply(x); }

std::string simd_path() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "portable";
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sign_ste", &sign_ste, "sign(x) in {-1,+1} (copysign(1, x + 0)), clipped STE backward; saves x");
  m.def("sign_forward", &sign_forward, "copysign(1, x + 0) in one pass (no autograd)");
  m.def("ste_backward", &ste_backward, "g where |x| <= 1 else +0 (NaN x: +0), one pass (no autograd)");
  m.def("simd_path", &simd_path, "the vector instruction set compiled for");
}
