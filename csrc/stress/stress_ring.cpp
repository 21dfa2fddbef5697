// Stress program for the ring's seqlock, built by tests/test_replay_tsan.py with
// -fsanitize=thread. Writers add rows whose every word carries the row's sequence number; readers
// sample through MixedSampler and count rows whose words disagree (torn rows). Exit code 0 means no
// torn row; ThreadSanitizer reports any data race on stderr.
//
// With -DSTRESS_UNSYNCHRONISED_READ the readers instead copy rows with plain loads from the raw
// storage: a real data race, which the test requires ThreadSanitizer to report (this shows the
// race detection is live).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "mixed_sampler.h"
#include "ring_buffer.h"

int main(int argc, char** argv) {
  const int64_t capacity = 16, width = 21;  // small ring: writers lap each other constantly
  const int writers = 2, readers = 2;
  const int64_t rows_per_reader = argc > 1 ? std::atoll(argv[1]) : 20000;
  auto ring = std::make_shared<synther::RingBuffer>(capacity, width);
  {
    std::vector<float> seed_rows(capacity * width, 0.0f);
    for (int64_t i = 0; i < capacity; ++i)
      for (int64_t k = 0; k < width; ++k) seed_rows[i * width + k] = static_cast<float>(i + 1);
    ring->add(seed_rows.data(), capacity);
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> torn{0}, sampled{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::vector<float> rows(3 * width);
      float next = static_cast<float>(1000000 * (w + 1));
      while (!stop.load(std::memory_order_relaxed)) {
        for (int64_t i = 0; i < 3; ++i, next += 1.0f)
          for (int64_t k = 0; k < width; ++k) rows[i * width + k] = next;
        ring->add(rows.data(), 3);
      }
    });
  }
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      synther::MixedSampler sampler(ring, nullptr, 0.0, 32, 100 + r);
      std::vector<float> out(32 * width);
      for (int64_t done = 0; done < rows_per_reader; done += 32) {
#ifdef STRESS_UNSYNCHRONISED_READ
        for (int64_t i = 0; i < 32; ++i) {
          const float* row = ring->data() + ((done + i) % capacity) * ring->stride();
          for (int64_t k = 0; k < width; ++k) out[i * width + k] = row[k];  // plain loads
        }
#else
        sampler.sample(out.data(), width);
#endif
        for (int64_t i = 0; i < 32; ++i)
          for (int64_t k = 1; k < width; ++k)
            if (out[i * width + k] != out[i * width]) {
              torn.fetch_add(1);
              break;
            }
        sampled.fetch_add(32);
      }
    });
  }
  for (int r = 0; r < readers; ++r) threads[writers + r].join();
  stop.store(true);
  for (int w = 0; w < writers; ++w) threads[w].join();
  std::printf("sampled %lld rows, torn %lld, total added %llu\n",
              static_cast<long long>(sampled.load()), static_cast<long long>(torn.load()),
              static_cast<unsigned long long>(ring->total_added()));
  return torn.load() == 0 ? 0 : 1;
}
