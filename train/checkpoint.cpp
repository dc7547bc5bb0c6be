#include "train/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "data/h5_util.h"
#include "model/json_parse.h"
#include "model/tensor/error.h"
#include "parallel/grad_sync.h"
#include "train/fault.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "mlamoe-checkpoint";
constexpr int64_t kFormatVersion = 2;  // 2: the header checksum
constexpr int kTokenTag = 7100;

// ---- checksums ----
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Σ hash(position, bits) over values[0..n) sitting at flat positions first..first+n-1.
uint64_t block_checksum(const float* values, int64_t n, int64_t first) {
  uint64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 1 << 16)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, 4);
    sum += mix64(static_cast<uint64_t>(first + i) * 0x9e3779b97f4a7c15ull + bits);
  }
  return sum;
}

// The header: everything besides the tensors that decides what a resumed or loaded run does.
uint64_t header_checksum(const std::string& config, int64_t step, int64_t tokens_seen, int64_t optimizer_steps,
                         int64_t loader_epoch, int64_t loader_index, int64_t has_optimizer) {
  uint64_t h = mix64(0x6d6c616d6f65ull ^ config.size());
  for (size_t i = 0; i < config.size(); ++i)
    h = mix64(h ^ static_cast<unsigned char>(config[i]) ^ (static_cast<uint64_t>(i) << 8));
  for (int64_t v : {step, tokens_seen, optimizer_steps, loader_epoch, loader_index, has_optimizer, kFormatVersion})
    h = mix64(h ^ static_cast<uint64_t>(v) * 0x9e3779b97f4a7c15ull);
  return h;
}

// ---- who writes what ----
bool owns_parameter(const Parameter& p, Mesh* mesh) {
  if (!mesh) return true;
  if (p.name == "model.embed_tokens.weight" && !mesh->first_stage()) return false;  // the first stage's copy
  return GradSync::is_expert_param(p.name) ? mesh->edp_rank == 0 : mesh->dp_rank == 0;
}
bool writes_moments(const AdamW::Slot& s, Mesh* mesh) {
  return !(mesh && s.name == "model.embed_tokens.weight" && !mesh->first_stage());
}

// The rows [r0, r0 + nrows) of a full-shape dataset: a hyperslab.
struct RowBlock {
  int64_t first_row = 0, rows = 0;
};
RowBlock rows_of(const Tensor& full, int64_t offset, int64_t length) {
  int64_t row = full.numel() / full.size(0);
  return {offset / row, length / row};
}

std::vector<hsize_t> dims_of(const Shape& s) { return std::vector<hsize_t>(s.begin(), s.end()); }

H5Id open_or_create_dataset(hid_t file, const std::string& name, const Shape& shape, const std::string& where) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0) {
    H5Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    MLAMOE_CHECK(ds.valid(), where << ": cannot open dataset '" << name << "'");
    return ds;
  }
  auto dims = dims_of(shape);
  H5Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  // No modification times in object headers: the same state always gives the same file bytes.
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), 0);
  H5Id ds(H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  MLAMOE_CHECK(ds.valid(), where << ": cannot create dataset '" << name << "'");
  h5_write_int_attribute(ds.get(), "checksum", 0, H5T_STD_I64LE, where);  // the u64 sum, stored as its bit pattern
  return ds;
}

// Writes rows [first_row, first_row + rows) of `name` (full shape `shape`) from f32 `data`, and
// adds their hash to the dataset's checksum.
void write_rows(hid_t file, const std::string& name, const Shape& shape, const float* data, RowBlock b,
                const std::string& where) {
  H5Id ds = open_or_create_dataset(file, name, shape, where);
  if (b.rows > 0) {
    auto dims = dims_of(shape);
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[0] = static_cast<hsize_t>(b.first_row);
    count[0] = static_cast<hsize_t>(b.rows);
    H5Id fspace(H5Dget_space(ds.get()), H5Sclose);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    H5Id mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
    MLAMOE_CHECK(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT, data) >= 0,
                 where << ": cannot write '" << name << "' (disk full?)");
  }
  int64_t row = shape_numel(shape) / shape[0];
  uint64_t add = block_checksum(data, b.rows * row, b.first_row * row);
  uint64_t cur = static_cast<uint64_t>(h5_read_int_attribute(ds.get(), "checksum", where));
  H5Adelete(ds.get(), "checksum");
  h5_write_int_attribute(ds.get(), "checksum", static_cast<int64_t>(cur + add), H5T_STD_I64LE, where);
}

