// Small helpers over the HDF5 C API: an owning handle, scalar string/integer attributes, and a
// readable name for a datatype. Shared by the token dataset and, later, checkpoints. Not a wrapper
// of HDF5 as a whole: callers use the C API directly for datasets and selections.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>

namespace mlamoe {

// Owns one hid_t and closes it with the matching H5?close. Move-only.
class H5Id {
 public:
  using CloseFn = herr_t (*)(hid_t);
  H5Id() = default;
  H5Id(hid_t id, CloseFn close) : id_(id), close_(close) {}
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  H5Id& operator=(H5Id&& o) noexcept;
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; returns false when HDF5 reported an error (a failed flush on a file, say).
  bool reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  CloseFn close_ = nullptr;
};

// Stops HDF5 printing its own error stack: our one-line mlamoe::Error says what went wrong.
void h5_silence_errors();

// "uint32", "int64", "float32", "string", ...: for messages about a wrong dtype.
std::string h5_describe_type(hid_t type);

// Scalar attributes on a file or object. Readers throw mlamoe::Error prefixed by `where` for a
// missing attribute or one of the wrong kind; any integer width converts to int64 on read.
bool h5_has_attribute(hid_t obj, const char* name);
std::string h5_read_string_attribute(hid_t obj, const char* name, const std::string& where);
int64_t h5_read_int_attribute(hid_t obj, const char* name, const std::string& where);
// Strings are written variable-length UTF-8 (h5py reads them as str); file_type picks the width.
void h5_write_string_attribute(hid_t obj, const char* name, const std::string& value, const std::string& where);
void h5_write_int_attribute(hid_t obj, const char* name, int64_t value, hid_t file_type, const std::string& where);

}  // namespace mlamoe
