// A small C11/C++11 memory-model checker in the style of CDSChecker and relacy: it runs real code
// (here the replay ring, compiled with -DSYNTHER_MODEL_CHECK so that every operation in
// csrc/atomics.h lands in the hooks at the bottom of this file) under a simulated weak memory,
// one random execution at a time.
//
// Why our own: TSan does not model atomic_thread_fence, and x86 hardware never shows the
// reorderings a misplaced fence would allow. relacy and CDSChecker are not packaged anywhere this
// project can install from, and the ring needs only a few kinds of operation.
//
// What is simulated (per execution):
// - Threads are coroutines (ucontext) run one at a time; before every atomic operation the
//   scheduler picks the next thread at random, so interleavings are explored at operation grain.
// - Every location keeps its history of stores in modification order (here: execution order).
//   A load may return any store that coherence allows: not older than any store the thread knows
//   of at that location. It knows the stores it read or wrote, and everything the threads it
//   synchronised with knew (so if load A happens-before load B, B reads what A read or newer). It
//   picks one at random: this is where reorderings a weak machine (or compiler) may show appear.
// - What a thread knows (a View: a vector clock for happens-before plus, per location, the newest
//   store known) travels along synchronises-with edges. An acquire load that reads a release store
//   (or a store later in its release sequence: RMWs continue it) takes the writer's view. A
//   relaxed load remembers that view; a later acquire fence in the same thread takes it
//   (fence-to-store and fence-to-fence synchronisation). A release fence's view travels with the
//   thread's later relaxed stores.
// - RMWs that write (fetch_add, a successful compare_exchange) read the newest store. A failing
//   compare_exchange is a load and may read any allowed value different from the expected one.
// - A thread that spins (spin()) is descheduled and its next load reads the newest store, which
//   models the eventual visibility a real machine gives and keeps wait loops finite.
//
// What is not simulated: modification orders that differ from execution order, out-of-thin-air
// values, seq_cst's total order (the ring uses none). So an execution found here is a real
// C11-allowed execution (a failure is a real bug), but not every allowed execution is reachable.
// Where another order was possible the checker says so instead: a plain store made while the
// previous store to that location (another thread's) was unknown to the storing thread counts as
// an unordered write, since C11 could put the two either way round.
//
// Weakening: `weakened` names sites (the labels in ring_buffer.h's argument) whose order is
// replaced by relaxed, or whose fence is removed, so a test can show that each one is needed.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "atomics.h"

namespace synther::model {

constexpr int kMaxThreads = 8;  // thread 0 is the set-up code that ran before the threads
using Clock = std::array<uint32_t, kMaxThreads>;

// What a thread knows: a vector clock (happens-before) and, per location, the newest store it has
// read or written or that reached it through synchronisation (coherence: it may never read older).
// Both travel together along every synchronises-with edge.
struct View {
  Clock clock{};
  std::map<uintptr_t, std::size_t> seen;
};

inline void join_into(View& into, const View& other) {
  for (int i = 0; i < kMaxThreads; ++i) into.clock[i] = std::max(into.clock[i], other.clock[i]);
  for (const auto& [key, index] : other.seen) {
    std::size_t& mine = into.seen[key];
    mine = std::max(mine, index);
  }
}

struct Store {
  uint64_t value;
  int thread;
  uint32_t epoch;  // the storing thread's own clock entry at the store
  View release;    // what an acquire that reads this store learns (release store, fence or sequence)
  bool rmw;        // written by a read-modify-write (its place in modification order is forced)
};

struct Location {
  int id;  // small number for traces, in order of first use
  int bytes;
  std::vector<Store> history;  // modification order
};

struct Event {  // one operation, for the trace of a failing execution
  int thread;
  const char* site;
  const char* what;
  int location;
  uint64_t value;
  int newer;  // for loads: how many newer stores existed than the one read (0: the newest)
};

struct Thread {
  ucontext_t context{};
  std::vector<char> stack;
  std::function<void()> body;
  bool done = false;
  bool spinning = false;
  View view;             // what this thread knows now
  View fence_release;    // its view at the last release fence
  View acquire_pending;  // views of stores read by relaxed loads, for a later acquire fence
};

class Checker {
 public:
  std::set<std::string> weakened;
  uint64_t step_limit = 200000;  // operations per execution before it counts as a livelock

