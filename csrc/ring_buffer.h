// Fixed-capacity ring of float32 rows for experience replay: many writers, lock-free readers.
//
// No pybind11 and no torch here: the Python binding (bindings.cpp) and the ThreadSanitizer stress
// program (csrc/stress/stress_ring.cpp) both include this header unchanged.
//
// Storage
// -------
// One 64-byte-aligned allocation of `capacity` slots. A slot is a 64-bit stamp followed by the row's
// floats, padded to whole cache lines (a 42-float HalfCheetah row: 8 + 168 bytes -> 192, 3 lines;
// a random gather then touches 3 lines per row instead of ~4.6 with a separate stamp array).
//
// Memory-ordering argument (a seqlock per slot, after Boehm, "Can seqlocks get along with
// programming language memory models?", MSPC 2012)
// ------------------------------------------------------------------------------------------------
// Row number g (0, 1, 2, ... in reservation order) lives in slot g % capacity. While it is being
// written the slot's stamp is 2g+1 (odd), once written 2g+2 (even). A slot's stamps only grow, so a
// value is never seen twice (no ABA).
//
// Writer of row g:
//   W1. CAS the stamp from an even value older than 2g+2 to 2g+1 (acquire). This serialises writers
//       that meet in one slot (one lapping another). If the stamp says a newer row already landed
//       there, row g is stale and is skipped. The acquire synchronises with the W4 of the row
//       written there before, so this writer's W3 stores come after that row's in every word's
//       modification order: without it C11 lets the older row's words win over the newer ones
//       (the model checker counts such stores as unordered writes).
//   W2. atomic_thread_fence(release).
//   W3. Store the row's words with relaxed atomic stores.
//   W4. Store the stamp 2g+2 (release).
// Reader of a slot:
//   R1. before = stamp.load(acquire); if odd, a writer is inside: spin and retry.
//   R2. Load the row's words with relaxed atomic loads into private memory.
//   R3. atomic_thread_fence(acquire).
//   R4. after = stamp.load(relaxed); if after != before, retry.
// Why a torn copy cannot pass R4: if some load in R2 read a word stored in W3 by a later writer W,
// then W's release fence (W2) synchronises with our acquire fence (R3), so W's CAS (W1, sequenced
// before W2) happens-before R4, which by coherence reads W's odd stamp or a later one: not `before`.
// Conversely R1 synchronises with the W4 that wrote `before`, so no word older than that row can be
// read. Every shared word is accessed atomically, so there is no data race in the C++ memory model.
// On x86 all of these are plain moves; words move as 64-bit loads and stores.
//
// How this is checked: every operation goes through csrc/atomics.h and carries its label above.
// tests/test_replay_model.py builds the ring with -DSYNTHER_MODEL_CHECK under a C11 memory-model
// checker (csrc/model_check/c11_model.h: random interleavings, loads returning any value coherence
// and happens-before allow, vector clocks for release/acquire, fences and release sequences) and
// requires: no torn or unwritten row and no unordered write as written, and a failure when any of
// W1, W2, W4, R1, R3 or publish is weakened to relaxed (a fence: removed). ThreadSanitizer (tests/test_replay_tsan.py)
// checks the same code under real threads but does not model fences, so it cannot tell whether
// W2/R3 are right; x86 would not show it either. The acquire in size() is not needed by read_row
// (R3 also synchronises with the publishing CAS the size() load read); the checker agrees, and it
// stays as size()'s contract.
//
// Publication: writers reserve a range of row numbers with one fetch_add, write it, then advance
// `published_` from the range start to its end, waiting for earlier ranges to be published first.
// So rows [0, published_) have all been written at least once, and a sampler that draws slots in
// [0, min(published_, capacity)) never meets an empty slot.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>

#include "atomics.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace synther {

constexpr std::size_t kRowAlignment = 64;  // one cache line
constexpr std::size_t kHugePage = std::size_t{2} << 20;

