// The pybind11 module rethink._C. Ops themselves are registered with the PyTorch
// dispatcher (TORCH_LIBRARY_FRAGMENT(rethink, m) in csrc/cpu/*.cpp, implementations in
// TORCH_LIBRARY_IMPL blocks); this file only exposes how the extension was built.
#include <torch/extension.h>

#include "randomized_batch.h"

#include <string>
#include <vector>

#ifndef RETHINK_TORCH_VERSION
#define RETHINK_TORCH_VERSION "unknown"
#endif

namespace {

#ifdef RETHINK_WITH_CUDA
std::vector<std::string> split_archs(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ';') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}
#endif

pybind11::dict build_info() {
  pybind11::dict d;
  d["torch"] = std::string(RETHINK_TORCH_VERSION);
#ifdef RETHINK_WITH_CUDA
  d["cuda"] = std::string(RETHINK_CUDA_VERSION);
  d["cuda_kernels"] = true;
  d["cuda_archs"] = split_archs(RETHINK_CUDA_ARCHS);
#else
  d["cuda"] = pybind11::none();
  d["cuda_kernels"] = false;
  d["cuda_archs"] = std::vector<std::string>{};
#endif
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
  return d;
}

std::vector<std::string> batch_fields() {
  std::vector<std::string> out;
  for (int f = 0; f < rethink::kNumBatchFields; ++f) out.emplace_back(rethink::kBatchFieldNames[f]);
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "rethink's C++/CUDA kernels (ops live under torch.ops.rethink)";
  m.def("build_info", &build_info, "How this extension was built: torch, cuda, cuda_kernels, cuda_archs");
  m.def("batch_fields", &batch_fields,
        "Names of the integers in randomized_batch's `config` argument, in order (csrc/randomized_batch.h)");
  m.attr("max_rotation") = rethink::kMaxRotation;
  m.attr("max_stat_channels") = rethink::kMaxChannels;
  // The kernels' enums by name, so that Python never restates their integers.
  pybind11::dict pixel_modes;
  pixel_modes["none"] = static_cast<int>(rethink::kPixelNone);
  pixel_modes["shuffled_pixels"] = static_cast<int>(rethink::kShuffledPixels);
  pixel_modes["shuffled_values"] = static_cast<int>(rethink::kShuffledValues);
  pixel_modes["random_pixels"] = static_cast<int>(rethink::kRandomPixels);
  pixel_modes["random_values"] = static_cast<int>(rethink::kRandomValues);
  pixel_modes["gaussian"] = static_cast<int>(rethink::kGaussian);
  m.attr("pixel_modes") = pixel_modes;
  pybind11::dict normalize_modes;
  normalize_modes["none"] = static_cast<int>(rethink::Normalize::kNone);
  normalize_modes["per_image"] = static_cast<int>(rethink::Normalize::kPerImage);
  normalize_modes["per_channel"] = static_cast<int>(rethink::Normalize::kPerChannel);
  m.attr("normalize_modes") = normalize_modes;
}
