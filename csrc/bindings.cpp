// PYBIND11_MODULE(_replay): argument checks with the GIL held, then the work with it released.
// Arrays must already be float32 and C-contiguous: a wrong dtype is an error, never a hidden copy
// (the Python layer in synther_fast/replay converts other real dtypes once, on purpose).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "mixed_sampler.h"
#include "ring_buffer.h"

namespace py = pybind11;
using synther::MixedSampler;
using synther::RingBuffer;

namespace {

// Checks that `array` is a float32, C-contiguous 2-D block whose rows are at least `min_width`
// wide (exactly `min_width` when `exact`), and returns its row count.
int64_t check_rows(const py::array& array, int64_t min_width, bool exact, bool writable,
                   const char* what) {
  if (!array.dtype().is(py::dtype::of<float>())) {
    throw py::type_error(std::string(what) + " must be float32, got " +
                         py::str(array.dtype()).cast<std::string>());
  }
  if (array.ndim() != 2) {
    throw py::value_error(std::string(what) + " must be 2-D (rows, width), got " +
                          std::to_string(array.ndim()) + " dimensions");
  }
  if (!(array.flags() & py::array::c_style)) {
    throw py::value_error(std::string(what) + " must be C-contiguous");
  }
  if (writable && !array.writeable()) {
    throw py::value_error(std::string(what) + " is read-only");
  }
  const int64_t width = static_cast<int64_t>(array.shape(1));
  if (exact ? width != min_width : width < min_width) {
    throw py::value_error(std::string(what) + " rows have width " + std::to_string(width) +
                          ", expected " + (exact ? "" : "at least ") + std::to_string(min_width));
  }
  return static_cast<int64_t>(array.shape(0));
}

std::shared_ptr<RingBuffer> optional_ring(const py::object& obj) {
  if (obj.is_none()) return nullptr;
  return obj.cast<std::shared_ptr<RingBuffer>>();
}

}  // namespace

PYBIND11_MODULE(_replay, m) {
  m.doc() = "C++ replay ring buffer and mixed sampler (see csrc/ring_buffer.h for the design)";
  m.attr("ROW_ALIGNMENT") = synther::kRowAlignment;

  py::class_<RingBuffer, std::shared_ptr<RingBuffer>>(m, "RingBuffer")
      .def(py::init<int64_t, int64_t>(), py::arg("capacity"), py::arg("width"))
      .def_property_readonly("capacity", &RingBuffer::capacity)
      .def_property_readonly("width", &RingBuffer::width)
      .def_property_readonly("stride", &RingBuffer::stride)
      .def_property_readonly("total_added", &RingBuffer::total_added)
      .def("__len__", &RingBuffer::size)
      .def(
          "add",
          [](RingBuffer& self, const py::array& rows) {
            const int64_t n = check_rows(rows, self.width(), true, false, "rows");
            const float* data = static_cast<const float*>(rows.data());
            py::gil_scoped_release release;
            self.add(data, n);
          },
          py::arg("rows"), "Append rows (float32, C-contiguous, (n, width)); thread-safe.")
      .def(
          "export_rows",
          [](const RingBuffer& self, py::array& out) {
            const int64_t n = check_rows(out, self.width(), true, true, "out");
            float* data = static_cast<float*>(out.mutable_data());
            py::gil_scoped_release release;
            self.export_rows(data, n);
          },
          py::arg("out"), "Copy the newest len(out) rows into out, oldest first.")
      .def(
          "reset",
          [](RingBuffer& self, const py::array& rows, uint64_t total_added) {
            const int64_t n = check_rows(rows, self.width(), true, false, "rows");
            const float* data = static_cast<const float*>(rows.data());
            py::gil_scoped_release release;
            self.reset(data, n, total_added);
          },
          py::arg("rows"), py::arg("total_added"),
          "Replace the content (rows oldest first); not safe while others use the buffer.")
      .def(
          "storage",
          [](py::object self_obj) {
            RingBuffer& self = self_obj.cast<RingBuffer&>();
            // A strided view of the filled slots in storage order that keeps the ring alive.
            return py::array_t<float>({self.size(), self.width()},
                                      {self.stride() * static_cast<int64_t>(sizeof(float)),
                                       static_cast<int64_t>(sizeof(float))},
                                      self.data(), self_obj);
          },
          "Zero-copy float32 view of the filled slots, in storage order.");

  py::class_<MixedSampler>(m, "MixedSampler")
      .def(py::init([](const py::object& real, const py::object& synthetic, double ratio,
                       int64_t batch_size, uint64_t seed) {
             return new MixedSampler(optional_ring(real), optional_ring(synthetic), ratio,
                                     batch_size, seed);
           }),
           py::arg("real"), py::arg("synthetic"), py::arg("ratio"), py::arg("batch_size"),
           py::arg("seed"))
      .def_property_readonly("batch_size", &MixedSampler::batch_size)
      .def_property_readonly("ratio", &MixedSampler::ratio)
      .def_property_readonly("synthetic_share", &MixedSampler::synthetic_share)
      .def_property_readonly("width", &MixedSampler::width)
      .def(
          "sample",
          [](MixedSampler& self, py::array& out) {
            const int64_t n = check_rows(out, self.width(), false, true, "out");
            if (n != self.batch_size()) {
              throw py::value_error("out has " + std::to_string(n) + " rows, batch_size is " +
                                    std::to_string(self.batch_size()));
            }
            const int64_t out_width = static_cast<int64_t>(out.shape(1));
            float* data = static_cast<float*>(out.mutable_data());
            py::gil_scoped_release release;
            return self.sample(data, out_width);
          },
          py::arg("out"), "Fill out with one batch; returns the number of synthetic rows.")
      .def("get_rng_state", &MixedSampler::rng_state)
      .def("set_rng_state", &MixedSampler::set_rng_state, py::arg("state"));

  m.def(
      "find_nonfinite",
      [](const py::array& rows) -> py::object {
        const int64_t width = rows.ndim() == 2 ? static_cast<int64_t>(rows.shape(1)) : 0;
        const int64_t n = check_rows(rows, width, true, false, "rows");
        const float* data = static_cast<const float*>(rows.data());
        std::pair<int64_t, int64_t> where;
        {
          py::gil_scoped_release release;
          where = synther::find_nonfinite(data, n, width);
        }
        if (where.first < 0) return py::none();
        return py::make_tuple(where.first, where.second);
      },
      py::arg("rows"), "(row, column) of the first NaN or inf in a float32 (n, width) array, or None.");
}
