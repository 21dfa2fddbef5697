// Mixed real/synthetic batch sampling from two RingBuffers, with a seedable, saveable RNG.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ring_buffer.h"

namespace synther {

// xoshiro256** (Blackman & Vigna): small state (4 words) that is easy to save and restore.
class Xoshiro256 {
 public:
  using State = std::array<uint64_t, 4>;

  explicit Xoshiro256(uint64_t seed) {
    // splitmix64 expands the seed so that nearby seeds give unrelated streams.
    for (auto& word : state_) {
      seed += 0x9E3779B97F4A7C15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      word = z ^ (z >> 31);
    }
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Unbiased integer in [0, n) (Lemire's multiply-and-reject method), n > 0.
  uint64_t below(uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  const State& state() const { return state_; }
  void set_state(const State& state) {
    if (state[0] == 0 && state[1] == 0 && state[2] == 0 && state[3] == 0) {
      throw std::invalid_argument("an all-zero xoshiro256 state is invalid");
    }
    state_ = state;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  State state_;
};

// Each batch: floor(ratio * B) synthetic rows first, then real rows (the published int(B * ratio)).
// With ratio < 1 and too few synthetic rows the batch is all real, as the published code does; a
// synthetic-only sampler (ratio 1) raises instead, so it never trains on real data by accident.
class MixedSampler {
 public:
  MixedSampler(std::shared_ptr<RingBuffer> real, std::shared_ptr<RingBuffer> synthetic,
               double ratio, int64_t batch_size, uint64_t seed)
      : real_(std::move(real)),
        synthetic_(std::move(synthetic)),
        ratio_(ratio),
        batch_size_(batch_size),
        synthetic_share_(static_cast<int64_t>(static_cast<double>(batch_size) * ratio)),
        rng_(seed) {
    if (!(ratio >= 0.0 && ratio <= 1.0)) throw std::invalid_argument("ratio must lie in [0, 1]");
    if (batch_size <= 0) throw std::invalid_argument("batch_size must be positive");
    if (synthetic_share_ > 0 && !synthetic_) {
      throw std::invalid_argument("ratio > 0 needs a synthetic buffer");
    }
    if (synthetic_share_ < batch_size && !real_) {
      throw std::invalid_argument("ratio < 1 needs a real buffer");
    }
    if (real_ && synthetic_ && real_->width() != synthetic_->width()) {
      throw std::invalid_argument("real and synthetic buffers have different row widths");
    }
  }

  int64_t width() const { return real_ ? real_->width() : synthetic_->width(); }
  int64_t batch_size() const { return batch_size_; }
  double ratio() const { return ratio_; }
  int64_t synthetic_share() const { return synthetic_share_; }

  // Fill `out` (batch_size rows, `out_width` >= width floats each; extra columns are zeroed).
  // Returns how many leading rows are synthetic. Throws before drawing anything if it cannot serve.
  int64_t sample(float* out, int64_t out_width) {
    const int64_t width = this->width();
    const int64_t synthetic_rows = synthetic_ ? synthetic_->size() : 0;
    int64_t n_synthetic = synthetic_share_;
    if (synthetic_rows < n_synthetic) {
      if (synthetic_share_ == batch_size_) {
        throw std::runtime_error("synthetic-only sampling (ratio 1) needs at least " +
                                 std::to_string(synthetic_share_) +
                                 " synthetic rows; the synthetic buffer holds " +
                                 std::to_string(synthetic_rows));
      }
      n_synthetic = 0;  // the published fallback: an all-real batch
    }
    const int64_t real_rows = real_ ? real_->size() : 0;
    if (n_synthetic < batch_size_ && real_rows == 0) {
      throw std::runtime_error("cannot sample: the real buffer is empty");
    }
    // Draw every index first (synthetic rows, then real rows), then gather with prefetching.
    slots_.resize(static_cast<std::size_t>(batch_size_));
    for (int64_t i = 0; i < n_synthetic; ++i) {
      slots_[i] = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(synthetic_rows)));
    }
    for (int64_t i = n_synthetic; i < batch_size_; ++i) {
      slots_[i] = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(real_rows)));
    }
    if (n_synthetic > 0) synthetic_->gather(slots_.data(), n_synthetic, out, out_width);
    if (n_synthetic < batch_size_) {
      real_->gather(slots_.data() + n_synthetic, batch_size_ - n_synthetic,
                    out + n_synthetic * out_width, out_width);
    }
    if (out_width > width) {
      for (int64_t i = 0; i < batch_size_; ++i) {
        std::fill(out + i * out_width + width, out + (i + 1) * out_width, 0.0f);
      }
    }
    return n_synthetic;
  }

  const Xoshiro256::State& rng_state() const { return rng_.state(); }
  void set_rng_state(const Xoshiro256::State& state) { rng_.set_state(state); }

 private:
  std::shared_ptr<RingBuffer> real_;
  std::shared_ptr<RingBuffer> synthetic_;
  const double ratio_;
  const int64_t batch_size_;
  const int64_t synthetic_share_;
  Xoshiro256 rng_;
  std::vector<int64_t> slots_;  // scratch: this batch's drawn slots
};

// First non-finite value in a row-major (n, width) block, as (row, column); (-1, -1) if none.
inline std::pair<int64_t, int64_t> find_nonfinite(const float* rows, int64_t n, int64_t width) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = rows + i * width;
    float acc = 0.0f;
    for (int64_t k = 0; k < width; ++k) acc += row[k] * 0.0f;  // NaN iff some value is NaN or inf
    if (acc != acc) {
      for (int64_t k = 0; k < width; ++k) {
        if (!(row[k] - row[k] == 0.0f)) return {i, k};
      }
    }
  }
  return {-1, -1};
}

}  // namespace synther
