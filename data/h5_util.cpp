// HDF5 helpers: handle ownership, attributes, datatype names (see h5_util.h).
#include "data/h5_util.h"

#include <vector>

#include "model/tensor/error.h"

namespace mlamoe {

H5Id& H5Id::operator=(H5Id&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

bool H5Id::reset() {
  bool ok = true;
  if (id_ >= 0 && close_) ok = close_(id_) >= 0;
  id_ = H5I_INVALID_HID;
  return ok;
}

void h5_silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string h5_describe_type(hid_t type) {
  size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ARRAY:
      return "array";
    case H5T_ENUM:
      return "enum";
    default:
      return "an unsupported datatype";
  }
}

bool h5_has_attribute(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

namespace {

// Opens a scalar (or one-element) attribute and returns it with its file datatype.
std::pair<H5Id, H5Id> open_scalar_attribute(hid_t obj, const char* name, const std::string& where) {
  MLAMOE_CHECK(h5_has_attribute(obj, name), where << ": missing attribute '" << name << "'");
  H5Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  MLAMOE_CHECK(attr.valid(), where << ": cannot open attribute '" << name << "'");
  H5Id space(H5Aget_space(attr.get()), H5Sclose);
  MLAMOE_CHECK(space.valid() && H5Sget_simple_extent_npoints(space.get()) == 1,
               where << ": attribute '" << name << "' must be a single value");
  H5Id type(H5Aget_type(attr.get()), H5Tclose);
  MLAMOE_CHECK(type.valid(), where << ": cannot read the type of attribute '" << name << "'");
  return {std::move(attr), std::move(type)};
}

}  // namespace

std::string h5_read_string_attribute(hid_t obj, const char* name, const std::string& where) {
  auto [attr, type] = open_scalar_attribute(obj, name, where);
  MLAMOE_CHECK(H5Tget_class(type.get()) == H5T_STRING,
               where << ": attribute '" << name << "' must be a string, got " << h5_describe_type(type.get()));
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* s = nullptr;
    MLAMOE_CHECK(H5Aread(attr.get(), mem.get(), &s) >= 0, where << ": cannot read attribute '" << name << "'");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  // Fixed length: read the raw bytes with the file's own string type, then cut at the first NUL.
  std::vector<char> buf(H5Tget_size(type.get()) + 1, '\0');
  MLAMOE_CHECK(H5Aread(attr.get(), type.get(), buf.data()) >= 0, where << ": cannot read attribute '" << name << "'");
  return std::string(buf.data());
}

int64_t h5_read_int_attribute(hid_t obj, const char* name, const std::string& where) {
  auto [attr, type] = open_scalar_attribute(obj, name, where);
  MLAMOE_CHECK(H5Tget_class(type.get()) == H5T_INTEGER,
               where << ": attribute '" << name << "' must be an integer, got " << h5_describe_type(type.get()));
  int64_t v = 0;
  MLAMOE_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &v) >= 0, where << ": cannot read attribute '" << name << "'");
  return v;
}

void h5_write_string_attribute(hid_t obj, const char* name, const std::string& value, const std::string& where) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = value.c_str();
  MLAMOE_CHECK(attr.valid() && H5Awrite(attr.get(), type.get(), &p) >= 0, where << ": cannot write attribute '" << name << "'");
}

void h5_write_int_attribute(hid_t obj, const char* name, int64_t value, hid_t file_type, const std::string& where) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id attr(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  MLAMOE_CHECK(attr.valid() && H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) >= 0,
               where << ": cannot write attribute '" << name << "'");
}

}  // namespace mlamoe