class RingBuffer {
 public:
  RingBuffer(int64_t capacity, int64_t width)
      : capacity_(capacity), width_(width), stride_words_(slot_words(width)) {
    if (capacity <= 0) throw std::invalid_argument("capacity must be positive");
    if (width <= 0) throw std::invalid_argument("row width must be positive");
    const uint64_t cap = static_cast<uint64_t>(capacity);
    const uint64_t stride = static_cast<uint64_t>(stride_words_);
    if (cap > std::numeric_limits<std::size_t>::max() / sizeof(uint32_t) / stride) {
      throw std::invalid_argument("capacity * width overflows the address space");
    }
    std::size_t bytes = cap * stride * sizeof(uint32_t);  // a multiple of kRowAlignment
    // Random row gathers from a large ring miss the TLB on almost every row with 4 KiB pages; ask
    // for transparent huge pages (2 MiB) on large rings. Measured in bench/RESULTS.md.
    std::size_t alignment = kRowAlignment;
    if (bytes >= kHugePage) {
      alignment = kHugePage;
      bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    }
    words_ = static_cast<uint32_t*>(std::aligned_alloc(alignment, bytes));
    if (words_ == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (alignment == kHugePage) madvise(words_, bytes, MADV_HUGEPAGE);  // advice only
#endif
    std::memset(words_, 0, bytes);  // every stamp 0: empty
  }

  ~RingBuffer() { std::free(words_); }
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  int64_t capacity() const { return capacity_; }
  int64_t width() const { return width_; }
  // Distance between consecutive rows, in floats; the row data starts kStampWords into the slot.
  int64_t stride() const { return stride_words_; }
  static constexpr int64_t kStampWords = 2;

  // Rows ever added and published (rows still being written are not counted yet).
  uint64_t total_added() const {
    return atom::load<atom::kAcquire>(&published_, "size") +
           atom::load<atom::kRelaxed>(&added_before_reset_, "size");
  }

  // Number of slots that hold a whole row.
  int64_t size() const {
    return static_cast<int64_t>(std::min<uint64_t>(
        atom::load<atom::kAcquire>(&published_, "size"), static_cast<uint64_t>(capacity_)));
  }

  // Append n rows (row-major, `width` floats each). Safe to call from several threads at once.
  void add(const float* rows, int64_t n) {
    if (n <= 0) return;
    const uint64_t count = static_cast<uint64_t>(n);
    const uint64_t first = atom::fetch_add<atom::kRelaxed>(&reserved_, count, "reserve");
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
    while (!atom::compare_exchange<atom::kRelease, atom::kRelaxed>(&published_, &expected, end,
                                                                 "publish")) {
      expected = first;
      atom::spin_hint(spins);
    }
  }

  // Copy one whole row of `slot` into `out` (seqlock read R1-R4 above).
  void read_row(int64_t slot, float* out) const {
    uint64_t* stamp = stamp_of(slot);
    const uint64_t* pairs = reinterpret_cast<const uint64_t*>(stamp + 1);
    const int64_t n_pairs = width_ / 2;
    unsigned spins = 0;
    for (;;) {
      const uint64_t before = atom::load<atom::kAcquire>(stamp, "R1");
      if (before & 1u) {
        atom::spin_hint(spins);
        continue;
      }
      for (int64_t k = 0; k < n_pairs; ++k) {
        const uint64_t bits = atom::load<atom::kRelaxed>(pairs + k, "R2");
        std::memcpy(out + 2 * k, &bits, sizeof bits);
      }
      if (width_ & 1) {
        const uint32_t* last = reinterpret_cast<const uint32_t*>(pairs + n_pairs);
        const uint32_t bits = atom::load<atom::kRelaxed>(last, "R2");
        std::memcpy(out + width_ - 1, &bits, sizeof bits);
      }
      atom::fence<atom::kAcquire>("R3");
      if (atom::load<atom::kRelaxed>(stamp, "R4") == before) return;
      atom::spin_hint(spins);
    }
  }

  // Start fetching a slot into cache: random gathers are memory-latency bound.
  void prefetch(int64_t slot) const {
    const char* base = reinterpret_cast<const char*>(stamp_of(slot));
    const int64_t bytes = stride_words_ * static_cast<int64_t>(sizeof(uint32_t));
    for (int64_t offset = 0; offset < bytes; offset += kRowAlignment) __builtin_prefetch(base + offset);
  }

  // Copy rows `slots[0..n)` into `out` (row stride `out_width` floats), prefetching ahead.
  void gather(const int64_t* slots, int64_t n, float* out, int64_t out_width) const {
    constexpr int64_t kAhead = 16;  // rows in flight: 4 -> 47 ns/row, 8-24 -> 41 (1M rows)
    for (int64_t i = 0; i < std::min(n, kAhead); ++i) prefetch(slots[i]);
    for (int64_t i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetch(slots[i + kAhead]);
      read_row(slots[i], out + i * out_width);
    }
  }

  // Rows in the order they were added, oldest first: the newest min(n, size()) of them.
  void export_rows(float* out, int64_t n) const {
    const uint64_t published = atom::load<atom::kAcquire>(&published_, "size");
    const uint64_t cap = static_cast<uint64_t>(capacity_);
    const uint64_t held = std::min<uint64_t>(published, cap);
    const uint64_t start = published > cap ? published % cap : 0;
    const uint64_t take = std::min<uint64_t>(held, static_cast<uint64_t>(n));
    const uint64_t first = held - take;
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
    for (int64_t slot = 0; slot < capacity_; ++slot) {
      uint64_t* stamp = stamp_of(slot);
      const uint64_t g = static_cast<uint64_t>(slot);
      if (g < count) {
        std::memcpy(stamp + 1, rows + g * static_cast<uint64_t>(width_), sizeof(float) * width_);
      }
      atom::store<atom::kRelaxed>(stamp, g < count ? 2 * g + 2 : uint64_t{0}, "reset");
    }
    atom::store<atom::kRelaxed>(&added_before_reset_, total_added - count, "reset");
    atom::store<atom::kRelaxed>(&reserved_, count, "reset");
    atom::store<atom::kRelease>(&published_, count, "reset");
  }

  // Raw storage (for zero-copy strided views; not synchronised with writers): slot s's row starts
  // at data() + s * stride().
  float* data() { return reinterpret_cast<float*>(words_ + kStampWords); }

 private:
  static int64_t slot_words(int64_t width) {
    const int64_t words_per_line = static_cast<int64_t>(kRowAlignment / sizeof(uint32_t));
    return (std::max<int64_t>(width, 1) + kStampWords + words_per_line - 1) / words_per_line *
           words_per_line;
  }

  uint64_t* stamp_of(int64_t slot) const {
    return reinterpret_cast<uint64_t*>(words_ + static_cast<uint64_t>(slot) *
                                                    static_cast<uint64_t>(stride_words_));
  }

  void write_row(uint64_t g, const float* src) {
    const int64_t slot = static_cast<int64_t>(g % static_cast<uint64_t>(capacity_));
    uint64_t* stamp = stamp_of(slot);
    const uint64_t writing = 2 * g + 1;
    const uint64_t written = 2 * g + 2;
    uint64_t current = atom::load<atom::kAcquire>(stamp, "W1");
    unsigned spins = 0;
    for (;;) {  // W1
      if (current & 1u) {  // another writer is inside this slot
        atom::spin_hint(spins);
        current = atom::load<atom::kAcquire>(stamp, "W1");
        continue;
      }
      if (current > written) return;  // a newer row already landed here: ours is stale
      if (atom::compare_exchange<atom::kAcquire, atom::kAcquire>(stamp, &current, writing, "W1")) {
        break;
      }
    }
    atom::fence<atom::kRelease>("W2");
    uint64_t* pairs = stamp + 1;
    const int64_t n_pairs = width_ / 2;
    for (int64_t k = 0; k < n_pairs; ++k) {  // W3
      uint64_t bits;
      std::memcpy(&bits, src + 2 * k, sizeof bits);
      atom::store<atom::kRelaxed>(pairs + k, bits, "W3");
    }
    if (width_ & 1) {
      uint32_t bits;
      std::memcpy(&bits, src + width_ - 1, sizeof bits);
      atom::store<atom::kRelaxed>(reinterpret_cast<uint32_t*>(pairs + n_pairs), bits, "W3");
    }
    atom::store<atom::kRelease>(stamp, written, "W4");
  }

  const int64_t capacity_;
  const int64_t width_;
  const int64_t stride_words_;
  uint32_t* words_ = nullptr;
  // Shared counters, accessed only through atom:: (atomics.h).
  alignas(64) uint64_t reserved_ = 0;
  alignas(64) uint64_t published_ = 0;
  uint64_t added_before_reset_ = 0;  // rows counted in total_added but not in the ring
};

}  // namespace synther
