// The shared main of the benchmark programs: registers each benchmark for the CPU and, when a
// GPU is present, for CUDA, then runs Google Benchmark.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdio>

#include "core/backend.h"
#include "core/device.h"
#include "core/threadpool.h"

namespace ditkit::bench {

// Waits for queued GPU work so that timings cover it.
inline void sync(Device d) {
#ifdef DITKIT_WITH_CUDA
  if (d.is_cuda()) cuda::synchronize();
#else
  (void)d;
#endif
}

inline int run_benchmarks(int argc, char** argv, void (*register_all)(Device)) {
  register_all(Device::cpu());
  if (cuda_available()) {
    register_all(Device::cuda(0));
  } else {
    std::printf("no CUDA GPU: CUDA variants not registered\n");
  }
  std::printf("CPU threads: %d\n", num_threads());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace ditkit::bench
