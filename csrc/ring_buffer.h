// Fixed-capacity ring of float32 rows for experience replay: many writers, lock-free readers.
//
// No pybind11 and no torch here: the Python binding (bindings.cpp) and the ThreadSanitizer stress
// program (csrc/stress/stress_ring.cpp) both include this header unchanged.
//
// Memory-ordering argument
// ------------------------
// Every row slot has a 64-bit stamp. Row number g (0, 1, 2, ... in reservation order) lives in slot
// g % capacity; while it is being written the slot's stamp is 2g+1 (odd), once written 2g+2 (even).
// A slot's stamps only grow, so a stamp value is never seen twice (no ABA).
//
// Writer of row g:
//   1. CAS the stamp from an even value older than 2g+2 to 2g+1 (acquire): this serialises writers
//      that meet in one slot (a writer lapping another) and orders us after the previous writer.
//      If the stamp already says a newer row landed there, row g is stale and is skipped.
//   2. Store every 32-bit word of the row with memory_order_release.
//   3. Store the stamp 2g+2 with memory_order_release.
//
// Reader of a slot (a seqlock read):
//   1. before = stamp.load(acquire); if odd, a writer is inside: spin and retry.
//   2. Load every word with memory_order_acquire into private memory.
//   3. after = stamp.load(relaxed) (it cannot move above the acquire loads of step 2).
//   4. If after == before the copy is one whole row; otherwise retry.
// Why a torn copy cannot pass: if any word in step 2 came from a later writer W, that word's release
// store is sequenced after W's CAS in its step 1, so W's CAS happens-before our step 3 and, by
// coherence, step 3 reads W's odd stamp or something later, which differs from `before`. If instead
// every word is at least as old as the row stamped `before`: the acquire in step 1 synchronises with
// that row's release in writer step 3, so no word can be older than it either. Data words are
// atomics, so there is no data race in the C++ memory model (ThreadSanitizer checks this in
// tests/test_replay_tsan.py). On x86 all of these compile to plain moves.
//
// Publication: writers reserve a range of row numbers with one fetch_add, write it, then advance
// `published_` from the range start to its end, waiting for earlier ranges to be published first.
// So rows [0, published_) have all been written at least once, and a sampler that draws slots in
// [0, min(published_, capacity)) never meets an empty slot.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>

namespace synther {

constexpr std::size_t kRowAlignment = 64;  // one cache line

inline void cpu_relax(unsigned& spins) {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    spins = 0;
    std::this_thread::yield();  // on 2 cores the thread we wait for may be descheduled
  }
}

inline uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

class RingBuffer {
 public:
  RingBuffer(int64_t capacity, int64_t width) : capacity_(capacity), width_(width) {
    if (capacity <= 0) throw std::invalid_argument("capacity must be positive");
    if (width <= 0) throw std::invalid_argument("row width must be positive");
    const uint64_t words = static_cast<uint64_t>(capacity) * static_cast<uint64_t>(width);
    if (words / static_cast<uint64_t>(width) != static_cast<uint64_t>(capacity) ||
        words > std::numeric_limits<std::size_t>::max() / sizeof(uint32_t) - kRowAlignment) {
      throw std::invalid_argument("capacity * width overflows the address space");
    }
    std::size_t bytes = words * sizeof(uint32_t);
    bytes = (bytes + kRowAlignment - 1) / kRowAlignment * kRowAlignment;
    words_ = static_cast<uint32_t*>(std::aligned_alloc(kRowAlignment, bytes));
    if (words_ == nullptr) throw std::bad_alloc();
    std::memset(words_, 0, bytes);
    stamps_.reset(new std::atomic<uint64_t>[static_cast<std::size_t>(capacity)]);
    for (int64_t i = 0; i < capacity; ++i) stamps_[i].store(0, std::memory_order_relaxed);
  }

  ~RingBuffer() { std::free(words_); }
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  int64_t capacity() const { return capacity_; }
  int64_t width() const { return width_; }

  // Rows ever added and published (rows still being written are not counted yet).
  uint64_t total_added() const {
    return published_.load(std::memory_order_acquire) +
           added_before_reset_.load(std::memory_order_relaxed);
  }

  // Number of slots that hold a whole row.
  int64_t size() const {
    return static_cast<int64_t>(std::min<uint64_t>(published_.load(std::memory_order_acquire),
                                                   static_cast<uint64_t>(capacity_)));
  }

