// Model check of the replay ring's memory ordering (csrc/ring_buffer.h), built and run by
// tests/test_replay_model.py:
//
//   g++ -std=c++17 -O1 -DSYNTHER_MODEL_CHECK -Icsrc csrc/model_check/check_ring.cpp -o check_ring
//   ./check_ring ring [--executions N] [--seed S] [--weaken SITE]... [--trace]
//   ./check_ring litmus
//
// `ring`: writers add rows whose words all carry one id; readers draw slots below size() and
// copy them with read_row. A row whose words disagree is torn; a row of zeros below size() was
// published before it was written. Each execution is one random interleaving and one random
// choice of the values weak memory allows (c11_model.h). Prints one line of counts; with --trace,
// the operations of the first failing execution.
//
// `litmus`: classic two-thread tests with known C11 answers, to show the checker itself finds
// what the model allows and nothing it forbids.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "model_check/c11_model.h"
#include "ring_buffer.h"

namespace {

using synther::RingBuffer;
using synther::model::Checker;
namespace atom = synther::atom;

struct Options {
  uint64_t executions = 2000;
  uint64_t seed = 1;
  int64_t capacity = 2;
  int64_t width = 3;  // one 64-bit pair and the odd last word: both copy paths
  int writers = 2;
  int readers = 2;
  int adds = 2;   // add() calls per writer
  int batch = 2;  // rows per add()
  int reads = 3;  // read_row calls per reader
  bool trace = false;
  std::vector<std::string> weaken;
};

int check_ring(const Options& o, Checker& checker) {
  uint64_t torn = 0, empty = 0, livelocks = 0, rows_read = 0, failed_executions = 0;
  bool traced = false;
  for (uint64_t e = 0; e < o.executions; ++e) {
    const uint64_t seed = o.seed + e;
    RingBuffer ring(o.capacity, o.width);
    uint64_t execution_failures = 0;
    std::vector<std::function<void()>> threads;
    for (int w = 0; w < o.writers; ++w) {
      threads.emplace_back([&ring, &o, w] {
        std::vector<float> rows(static_cast<std::size_t>(o.batch * o.width));
        for (int a = 0; a < o.adds; ++a) {
          for (int i = 0; i < o.batch; ++i) {
            const float id = static_cast<float>(1000 * (w + 1) + a * o.batch + i + 1);
            for (int64_t k = 0; k < o.width; ++k) rows[i * o.width + k] = id;
          }
          ring.add(rows.data(), o.batch);
        }
      });
    }
    for (int r = 0; r < o.readers; ++r) {
      threads.emplace_back([&, r] {
        std::mt19937_64 pick(seed * 7919 + static_cast<uint64_t>(r));
        std::vector<float> row(static_cast<std::size_t>(o.width));
        for (int i = 0; i < o.reads; ++i) {
          int64_t n;
          while ((n = ring.size()) == 0) synther::model::spin();  // wait for a first row
          const int64_t slot = static_cast<int64_t>(pick() % static_cast<uint64_t>(n));
          ring.read_row(slot, row.data());
          ++rows_read;
          bool same = true;
          for (float v : row) same = same && v == row[0];
          const bool is_empty = same && row[0] == 0.0f;
          if (!same) ++torn, ++execution_failures;
          if (is_empty) ++empty, ++execution_failures;
          checker.note("reader", !same ? "row TORN, slot" : is_empty ? "row EMPTY, slot" : "row ok, slot",
                       static_cast<uint64_t>(slot));
        }
      });
    }
    const uint64_t unordered_before = checker.unordered_writes;
    if (!checker.run(threads, seed)) {
      ++livelocks;
      continue;
    }
    execution_failures += checker.unordered_writes - unordered_before;
    if (execution_failures > 0) {
      ++failed_executions;
      if (o.trace && !traced) {
        traced = true;
        std::printf("first failing execution: seed %llu\n", static_cast<unsigned long long>(seed));
        checker.print_trace(stdout);
      }
    }
  }
  std::printf(
      "executions %llu rows_read %llu torn %llu empty %llu unordered_writes %llu failed_executions %llu "
      "livelocks %llu stale_reads %llu operations %llu\n",
      static_cast<unsigned long long>(o.executions), static_cast<unsigned long long>(rows_read),
      static_cast<unsigned long long>(torn), static_cast<unsigned long long>(empty),
      static_cast<unsigned long long>(checker.unordered_writes),
      static_cast<unsigned long long>(failed_executions),
      static_cast<unsigned long long>(livelocks),
      static_cast<unsigned long long>(checker.stale_reads),
      static_cast<unsigned long long>(checker.operations));
  return livelocks == 0 ? 0 : 3;
}

// ---- litmus tests ----
// How many of `runs` executions (seeds 1..runs) end in the counted outcome.
template <typename Execution>
uint64_t count_outcome(uint64_t runs, Execution execution) {
  uint64_t seen = 0;
  for (uint64_t seed = 1; seed <= runs; ++seed) seen += execution(seed) ? 1 : 0;
  return seen;
}

// Each returns how often the named outcome was seen over `runs` executions.
struct Litmus {
  const char* name;
  bool allowed;  // by the C11 model
  uint64_t (*count)(Checker&, uint64_t runs);
};

template <int StoreOrder, int LoadOrder, bool Fences>
uint64_t message_passing(Checker& checker, uint64_t runs) {
  // T1: data = 1; [fence release]; flag = 1.  T2: f = flag; [fence acquire]; d = data.
  // Outcome counted: f == 1 && d == 0 (the message arrived before its data).
  return count_outcome(runs, [&](uint64_t seed) {
    uint64_t data = 0, flag = 0, f = 0, d = 0;
    checker.run({[&] {
                   atom::store<atom::kRelaxed>(&data, uint64_t{1}, "data");
                   if (Fences) atom::fence<atom::kRelease>("fence");
                   atom::store<StoreOrder>(&flag, uint64_t{1}, "flag");
                 },
                 [&] {
                   f = atom::load<LoadOrder>(&flag, "flag");
                   if (Fences) atom::fence<atom::kAcquire>("fence");
                   d = atom::load<atom::kRelaxed>(&data, "data");
                 }},
                seed);
    return (f == 1 && d == 0);
  });
}

uint64_t read_read_coherence(Checker& checker, uint64_t runs) {
  // T1: x = 1; x = 2.  T2: a = x; b = x.  Outcome counted: a == 2 && b == 1 (forbidden: CoRR).
  return count_outcome(runs, [&](uint64_t seed) {
    uint64_t x = 0, a = 0, b = 0;
    checker.run({[&] {
                   atom::store<atom::kRelaxed>(&x, uint64_t{1}, "x");
                   atom::store<atom::kRelaxed>(&x, uint64_t{2}, "x");
                 },
                 [&] {
                   a = atom::load<atom::kRelaxed>(&x, "x");
                   b = atom::load<atom::kRelaxed>(&x, "x");
                 }},
                seed);
    return (a == 2 && b == 1);
  });
}

uint64_t store_buffering(Checker& checker, uint64_t runs) {
  // T1: x = 1; a = y.  T2: y = 1; b = x (release/acquire).  Outcome counted: a == 0 && b == 0
  // (allowed without seq_cst: each store may still be invisible to the other thread).
  return count_outcome(runs, [&](uint64_t seed) {
    uint64_t x = 0, y = 0, a = 1, b = 1;
    checker.run({[&] {
                   atom::store<atom::kRelease>(&x, uint64_t{1}, "x");
                   a = atom::load<atom::kAcquire>(&y, "y");
                 },
                 [&] {
                   atom::store<atom::kRelease>(&y, uint64_t{1}, "y");
                   b = atom::load<atom::kAcquire>(&x, "x");
                 }},
                seed);
    return (a == 0 && b == 0);
  });
}

uint64_t release_sequence(Checker& checker, uint64_t runs) {
  // T1: data = 1; flag.store(1, release).  T2: flag.fetch_add(1, relaxed).
  // T3: f = flag (acquire); d = data.  Outcome counted: f == 2 && d == 0, forbidden: T2's RMW
  // continues T1's release sequence, so reading 2 synchronises with T1 (when T1 stored first).
  return count_outcome(runs, [&](uint64_t seed) {
    uint64_t data = 0, flag = 0, f = 0, d = 0, old = 0;
    checker.run({[&] {
                   atom::store<atom::kRelaxed>(&data, uint64_t{1}, "data");
                   atom::store<atom::kRelease>(&flag, uint64_t{1}, "flag");
                 },
                 [&] { old = atom::fetch_add<atom::kRelaxed>(&flag, uint64_t{1}, "rmw"); },
                 [&] {
                   f = atom::load<atom::kAcquire>(&flag, "flag");
                   d = atom::load<atom::kRelaxed>(&data, "data");
                 }},
                seed);
    return (old == 1 && f == 2 && d == 0);
  });
}

uint64_t read_read_coherence_through_hb(Checker& checker, uint64_t runs) {
  // T1: x = 1.  T2: a = x; y.store(1, release).  T3: f = y (acquire); b = x (all else relaxed).
  // Outcome counted: a == 1 && f == 1 && b == 0, forbidden: T2's read of x happens-before T3's.
  return count_outcome(runs, [&](uint64_t seed) {
    uint64_t x = 0, y = 0, a = 0, f = 0, b = 1;
    checker.run({[&] { atom::store<atom::kRelaxed>(&x, uint64_t{1}, "x"); },
                 [&] {
                   a = atom::load<atom::kRelaxed>(&x, "x");
                   atom::store<atom::kRelease>(&y, uint64_t{1}, "y");
                 },
                 [&] {
                   f = atom::load<atom::kAcquire>(&y, "y");
                   b = atom::load<atom::kRelaxed>(&x, "x");
                 }},
                seed);
    return (a == 1 && f == 1 && b == 0);
  });
}

uint64_t unordered_writes(Checker& checker, uint64_t runs) {
  // T1: x = 1.  T2: x = 2 (relaxed, no synchronisation). Either modification order is allowed;
  // counted: executions the checker flags as having an unordered write.
  return count_outcome(runs, [&](uint64_t seed) {
    uint64_t x = 0;
    const uint64_t before = checker.unordered_writes;
    checker.run({[&] { atom::store<atom::kRelaxed>(&x, uint64_t{1}, "x"); },
                 [&] { atom::store<atom::kRelaxed>(&x, uint64_t{2}, "x"); }},
                seed);
    return checker.unordered_writes > before;
  });
}

int litmus(Checker& checker, uint64_t runs) {
  const Litmus tests[] = {
      {"mp_relaxed", true, &message_passing<atom::kRelaxed, atom::kRelaxed, false>},
      {"mp_release_acquire", false, &message_passing<atom::kRelease, atom::kAcquire, false>},
      {"mp_fences", false, &message_passing<atom::kRelaxed, atom::kRelaxed, true>},
      {"mp_release_only", true, &message_passing<atom::kRelease, atom::kRelaxed, false>},
      {"corr", false, &read_read_coherence},
      {"sb_release_acquire", true, &store_buffering},
      {"release_sequence", false, &release_sequence},
      {"corr_through_hb", false, &read_read_coherence_through_hb},
      {"ww_unordered_flagged", true, &unordered_writes},
  };
  int wrong = 0;
  for (const Litmus& t : tests) {
    const uint64_t seen = t.count(checker, runs);
    const bool ok = t.allowed ? seen > 0 : seen == 0;
    wrong += !ok;
    std::printf("litmus %s %s seen %llu/%llu %s\n", t.name, t.allowed ? "allowed" : "forbidden",
                static_cast<unsigned long long>(seen), static_cast<unsigned long long>(runs),
                ok ? "ok" : "WRONG");
  }
  return wrong == 0 ? 0 : 1;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: check_ring ring [--executions N] [--seed S] [--capacity C] [--width W]\n"
               "                       [--writers K] [--readers R] [--weaken SITE]... [--trace]\n"
               "       check_ring litmus [--executions N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  const std::string mode = argv[1];
  Options o;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--executions") o.executions = std::strtoull(value(), nullptr, 10);
    else if (a == "--seed") o.seed = std::strtoull(value(), nullptr, 10);
    else if (a == "--capacity") o.capacity = std::atoll(value());
    else if (a == "--width") o.width = std::atoll(value());
    else if (a == "--writers") o.writers = std::atoi(value());
    else if (a == "--readers") o.readers = std::atoi(value());
    else if (a == "--weaken") o.weaken.emplace_back(value());
    else if (a == "--trace") o.trace = true;
    else usage();
  }
  Checker& checker = synther::model::checker();
  for (const std::string& site : o.weaken) checker.weakened.insert(site);
  if (mode == "ring") return check_ring(o, checker);
  if (mode == "litmus") return litmus(checker, o.executions);
  usage();
}
