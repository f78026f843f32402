// A fixed pool of worker threads for CPU kernels (`--threads`).
#pragma once
#include <cstdint>
#include <functional>

namespace ditkit {

// 0 = all hardware threads. Also sets OpenBLAS's thread count.
void set_num_threads(int n);
int num_threads();

// Splits [begin, end) into chunks of at least `grain` items and runs fn(chunk_begin, chunk_end)
// on the pool; the calling thread takes part. Nested calls run serially. Exceptions propagate.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace ditkit