  // Statistics over all executions.
  uint64_t stale_reads = 0;  // loads that returned a store with newer ones already present
  // Plain stores made while the previous store to that location (another thread's) was neither
  // known to this thread nor happened-before it: C11 would let the two be ordered either way, and
  // this checker only explores execution order, so code under test must not do it.
  uint64_t unordered_writes = 0;
  uint64_t operations = 0;

  // Run one execution of `bodies` (each a thread) under scheduling and memory choices drawn from
  // `seed`. Returns false if the step limit was hit (a livelock); the threads are abandoned then.
  bool run(const std::vector<std::function<void()>>& bodies, uint64_t seed) {
    if (bodies.empty() || bodies.size() >= kMaxThreads) {
      std::fprintf(stderr, "model: 1..%d threads\n", kMaxThreads - 1);
      std::abort();
    }
    rng_.seed(seed);
    locations_.clear();
    trace_.clear();
    threads_.assign(bodies.size() + 1, Thread{});
    for (std::size_t i = 1; i < threads_.size(); ++i) {
      Thread& t = threads_[i];
      t.body = bodies[i - 1];
      t.view.clock[0] = 1;  // everything before the threads started happens-before them
      t.stack.resize(256 * 1024);
      getcontext(&t.context);
      t.context.uc_stack.ss_sp = t.stack.data();
      t.context.uc_stack.ss_size = t.stack.size();
      t.context.uc_link = &scheduler_;
      makecontext(&t.context, reinterpret_cast<void (*)()>(&Checker::entry), 1,
                  static_cast<int>(i));
    }
    uint64_t steps = 0;
    int previous = 0;
    for (;;) {
      std::vector<int> ready;
      for (std::size_t i = 1; i < threads_.size(); ++i)
        if (!threads_[i].done) ready.push_back(static_cast<int>(i));
      if (ready.empty()) break;
      if (++steps > step_limit) return false;
      // A spinning thread waits for someone else: run another one if there is any.
      if (previous > 0 && threads_[previous].spinning && !threads_[previous].done &&
          ready.size() > 1)
        ready.erase(std::find(ready.begin(), ready.end(), previous));
      current_ = ready[std::uniform_int_distribution<std::size_t>(0, ready.size() - 1)(rng_)];
      previous = current_;
      swapcontext(&scheduler_, &threads_[current_].context);
    }
    return true;
  }

  void print_trace(std::FILE* out) const {
    for (const Event& e : trace_) {
      std::fprintf(out, "  T%d %-8s %-18s L%-3d = %-12llu", e.thread, e.site, e.what, e.location,
                   static_cast<unsigned long long>(e.value));
      if (e.newer > 0) std::fprintf(out, " (stale: %d newer store%s)", e.newer, e.newer > 1 ? "s" : "");
      std::fputc('\n', out);
    }
  }

  // A line in the trace from the code under test (no scheduling point).
  void note(const char* site, const char* what, uint64_t value) {
    trace_.push_back({current_, site, what, -1, value, 0});
  }

  // ---- the operations (called through the hooks below) ----
  uint64_t load(const void* p, int bytes, int order, const char* site) {
    Thread& t = begin(site, &order);
    Location& loc = location(p, bytes);
    const std::size_t lo = oldest_allowed(t, loc, p);
    const std::size_t hi = loc.history.size() - 1;
    std::size_t index = hi;
    if (!t.spinning) index = std::uniform_int_distribution<std::size_t>(lo, hi)(rng_);
    t.spinning = false;
    return read(t, loc, p, index, acquires(order), site, "load");
  }