// Reads rows of `name` into `out` (f32, rows·row elements); checks the shape. Returns the block's hash.
uint64_t read_rows(hid_t file, const std::string& name, const Shape& shape, float* out, RowBlock b, const std::string& where,
                   uint64_t* stored_checksum) {
  MLAMOE_CHECK(H5Lexists(file, "model", H5P_DEFAULT) > 0 && H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0,
               where << " has no tensor '" << name << "'");
  H5Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  MLAMOE_CHECK(ds.valid(), where << ": cannot open tensor '" << name << "'");
  H5Id fspace(H5Dget_space(ds.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(fspace.get());
  std::vector<hsize_t> dims(nd > 0 ? nd : 0);
  if (nd > 0) H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  Shape got(dims.begin(), dims.end());
  MLAMOE_CHECK(got == shape,
               where << ": tensor '" << name << "' has shape " << shape_str(got) << ", the config gives " << shape_str(shape));
  *stored_checksum = static_cast<uint64_t>(h5_read_int_attribute(ds.get(), "checksum", where + ", tensor '" + name + "'"));
  if (b.rows > 0) {
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[0] = static_cast<hsize_t>(b.first_row);
    count[0] = static_cast<hsize_t>(b.rows);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    H5Id mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
    MLAMOE_CHECK(H5Dread(ds.get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT, out) >= 0,
                 where << ": cannot read tensor '" << name << "' (truncated file?)");
  }
  int64_t row = shape_numel(shape) / shape[0];
  return block_checksum(out, b.rows * row, b.first_row * row);
}

H5Id open_checkpoint(const std::string& path) {
  h5_silence_errors();
  MLAMOE_CHECK(fs::exists(path), "checkpoint '" << path << "' does not exist");
  MLAMOE_CHECK(H5Fis_hdf5(path.c_str()) > 0, "checkpoint '" << path << "' is not an HDF5 file (truncated or damaged?)");
  H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  MLAMOE_CHECK(f.valid(), "cannot open checkpoint '" << path << "' (truncated or damaged?)");
  std::string where = "checkpoint '" + path + "'";
  MLAMOE_CHECK(h5_has_attribute(f.get(), "format"), where << " is not an mlamoe checkpoint (no 'format' attribute)");
  std::string fmt = h5_read_string_attribute(f.get(), "format", where);
  MLAMOE_CHECK(fmt == kFormat, where << " is a '" << fmt << "' file, not an mlamoe checkpoint");
  int64_t v = h5_read_int_attribute(f.get(), "format_version", where);
  MLAMOE_CHECK(v == kFormatVersion, where << " has format version " << v << ", this build reads " << kFormatVersion);
  MLAMOE_CHECK(h5_has_attribute(f.get(), "complete") && h5_read_int_attribute(f.get(), "complete", where) == 1,
               where << " is incomplete (its writer stopped before finishing)");
  auto attr = [&](const char* name) { return h5_read_int_attribute(f.get(), name, where); };
  uint64_t want = header_checksum(h5_read_string_attribute(f.get(), "config", where), attr("step"), attr("tokens_seen"),
                                  attr("optimizer_steps"), attr("loader_epoch"), attr("loader_index"), attr("has_optimizer"));
  MLAMOE_CHECK(h5_has_attribute(f.get(), "header_checksum") && static_cast<uint64_t>(attr("header_checksum")) == want,
               where << ": its header (config, step, tokens_seen, optimizer_steps, loader position) does not match its "
                        "checksum: the file was edited or damaged");
  return f;
}

Tensor as_f32(const Tensor& t) { return t.contiguous().to(DType::F32).to(Device::cpu()); }

// The root attributes (complete = 0) and the groups of a new checkpoint file.
void write_header(hid_t f, const nlohmann::json& config, const TrainState& st, bool has_optimizer, const std::string& where) {
  h5_write_string_attribute(f, "format", kFormat, where);
  h5_write_int_attribute(f, "format_version", kFormatVersion, H5T_STD_I64LE, where);
  h5_write_string_attribute(f, "config", config.dump(), where);  // hashed below with the progress
  h5_write_int_attribute(f, "step", st.step, H5T_STD_I64LE, where);
  h5_write_int_attribute(f, "tokens_seen", st.tokens_seen, H5T_STD_I64LE, where);
  h5_write_int_attribute(f, "optimizer_steps", st.optimizer_steps, H5T_STD_I64LE, where);
  h5_write_int_attribute(f, "loader_epoch", st.loader.epoch, H5T_STD_I64LE, where);
  h5_write_int_attribute(f, "loader_index", st.loader.index, H5T_STD_I64LE, where);
  h5_write_int_attribute(f, "has_optimizer", has_optimizer ? 1 : 0, H5T_STD_I64LE, where);
  h5_write_int_attribute(f, "complete", 0, H5T_STD_I64LE, where);
  std::string cfg = config.dump();
  h5_write_int_attribute(f, "header_checksum",
                         static_cast<int64_t>(header_checksum(cfg, st.step, st.tokens_seen, st.optimizer_steps, st.loader.epoch,
                                                              st.loader.index, has_optimizer ? 1 : 0)),
                         H5T_STD_I64LE, where);
  H5Id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl.get(), 0);
  for (const char* g : {"model", "optim", "optim/exp_avg", "optim/exp_avg_sq"}) {
    H5Id grp(H5Gcreate2(f, g, H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    MLAMOE_CHECK(grp.valid(), "cannot create group '" << g << "' in " << where);
  }
}

// The last step of every write: the closed <tmp> is marked complete, then renamed to <path>.
void complete_and_rename(const std::string& tmp, const std::string& path) {
  std::string where = "checkpoint '" + tmp + "'";
  {
    H5Id f(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    MLAMOE_CHECK(f.valid(), "cannot reopen " << where);
    H5Adelete(f.get(), "complete");
    h5_write_int_attribute(f.get(), "complete", 1, H5T_STD_I64LE, where);
    MLAMOE_CHECK(f.reset(), "cannot close " << where << " (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  MLAMOE_CHECK(!ec, "cannot rename '" << tmp << "' to '" << path << "': " << ec.message());
}

// The shape of an existing dataset.
Shape dataset_shape(hid_t file, const std::string& name, const std::string& where) {
  H5Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  MLAMOE_CHECK(ds.valid(), where << ": cannot open tensor '" << name << "'");
  H5Id space(H5Dget_space(ds.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.get());
  MLAMOE_CHECK(nd >= 1, where << ": tensor '" << name << "' is not an array");
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return Shape(dims.begin(), dims.end());
}

// "model.layers.2.x" < "model.layers.10.x": runs of digits compare by value.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      x.erase(0, std::min(x.find_first_not_of('0'), x.size()));
      y.erase(0, std::min(y.find_first_not_of('0'), y.size()));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i2, j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

void save_checkpoint(const std::string& path, const DeepSeekModel& model, const AdamW* opt, const TrainState& st,
                     const nlohmann::json& config, Mesh* mesh, int64_t fault_step) {
  h5_silence_errors();
  std::string tmp = path + ".tmp", where = "checkpoint '" + tmp + "'";
  int rank = mesh ? static_cast<int>(mesh->rank) : 0, size = mesh ? mesh->world->size() : 1;
  int64_t token = 0;
  if (rank > 0) mesh->world->recv(&token, 1, DType::I64, rank - 1, kTokenTag);
  // A write that fails (a full disk) leaves no .tmp behind: the newest complete checkpoint stays
  // the newest file, and the disk is not left full.
  struct RemoveOnError {
    const std::string& tmp;
    bool done = false;
    ~RemoveOnError() {
      std::error_code ec;
      if (!done) fs::remove(tmp, ec);
    }
  } cleanup{tmp};
  {
    if (rank == 0) {
      std::error_code ec;
      fs::create_directories(fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path(), ec);
    }
    H5Id f(rank == 0 ? H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                     : H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT),
           H5Fclose);
    MLAMOE_CHECK(f.valid(), "cannot " << (rank == 0 ? "create" : "open") << " " << where);
    if (rank == 0) write_header(f.get(), config, st, opt != nullptr, where);
    size_t written = 0;
    for (const auto& p : model.params.all()) {
      if (++written == model.params.all().size() / 2) fault_point(rank, fault_step, FaultSite::Checkpoint);  // tests only
      if (!owns_parameter(p, mesh)) continue;
      Tensor t = as_f32(p.tensor);
      write_rows(f.get(), "model/" + p.name, t.shape(), t.data<float>(), {0, t.size(0)}, where);
    }
    if (opt) {
      for (const auto& s : const_cast<AdamW*>(opt)->slots()) {
        if (!writes_moments(s, mesh)) continue;
        RowBlock b = rows_of(s.param, s.offset, s.length);
        Tensor m = as_f32(s.m), v = as_f32(s.v);
        write_rows(f.get(), "optim/exp_avg/" + s.name, s.param.shape(), m.data<float>(), b, where);
        write_rows(f.get(), "optim/exp_avg_sq/" + s.name, s.param.shape(), v.data<float>(), b, where);
      }
    }
    MLAMOE_CHECK(f.reset(), "cannot close " << where << " (disk full?)");
  }
  if (rank + 1 < size) mesh->world->send(&token, 1, DType::I64, rank + 1, kTokenTag);
  if (size > 1 && rank == size - 1) mesh->world->send(&token, 1, DType::I64, 0, kTokenTag);
  if (rank == 0) {
    if (size > 1) mesh->world->recv(&token, 1, DType::I64, size - 1, kTokenTag);
    complete_and_rename(tmp, path);
  }
  cleanup.done = true;
  if (mesh) mesh->world->barrier();  // nobody reads or prunes before the file is in place
}

LoadResult load_checkpoint_all(const std::string& path, DeepSeekModel& model, AdamW* opt, Mesh* mesh) {
  LoadResult res;
  std::string where = "checkpoint '" + path + "'";
  // Phase 1, local: read everything this rank holds; parameters are whole here, so their checksums
  // are checked at once; moment shards keep their partial sums for phase 2.
  struct Pending {
    Communicator* group;
    uint64_t partial, stored;
    std::string name;
  };
  std::vector<Pending> pending;
  try {
    H5Id f = open_checkpoint(path);
    TrainState& st = res.state;
    st.step = h5_read_int_attribute(f.get(), "step", where);
    st.tokens_seen = h5_read_int_attribute(f.get(), "tokens_seen", where);
    st.optimizer_steps = h5_read_int_attribute(f.get(), "optimizer_steps", where);
    st.loader.epoch = h5_read_int_attribute(f.get(), "loader_epoch", where);
    st.loader.index = h5_read_int_attribute(f.get(), "loader_index", where);
    for (const auto& p : model.params.all()) {
      Tensor buf = Tensor::empty(p.tensor.shape(), DType::F32);
      uint64_t stored = 0;
      uint64_t got =
          read_rows(f.get(), "model/" + p.name, p.tensor.shape(), buf.data<float>(), {0, p.tensor.size(0)}, where, &stored);
      MLAMOE_CHECK(got == stored, where << ": tensor 'model/" << p.name << "' fails its checksum (the file is damaged)");
      Tensor dst = p.tensor;
      dst.copy_(buf);
    }
    if (opt) {
      MLAMOE_CHECK(h5_read_int_attribute(f.get(), "has_optimizer", where) == 1,
                   where << " holds weights only (no optimizer state): use --init-from to start a new run from it");
      for (auto& s : opt->slots()) {
        RowBlock b = rows_of(s.param, s.offset, s.length);
        for (int k = 0; k < 2; ++k) {
          std::string name = std::string(k == 0 ? "optim/exp_avg/" : "optim/exp_avg_sq/") + s.name;
          Tensor buf = Tensor::empty({std::max<int64_t>(s.length, 1)}, DType::F32);
          uint64_t stored = 0;
          uint64_t got = read_rows(f.get(), name, s.param.shape(), buf.data<float>(), b, where, &stored);
          if (s.length > 0) (k == 0 ? s.m : s.v).copy_(buf.narrow(0, 0, s.length));
          pending.push_back({s.group, got, stored, name});
        }
      }
      opt->set_steps_taken(res.state.optimizer_steps);
    }
  } catch (const std::exception& e) {
    res.error = e.what();
  }
  if (mesh) {
    int64_t failed = res.error.empty() ? 0 : 1;
    mesh->world->all_reduce(&failed, 1, DType::I64, ReduceOp::Max);
    res.any_failed = failed != 0;
    if (res.any_failed) return res;
  } else if (!res.error.empty()) {
    res.any_failed = true;
    return res;
  }
  // Phase 2, collective: the ranks sharing a moment tensor add their shards' sums (every rank of
  // a group walks the same slots in the same order).
  for (auto& p : pending) {
    uint64_t got = p.partial;
    if (p.group) {
      int64_t sum = static_cast<int64_t>(got);
      p.group->all_reduce(&sum, 1, DType::I64, ReduceOp::Sum);
      got = static_cast<uint64_t>(sum);
    }
    if (got != p.stored && res.error.empty())
      res.error = where + ": tensor '" + p.name + "' fails its checksum (the file is damaged)";
  }
  if (mesh) {
    int64_t failed = res.error.empty() ? 0 : 1;
    mesh->world->all_reduce(&failed, 1, DType::I64, ReduceOp::Max);
    res.any_failed = failed != 0;
  } else {
    res.any_failed = !res.error.empty();
  }
  return res;
}

TrainState load_checkpoint(const std::string& path, DeepSeekModel& model, AdamW* opt, Mesh* mesh) {
  LoadResult r = load_checkpoint_all(path, model, opt, mesh);
  if (r.any_failed) throw Error(r.error.empty() ? "checkpoint '" + path + "': another rank failed to load it" : r.error);
  return r.state;
}

int64_t checkpoint_step(const std::string& path) {
  H5Id f = open_checkpoint(path);
  return h5_read_int_attribute(f.get(), "step", "checkpoint '" + path + "'");
}

nlohmann::json read_checkpoint_config(const std::string& path) {
  H5Id f = open_checkpoint(path);
  return parse_json(h5_read_string_attribute(f.get(), "config", "checkpoint '" + path + "'"),
                    "checkpoint '" + path + "', config attribute");
}

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld.h5", static_cast<long long>(step));
  return (fs::path(run_dir) / "checkpoints" / name).string();
}

namespace {

// Complete checkpoints of a run, oldest first; the step files that do not open (unfinished,
// damaged, edited) go to `rejected` as "path: reason" when it is given.
std::vector<std::string> complete_checkpoints(const std::string& run_dir, std::vector<std::string>* rejected = nullptr) {
  std::vector<std::string> out;
  fs::path dir = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0 || e.path().extension() != ".h5") continue;
    try {
      open_checkpoint(e.path().string());  // complete and of our format
      out.push_back(e.path().string());
    } catch (const Error& err) {
      if (rejected) rejected->push_back(err.what());  // a damaged or unfinished file is never picked up
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string latest_checkpoint(const std::string& run_dir) {
  auto all = complete_checkpoints(run_dir);
  return all.empty() ? "" : all.back();
}

namespace {
std::vector<std::pair<std::string, Shape>> list_model_tensors(hid_t f, const std::string& where);  // below
}  // namespace

std::string verify_checkpoint(const std::string& path) {
  try {
    H5Id f = open_checkpoint(path);
    std::string where = "checkpoint '" + path + "'";
    bool optim = h5_read_int_attribute(f.get(), "has_optimizer", where) == 1;
    std::vector<float> buf;
    for (const auto& [name, shape] : list_model_tensors(f.get(), where)) {
      buf.resize(static_cast<size_t>(shape_numel(shape)));
      for (std::string group : {"model/", "optim/exp_avg/", "optim/exp_avg_sq/"}) {
        std::string full = group + name;
        if (group != "model/" && (!optim || H5Lexists(f.get(), full.c_str(), H5P_DEFAULT) <= 0)) continue;
        uint64_t stored = 0;
        uint64_t got = read_rows(f.get(), full, shape, buf.data(), {0, shape[0]}, where, &stored);
        MLAMOE_CHECK(got == stored, where << ": tensor '" << full << "' fails its checksum (the file is damaged)");
      }
    }
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

std::string latest_good_checkpoint(const std::string& run_dir, std::vector<std::string>& skipped) {
  auto all = complete_checkpoints(run_dir, &skipped);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::string why = verify_checkpoint(*it);
    if (why.empty()) return *it;
    skipped.push_back(why);
  }
  return "";
}

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  auto all = complete_checkpoints(run_dir);
  std::error_code ec;
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) fs::remove(all[i], ec);
  fs::path dir = fs::path(run_dir) / "checkpoints";
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".tmp") fs::remove(e.path(), ec);
}

// ---- tensor-by-tensor access (converters) ----

struct CheckpointTensorWriter::Impl {
  std::string path, tmp, where;
  H5Id file;
  bool finished = false;
};

CheckpointTensorWriter::CheckpointTensorWriter(const std::string& path, const nlohmann::json& config, int64_t step)
    : impl_(std::make_unique<Impl>()) {
  h5_silence_errors();
  impl_->path = path;
  impl_->tmp = path + ".tmp";
  impl_->where = "checkpoint '" + impl_->tmp + "'";
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path(), ec);
  impl_->file = H5Id(H5Fcreate(impl_->tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  MLAMOE_CHECK(impl_->file.valid(), "cannot create " << impl_->where);
  TrainState st;
  st.step = step;
  try {
    write_header(impl_->file.get(), config, st, false, impl_->where);
  } catch (...) {
    impl_->file.reset();
    fs::remove(impl_->tmp, ec);
    throw;
  }
}

CheckpointTensorWriter::~CheckpointTensorWriter() {
  if (impl_->finished) return;
  impl_->file.reset();
  std::error_code ec;
  fs::remove(impl_->tmp, ec);
}

void CheckpointTensorWriter::write(const std::string& name, const Shape& shape, const float* data) {
  MLAMOE_CHECK(!impl_->finished && impl_->file.valid(), impl_->where << ": already finished");
  MLAMOE_CHECK(
      !shape.empty() && std::all_of(shape.begin(), shape.end(), [](int64_t d) { return d > 0; }),
      impl_->where << ": tensor '" << name << "' has shape " << shape_str(shape) << "; checkpoints hold non-empty arrays");
  std::string ds = "model/" + name;
  MLAMOE_CHECK(H5Lexists(impl_->file.get(), ds.c_str(), H5P_DEFAULT) <= 0,
               impl_->where << ": tensor '" << name << "' written twice");
  write_rows(impl_->file.get(), ds, shape, data, {0, shape[0]}, impl_->where);
}

void CheckpointTensorWriter::finish() {
  MLAMOE_CHECK(!impl_->finished, impl_->where << ": already finished");
  MLAMOE_CHECK(impl_->file.reset(), "cannot close " << impl_->where << " (disk full?)");
  complete_and_rename(impl_->tmp, impl_->path);
  impl_->finished = true;
}

namespace {

std::vector<std::pair<std::string, Shape>> list_model_tensors(hid_t f, const std::string& where) {
  MLAMOE_CHECK(H5Lexists(f, "model", H5P_DEFAULT) > 0, where << " has no 'model' group");
  std::vector<std::string> names;
  H5Id grp(H5Gopen2(f, "model", H5P_DEFAULT), H5Gclose);
  MLAMOE_CHECK(grp.valid(), where << ": cannot open the 'model' group");
  H5G_info_t gi;
  MLAMOE_CHECK(H5Gget_info(grp.get(), &gi) >= 0, where << ": cannot list the 'model' group");
  for (hsize_t i = 0; i < gi.nlinks; ++i) {  // by index: the same call in HDF5 1.10 and 1.12+
    ssize_t len = H5Lget_name_by_idx(grp.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    MLAMOE_CHECK(len >= 0, where << ": cannot list the 'model' group");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(grp.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end(), natural_less);
  std::vector<std::pair<std::string, Shape>> out;
  for (auto& n : names) out.emplace_back(n, dataset_shape(f, "model/" + n, where));
  return out;
}

}  // namespace

std::vector<std::pair<std::string, Shape>> list_checkpoint_tensors(const std::string& path) {
  H5Id f = open_checkpoint(path);
  return list_model_tensors(f.get(), "checkpoint '" + path + "'");
}

void for_each_checkpoint_tensor(const std::string& path,
                                const std::function<void(const std::string&, const Shape&, const std::vector<float>&)>& fn) {
  H5Id f = open_checkpoint(path);
  std::string where = "checkpoint '" + path + "'";
  std::vector<float> buf;
  for (const auto& [name, shape] : list_model_tensors(f.get(), where)) {
    MLAMOE_CHECK(!shape.empty() && shape_numel(shape) > 0, where << ": tensor 'model/" << name << "' is empty");
    buf.resize(static_cast<size_t>(shape_numel(shape)));
    uint64_t stored = 0;
    uint64_t got = read_rows(f.get(), "model/" + name, shape, buf.data(), {0, shape[0]}, where, &stored);
    MLAMOE_CHECK(got == stored, where << ": tensor 'model/" << name << "' fails its checksum (the file is damaged)");
    fn(name, shape, buf);
  }
}

}  // namespace mlamoe
