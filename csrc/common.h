// Helpers shared by the CPU (.cpp) and CUDA (.cu) kernels.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define RETHINK_HD __host__ __device__ __forceinline__
#else
#define RETHINK_HD inline
#endif
