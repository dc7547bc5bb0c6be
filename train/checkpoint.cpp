#include "train/checkpoint.h"

#include <filesystem>

#include "data/h5_util.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

constexpr const char* kFormat = "mlamoe-weights";
constexpr int64_t kFormatVersion = 1;

H5Id open_weights(const std::string& path) {
  h5_silence_errors();
  MLAMOE_CHECK(std::filesystem::exists(path), "weights file '" << path << "' does not exist");
  MLAMOE_CHECK(H5Fis_hdf5(path.c_str()) > 0, "'" << path << "' is not an HDF5 file");
  H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  MLAMOE_CHECK(f.valid(), "cannot open weights file '" << path << "'");
  std::string where = "weights file '" + path + "'";
  std::string fmt = h5_read_string_attribute(f.get(), "format", where);
  MLAMOE_CHECK(fmt == kFormat, "'" << path << "' is a '" << fmt << "' file, not mlamoe weights");
  int64_t v = h5_read_int_attribute(f.get(), "format_version", where);
  MLAMOE_CHECK(v == kFormatVersion, where << " has format version " << v << ", this build reads " << kFormatVersion);
  return f;
}

}  // namespace

void save_weights(const std::string& path, const ParameterStore& params, const nlohmann::json& config, int64_t step) {
  h5_silence_errors();
  std::string tmp = path + ".tmp";
  {
    H5Id f(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    MLAMOE_CHECK(f.valid(), "cannot create weights file '" << tmp << "'");
    h5_write_string_attribute(f.get(), "format", kFormat, tmp);
    h5_write_int_attribute(f.get(), "format_version", kFormatVersion, H5T_STD_I64LE, tmp);
    h5_write_int_attribute(f.get(), "step", step, H5T_STD_I64LE, tmp);
    h5_write_string_attribute(f.get(), "config", config.dump(), tmp);
    for (const auto& p : params.all()) {
      Tensor t = p.tensor.contiguous().to(DType::F32);  // stored f32 whatever the compute dtype
      std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
      H5Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
      H5Id ds(H5Dcreate2(f.get(), p.name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      MLAMOE_CHECK(ds.valid() && H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data<float>()) >= 0,
                   "cannot write tensor '" << p.name << "' to '" << tmp << "'");
    }
    MLAMOE_CHECK(f.reset(), "cannot close '" << tmp << "' (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  MLAMOE_CHECK(!ec, "cannot rename '" << tmp << "' to '" << path << "': " << ec.message());
}

nlohmann::json read_weights_config(const std::string& path) {
  H5Id f = open_weights(path);
  std::string s = h5_read_string_attribute(f.get(), "config", "weights file '" + path + "'");
  try {
    return nlohmann::json::parse(s);
  } catch (const std::exception&) {
    throw Error("weights file '" + path + "': the config attribute is not valid JSON");
  }
}

int64_t load_weights(const std::string& path, ParameterStore& params) {
  H5Id f = open_weights(path);
  std::string where = "weights file '" + path + "'";
  for (const auto& p : params.all()) {
    MLAMOE_CHECK(H5Lexists(f.get(), p.name.c_str(), H5P_DEFAULT) > 0, where << " has no tensor '" << p.name << "'");
    H5Id ds(H5Dopen2(f.get(), p.name.c_str(), H5P_DEFAULT), H5Dclose);
    H5Id space(H5Dget_space(ds.get()), H5Sclose);
    int nd = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(nd > 0 ? nd : 0);
    if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    Shape shape(dims.begin(), dims.end());
    MLAMOE_CHECK(shape == p.tensor.shape(), where << ": tensor '" << p.name << "' has shape " << shape_str(shape)
                                                  << ", the model expects " << shape_str(p.tensor.shape()));
    Tensor buf = Tensor::empty(shape, DType::F32);
    MLAMOE_CHECK(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data<float>()) >= 0,
                 where << ": cannot read tensor '" << p.name << "'");
    Tensor dst = p.tensor;
    dst.copy_(buf);
  }
  return h5_read_int_attribute(f.get(), "step", where);
}

}  // namespace mlamoe
