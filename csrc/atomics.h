// The atomic operations the replay ring uses, each named by its site in the ring's
// memory-ordering argument (W1-W4, R1-R4, ... in ring_buffer.h).
//
// In a normal build each one is the GCC/Clang __atomic builtin with the order fixed at compile
// time: the same instructions as before this header existed. Built with -DSYNTHER_MODEL_CHECK,
// every operation (and the spin hint) instead calls into a C11 memory-model checker
// (csrc/model_check/), which runs the ring's real code under simulated weak memory, and can weaken
// the order at any one site to show that the argument needs it (tests/test_replay_model.py).
//
// Why not std::atomic members: the ring's words live in one raw allocation shared with zero-copy
// numpy views, so they are accessed through pointers; the three counters use the same functions so
// that the checker sees every shared access.
#pragma once

#include <cstdint>
#include <thread>

namespace synther::atom {

constexpr int kRelaxed = __ATOMIC_RELAXED;
constexpr int kAcquire = __ATOMIC_ACQUIRE;
constexpr int kRelease = __ATOMIC_RELEASE;
constexpr int kAcqRel = __ATOMIC_ACQ_REL;

}  // namespace synther::atom

#if defined(SYNTHER_MODEL_CHECK)

namespace synther::model {
// Implemented by the checker (csrc/model_check/c11_model.h). `site` names the operation.
uint64_t load(const void* p, int bytes, int order, const char* site);
void store(void* p, int bytes, uint64_t value, int order, const char* site);
bool compare_exchange(void* p, int bytes, uint64_t* expected, uint64_t desired, int success,
                      int failure, const char* site);
uint64_t fetch_add(void* p, int bytes, uint64_t value, int order, const char* site);
void fence(int order, const char* site);
void spin();  // the caller is waiting for another thread
}  // namespace synther::model

namespace synther::atom {

template <int Order, typename T>
inline T load(const T* p, const char* site) {
  return static_cast<T>(model::load(p, sizeof(T), Order, site));
}
template <int Order, typename T>
inline void store(T* p, T value, const char* site) {
  model::store(p, sizeof(T), static_cast<uint64_t>(value), Order, site);
}
template <int Success, int Failure, typename T>
inline bool compare_exchange(T* p, T* expected, T desired, const char* site) {
  uint64_t e = *expected;
  const bool ok = model::compare_exchange(p, sizeof(T), &e, desired, Success, Failure, site);
  *expected = static_cast<T>(e);
  return ok;
}
template <int Order, typename T>
inline T fetch_add(T* p, T value, const char* site) {
  return static_cast<T>(model::fetch_add(p, sizeof(T), value, Order, site));
}
template <int Order>
inline void fence(const char* site) {
  model::fence(Order, site);
}
inline void spin_hint(unsigned&) { model::spin(); }

}  // namespace synther::atom

#else

namespace synther::atom {

template <int Order, typename T>
inline T load(const T* p, const char*) {
  return __atomic_load_n(p, Order);
}
template <int Order, typename T>
inline void store(T* p, T value, const char*) {
  __atomic_store_n(p, value, Order);
}
// Weak: may fail spuriously, so callers loop.
template <int Success, int Failure, typename T>
inline bool compare_exchange(T* p, T* expected, T desired, const char*) {
  return __atomic_compare_exchange_n(p, expected, desired, true, Success, Failure);
}
template <int Order, typename T>
inline T fetch_add(T* p, T value, const char*) {
  return __atomic_fetch_add(p, value, Order);
}
template <int Order>
inline void fence(const char*) {
  __atomic_thread_fence(Order);
}

// Called in every wait loop: pause, and after a while give the core away (on 2 cores the thread
// we wait for may be descheduled).
inline void spin_hint(unsigned& spins) {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    spins = 0;
    std::this_thread::yield();
  }
}

}  // namespace synther::atom

#endif