  void store(void* p, int bytes, uint64_t value, int order, const char* site) {
    Thread& t = begin(site, &order);
    Location& loc = location(p, bytes);
    const std::size_t hi = loc.history.size() - 1;
    if (loc.history[hi].thread != current_ && !loc.history[hi].rmw && oldest_allowed(t, loc, p) < hi) {
      ++unordered_writes;
      trace_.push_back({current_, site, "UNORDERED write", loc.id, value, 0});
    }
    write(t, loc, p, value, releases(order) ? t.view : t.fence_release, false, site, "store");
  }

  uint64_t fetch_add(void* p, int bytes, uint64_t value, int order, const char* site) {
    Thread& t = begin(site, &order);
    Location& loc = location(p, bytes);
    return rmw(t, loc, p, order, site, "fetch_add", [value](uint64_t old) { return old + value; });
  }

  bool compare_exchange(void* p, int bytes, uint64_t* expected, uint64_t desired, int success,
                        int failure, const char* site) {
    Thread& t = begin(site, &success);
    if (weakened.count(site)) failure = atom::kRelaxed;
    Location& loc = location(p, bytes);
    const std::size_t lo = oldest_allowed(t, loc, p);
    const std::size_t hi = loc.history.size() - 1;
    // Outcomes: succeed (only by reading the newest store, if it holds the expected value), or
    // fail by reading any allowed store holding another value.
    std::vector<std::size_t> failing;
    for (std::size_t i = lo; i <= hi; ++i)
      if (loc.history[i].value != *expected) failing.push_back(i);
    const bool can_succeed = loc.history[hi].value == *expected;
    std::size_t pick = std::uniform_int_distribution<std::size_t>(
        0, failing.size() - (can_succeed ? 0 : 1))(rng_);
    if (t.spinning && !failing.empty()) pick = can_succeed ? failing.size() : failing.size() - 1;
    t.spinning = false;
    if (can_succeed && pick == failing.size()) {
      rmw(t, loc, p, success, site, "cas ok", [desired](uint64_t) { return desired; });
      return true;
    }
    *expected = read(t, loc, p, failing[pick], acquires(failure), site, "cas fail");
    return false;
  }

  void fence(int order, const char* site) {
    Thread& t = begin(site, &order);
    if (weakened.count(site)) {
      trace_.push_back({current_, site, "fence (removed)", -1, 0, 0});
      return;
    }
    if (acquires(order)) join_into(t.view, t.acquire_pending);
    if (releases(order)) t.fence_release = t.view;
    trace_.push_back({current_, site, releases(order) ? "fence release" : "fence acquire", -1, 0, 0});
  }

  void spin() {
    threads_[current_].spinning = true;
    swapcontext(&threads_[current_].context, &scheduler_);
  }

 private:
  static bool acquires(int order) { return order == atom::kAcquire || order == atom::kAcqRel; }
  static bool releases(int order) { return order == atom::kRelease || order == atom::kAcqRel; }

  static void entry(int index);

  // A scheduling point, then the operation's own clock tick. Applies a weakening to `order`.
  Thread& begin(const char* site, int* order) {
    swapcontext(&threads_[current_].context, &scheduler_);
    ++operations;
    Thread& t = threads_[current_];
    ++t.view.clock[current_];
    if (weakened.count(site)) *order = atom::kRelaxed;
    return t;
  }

  Location& location(const void* p, int bytes) {
    const auto key = reinterpret_cast<uintptr_t>(p);
    auto found = locations_.find(key);
    if (found == locations_.end()) {
      // First use: the value set up before the threads started (thread 0, epoch 0), which
      // happens-before every thread.
      uint64_t initial = 0;
      std::memcpy(&initial, p, static_cast<std::size_t>(bytes));
      Location loc{static_cast<int>(locations_.size()), bytes, {Store{initial, 0, 0, View{}, false}}};
      found = locations_.emplace(key, std::move(loc)).first;
    }
    if (found->second.bytes != bytes) {
      std::fprintf(stderr, "model: location accessed with two sizes\n");
      std::abort();
    }
    return found->second;
  }