  // Append n rows (row-major, `width` floats each). Safe to call from several threads at once.
  void add(const float* rows, int64_t n) {
    if (n <= 0) return;
    const uint64_t count = static_cast<uint64_t>(n);
    const uint64_t first = reserved_.fetch_add(count, std::memory_order_relaxed);
    const uint64_t end = first + count;
    // Of one batch larger than the ring only its newest `capacity` rows can survive it.
    const uint64_t cap = static_cast<uint64_t>(capacity_);
    const uint64_t skip = count > cap ? count - cap : 0;
    for (uint64_t g = first + skip; g < end; ++g) {
      write_row(g, rows + (g - first) * static_cast<uint64_t>(width_));
    }
    // Publish in reservation order so that [0, published_) has no holes.
    unsigned spins = 0;
    uint64_t expected = first;
    while (!published_.compare_exchange_weak(expected, end, std::memory_order_release,
                                             std::memory_order_relaxed)) {
      expected = first;
      cpu_relax(spins);
    }
  }

  // Copy one whole row of `slot` into `out` (seqlock read; see the argument above).
  void read_row(int64_t slot, float* out) const {
    const std::atomic<uint64_t>& stamp = stamps_[slot];
    const uint32_t* src = words_ + static_cast<uint64_t>(slot) * static_cast<uint64_t>(width_);
    unsigned spins = 0;
    for (;;) {
      const uint64_t before = stamp.load(std::memory_order_acquire);
      if (before & 1u) {
        cpu_relax(spins);
        continue;
      }
      for (int64_t k = 0; k < width_; ++k) {
        out[k] = bits_float(__atomic_load_n(src + k, __ATOMIC_ACQUIRE));
      }
      if (stamp.load(std::memory_order_relaxed) == before) return;
      cpu_relax(spins);
    }
  }

  // Rows in the order they were added, oldest first (n <= size()); each row read whole.
  void export_rows(float* out, int64_t n) const {
    const uint64_t published = published_.load(std::memory_order_acquire);
    const uint64_t cap = static_cast<uint64_t>(capacity_);
    const uint64_t held = std::min<uint64_t>(published, cap);
    const uint64_t start = published > cap ? published % cap : 0;
    const uint64_t take = std::min<uint64_t>(held, static_cast<uint64_t>(n));
    const uint64_t first = held - take;  // keep the newest `take` rows
    for (uint64_t i = 0; i < take; ++i) {
      const uint64_t slot = (start + first + i) % cap;
      read_row(static_cast<int64_t>(slot), out + i * static_cast<uint64_t>(width_));
    }
  }

  // Replace the whole content with `rows` (oldest first, n <= capacity) and report `total_added`
  // rows ever added. Not safe against concurrent writers or readers: used when restoring a saved
  // buffer before it is shared.
  void reset(const float* rows, int64_t n, uint64_t total_added) {
    const uint64_t count = static_cast<uint64_t>(n);
    if (n < 0 || n > capacity_ || count > total_added) {
      throw std::invalid_argument("reset: need 0 <= rows <= capacity and rows <= total_added");
    }
    std::memcpy(words_, rows, sizeof(float) * count * static_cast<uint64_t>(width_));
    for (int64_t s = 0; s < capacity_; ++s) {
      const uint64_t slot = static_cast<uint64_t>(s);
      stamps_[s].store(slot < count ? 2 * slot + 2 : 0, std::memory_order_relaxed);
    }
    added_before_reset_.store(total_added - count, std::memory_order_relaxed);
    reserved_.store(count, std::memory_order_relaxed);
    published_.store(count, std::memory_order_release);
  }

  // Raw storage in slot order, for zero-copy views (not synchronised with writers).
  float* data() { return reinterpret_cast<float*>(words_); }

 private:
  void write_row(uint64_t g, const float* src) {
    const uint64_t slot = g % static_cast<uint64_t>(capacity_);
    std::atomic<uint64_t>& stamp = stamps_[slot];
    const uint64_t writing = 2 * g + 1;
    const uint64_t written = 2 * g + 2;
    uint64_t current = stamp.load(std::memory_order_acquire);
    unsigned spins = 0;
    for (;;) {
      if (current & 1u) {  // another writer is inside this slot
        cpu_relax(spins);
        current = stamp.load(std::memory_order_acquire);
        continue;
      }
      if (current > written) return;  // a newer row already landed here: ours is stale
      if (stamp.compare_exchange_weak(current, writing, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        break;
      }
    }
    uint32_t* dst = words_ + slot * static_cast<uint64_t>(width_);
    for (int64_t k = 0; k < width_; ++k) {
      __atomic_store_n(dst + k, float_bits(src[k]), __ATOMIC_RELEASE);
    }
    stamp.store(written, std::memory_order_release);
  }

  const int64_t capacity_;
  const int64_t width_;
  uint32_t* words_ = nullptr;  // floats stored as their bits so every access can be atomic
  std::unique_ptr<std::atomic<uint64_t>[]> stamps_;
  alignas(64) std::atomic<uint64_t> reserved_{0};
  alignas(64) std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> added_before_reset_{0};  // rows counted in total_added but not in the ring
};

}  // namespace synther
