// The cpu device's int8 gemm, around oneDNN's int8 x int8 -> int32 product (torch._int_mm):
//
// quantize_rows: each row of x[T, K] (fp32) as symmetric int8 with its own scale
//   (max |x| / 127), in one pass per row; torch's ops took four passes and two temporaries.
// int8_epilogue: out[T, N] = acc[T, N] * sx[t] * sw[n] (+ bias[n]) (+ residual[t, n]), one
//   pass over the int32 products; torch's ops took three or four.
//
// Plain loops, vectorised by the compiler (-O3 -march=native); rows split over torch's
// own OpenMP threads (at::parallel_for).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>

namespace {

std::tuple<torch::Tensor, torch::Tensor> quantize_rows(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 2, "quantize_rows: x [T, K] float32");
  const torch::Tensor xc = x.contiguous();
  const int64_t T = xc.size(0), K = xc.size(1);
  torch::Tensor q = torch::empty({T, K}, xc.options().dtype(at::kChar));
  torch::Tensor s = torch::empty({T, 1}, xc.options());
  const float* xp = xc.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = s.data_ptr<float>();
  pybind11::gil_scoped_release nogil;
  at::parallel_for(0, T, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* row = xp + t * K;
      float m = 0.f;
      for (int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(row[k]));
      const float scale = std::max(m, 1e-12f) / 127.f;
      const float inv = 1.f / scale;
      int8_t* out = qp + t * K;
      for (int64_t k = 0; k < K; ++k) out[k] = static_cast<int8_t>(std::nearbyint(row[k] * inv));
      sp[t] = scale;
    }
  });
  return {q, s};
}

void int8_epilogue(const torch::Tensor& acc, const torch::Tensor& sx, const torch::Tensor& sw, const c10::optional<torch::Tensor>& bias,
                   const c10::optional<torch::Tensor>& residual, torch::Tensor out) {
  TORCH_CHECK(acc.scalar_type() == at::kInt && acc.dim() == 2 && acc.is_contiguous(), "int8_epilogue: acc [T, N] int32");
  const int64_t T = acc.size(0), N = acc.size(1);
  TORCH_CHECK(sx.scalar_type() == at::kFloat && sx.numel() == T && sx.is_contiguous(), "int8_epilogue: sx [T] float32");
  TORCH_CHECK(sw.scalar_type() == at::kFloat && sw.numel() == N && sw.is_contiguous(), "int8_epilogue: sw [N] float32");
  TORCH_CHECK(out.scalar_type() == at::kFloat && out.size(0) == T && out.size(1) == N && out.stride(1) == 1, "int8_epilogue: out [T, N] float32");
  const float* b = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->numel() == N && bias->is_contiguous(), "int8_epilogue: bias [N] float32");
    b = bias->data_ptr<float>();
  }
  const float* r = nullptr;
  int64_t r_stride = 0;
  if (residual.has_value() && residual->defined()) {
    TORCH_CHECK(residual->scalar_type() == at::kFloat && residual->size(0) == T && residual->size(1) == N && residual->stride(1) == 1,
                "int8_epilogue: residual [T, N] float32");
    r = residual->data_ptr<float>();
    r_stride = residual->stride(0);
  }
  const int32_t* ap = acc.data_ptr<int32_t>();
  const float* xs = sx.data_ptr<float>();
  const float* ws = sw.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t o_stride = out.stride(0);
  pybind11::gil_scoped_release nogil;
  at::parallel_for(0, T, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t* a = ap + t * N;
      float* o = op + t * o_stride;
      const float s = xs[t];
      for (int64_t n = 0; n < N; ++n) o[n] = static_cast<float>(a[n]) * (s * ws[n]);
      if (b)
        for (int64_t n = 0; n < N; ++n) o[n] += b[n];
      if (r) {
        const float* rr = r + t * r_stride;
        for (int64_t n = 0; n < N; ++n) o[n] += rr[n];
      }
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("quantize_rows", &quantize_rows, "x[T, K] float32 -> (int8 [T, K], scales [T, 1]): symmetric, one scale per row", pybind11::arg("x"));
  m.def("int8_epilogue", &int8_epilogue, "out = acc * sx[t] * sw[n] (+ bias) (+ residual), in place", pybind11::arg("acc"), pybind11::arg("sx"),
        pybind11::arg("sw"), pybind11::arg("bias") = pybind11::none(), pybind11::arg("residual") = pybind11::none(), pybind11::arg("out"));
}