  // Coherence: the newest of (the newest store this thread knows of here, directly or through
  // synchronisation, and the newest store that happens-before this point).
  std::size_t oldest_allowed(const Thread& t, const Location& loc, const void* p) const {
    std::size_t lo = 0;
    auto seen = t.view.seen.find(reinterpret_cast<uintptr_t>(p));
    if (seen != t.view.seen.end()) lo = seen->second;
    for (std::size_t i = loc.history.size() - 1; i > lo; --i) {
      const Store& s = loc.history[i];
      if (t.view.clock[s.thread] >= s.epoch) return i;
    }
    return lo;
  }

  uint64_t read(Thread& t, Location& loc, const void* p, std::size_t index, bool acquire,
                const char* site, const char* what) {
    const Store& s = loc.history[index];
    t.view.seen[reinterpret_cast<uintptr_t>(p)] = index;
    join_into(acquire ? t.view : t.acquire_pending, s.release);
    const int newer = static_cast<int>(loc.history.size() - 1 - index);
    if (newer > 0) ++stale_reads;
    trace_.push_back({current_, site, what, loc.id, s.value, newer});
    return s.value;
  }

  void write(Thread& t, Location& loc, void* p, uint64_t value, const View& release, bool rmw,
             const char* site, const char* what) {
    loc.history.push_back(Store{value, current_, t.view.clock[current_], release, rmw});
    t.view.seen[reinterpret_cast<uintptr_t>(p)] = loc.history.size() - 1;
    std::memcpy(p, &value, static_cast<std::size_t>(loc.bytes));  // keep real memory current
    trace_.push_back({current_, site, what, loc.id, value, 0});
  }

  // Read the newest store and write after it; the write continues the release sequence.
  template <typename NewValue>
  uint64_t rmw(Thread& t, Location& loc, void* p, int order, const char* site, const char* what,
               NewValue new_value) {
    const std::size_t hi = loc.history.size() - 1;
    const Store read_store = loc.history[hi];
    t.view.seen[reinterpret_cast<uintptr_t>(p)] = hi;
    join_into(acquires(order) ? t.view : t.acquire_pending, read_store.release);
    View release = releases(order) ? t.view : t.fence_release;
    join_into(release, read_store.release);
    write(t, loc, p, new_value(read_store.value), release, true, site, what);
    return read_store.value;
  }

  std::mt19937_64 rng_;
  std::vector<Thread> threads_;
  std::unordered_map<uintptr_t, Location> locations_;
  std::vector<Event> trace_;
  ucontext_t scheduler_{};
  int current_ = 0;

  friend Checker& checker();
};

inline Checker& checker() {
  static Checker instance;
  return instance;
}

inline void Checker::entry(int index) {
  Checker& c = checker();
  c.threads_[index].body();
  c.threads_[index].done = true;
}

// ---- the hooks atomics.h declares ----
uint64_t load(const void* p, int bytes, int order, const char* site) {
  return checker().load(p, bytes, order, site);
}
void store(void* p, int bytes, uint64_t value, int order, const char* site) {
  checker().store(p, bytes, value, order, site);
}
bool compare_exchange(void* p, int bytes, uint64_t* expected, uint64_t desired, int success,
                      int failure, const char* site) {
  return checker().compare_exchange(p, bytes, expected, desired, success, failure, site);
}
uint64_t fetch_add(void* p, int bytes, uint64_t value, int order, const char* site) {
  return checker().fetch_add(p, bytes, value, order, site);
}
void fence(int order, const char* site) { checker().fence(order, site); }
void spin() { checker().spin(); }

}  // namespace synther::model
