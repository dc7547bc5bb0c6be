#include "train/monitor/expert_series.h"

#include <cstdio>
#include <filesystem>

#include "data/h5_util.h"
#include "model/tensor/error.h"

namespace mlamoe {

struct ExpertSeriesWriter::Impl {
  std::string path;
  int64_t layers = 0, experts = 0, steps = 0;
  H5Id file, step_ds, counts_ds, bias_ds;
};

namespace {

H5Id create_series(hid_t file, const char* name, hid_t type, int64_t layers, int64_t experts, bool per_step_matrix) {
  int rank = per_step_matrix ? 3 : 1;
  hsize_t dims[3] = {0, static_cast<hsize_t>(layers), static_cast<hsize_t>(experts)};
  hsize_t max_dims[3] = {H5S_UNLIMITED, dims[1], dims[2]};
  hsize_t chunk[3] = {per_step_matrix ? hsize_t{1} : hsize_t{1024}, dims[1], dims[2]};
  H5Id space(H5Screate_simple(rank, dims, max_dims), H5Sclose);
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(dcpl.get(), rank, chunk);
  if (per_step_matrix) H5Pset_deflate(dcpl.get(), 4);
  return H5Id(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
}

// Writes one step's row at index `at` (extending the dataset to at + 1 rows).
template <class T>
void write_row(hid_t ds, hid_t mem_type, int64_t at, const std::vector<T>& row, int rank, int64_t layers, int64_t experts,
               const std::string& where) {
  hsize_t size[3] = {static_cast<hsize_t>(at + 1), static_cast<hsize_t>(layers), static_cast<hsize_t>(experts)};
  bool ok = H5Dset_extent(ds, size) >= 0;
  H5Id fspace(H5Dget_space(ds), H5Sclose);
  hsize_t start[3] = {static_cast<hsize_t>(at), 0, 0}, count[3] = {1, size[1], size[2]};
  ok = ok && H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) >= 0;
  H5Id mspace(H5Screate_simple(rank, count, nullptr), H5Sclose);
  ok = ok && H5Dwrite(ds, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, row.data()) >= 0;
  MLAMOE_CHECK(ok, where << ": cannot append a step (disk full?)");
}

}  // namespace

ExpertSeriesWriter::ExpertSeriesWriter(const std::string& path, int64_t layers, int64_t experts, int64_t resume_through)
    : impl_(std::make_unique<Impl>()) {
  h5_silence_errors();
  Impl& m = *impl_;
  m.path = path, m.layers = layers, m.experts = experts;
  std::string where = "expert log '" + path + "'";
  if (resume_through >= 0 && std::filesystem::exists(path)) {
    m.file = H5Id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    if (m.file.valid()) {
      m.step_ds = H5Id(H5Dopen2(m.file.get(), "step", H5P_DEFAULT), H5Dclose);
      m.counts_ds = H5Id(H5Dopen2(m.file.get(), "counts", H5P_DEFAULT), H5Dclose);
      m.bias_ds = H5Id(H5Dopen2(m.file.get(), "bias", H5P_DEFAULT), H5Dclose);
    }
  }
  if (resume_through >= 0 && std::filesystem::exists(path) &&
      !(m.file.valid() && m.step_ds.valid() && m.counts_ds.valid() && m.bias_ds.valid())) {
    // A job killed while HDF5 was writing can leave the file unreadable (HDF5 is not crash-safe).
    // The expert history is a log, not training state: keep the damaged file under a new name and
    // start the log again at the resumed step rather than refuse to resume.
    m.bias_ds = H5Id();
    m.counts_ds = H5Id();
    m.step_ds = H5Id();
    m.file = H5Id();
    std::string kept;
    for (int i = 1;; ++i) {
      kept = path + ".unreadable-" + std::to_string(i);
      if (!std::filesystem::exists(kept)) break;
    }
    std::error_code ec;
    std::filesystem::rename(path, kept, ec);
    MLAMOE_CHECK(!ec, where << " is unreadable and cannot be moved aside to " << kept << ": " << ec.message());
    std::fprintf(stderr,
                 "mlamoe: warning: %s was left unreadable by an interrupted write; kept as %s, and the log starts again "
                 "after step %lld (experts.jsonl still holds every step's statistics)\n",
                 where.c_str(), kept.c_str(), static_cast<long long>(resume_through));
  } else if (resume_through >= 0 && std::filesystem::exists(path)) {
    // Keep the steps up to the checkpoint being resumed; later ones are redone.
    H5Id space(H5Dget_space(m.step_ds.get()), H5Sclose);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    std::vector<int64_t> steps(n);
    if (n > 0) H5Dread(m.step_ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data());
    while (m.steps < static_cast<int64_t>(n) && steps[m.steps] <= resume_through) ++m.steps;
    hsize_t keep[3] = {static_cast<hsize_t>(m.steps), static_cast<hsize_t>(layers), static_cast<hsize_t>(experts)};
    H5Dset_extent(m.step_ds.get(), keep);
    H5Dset_extent(m.counts_ds.get(), keep);
    H5Dset_extent(m.bias_ds.get(), keep);
    return;
  }
  m.file = H5Id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  MLAMOE_CHECK(m.file.valid(), "cannot create " << where);
  m.step_ds = create_series(m.file.get(), "step", H5T_STD_I64LE, layers, experts, false);
  m.counts_ds = create_series(m.file.get(), "counts", H5T_STD_U32LE, layers, experts, true);
  m.bias_ds = create_series(m.file.get(), "bias", H5T_IEEE_F32LE, layers, experts, true);
  MLAMOE_CHECK(m.step_ds.valid() && m.counts_ds.valid() && m.bias_ds.valid(), "cannot create the datasets of " << where);
}

ExpertSeriesWriter::~ExpertSeriesWriter() = default;

int64_t ExpertSeriesWriter::steps() const { return impl_->steps; }

void ExpertSeriesWriter::append(int64_t step, const std::vector<std::vector<int64_t>>& counts,
                                const std::vector<std::vector<double>>& bias) {
  Impl& m = *impl_;
  std::string where = "expert log '" + m.path + "'";
  std::vector<uint32_t> c(m.layers * m.experts, 0);
  std::vector<float> b(m.layers * m.experts, 0.0f);
  for (int64_t l = 0; l < m.layers && l < static_cast<int64_t>(counts.size()); ++l)
    for (int64_t e = 0; e < m.experts && e < static_cast<int64_t>(counts[l].size()); ++e) {
      c[l * m.experts + e] = static_cast<uint32_t>(counts[l][e]);
      if (l < static_cast<int64_t>(bias.size()) && e < static_cast<int64_t>(bias[l].size()))
        b[l * m.experts + e] = static_cast<float>(bias[l][e]);
    }
  write_row(m.step_ds.get(), H5T_NATIVE_INT64, m.steps, std::vector<int64_t>{step}, 1, m.layers, m.experts, where);
  write_row(m.counts_ds.get(), H5T_NATIVE_UINT32, m.steps, c, 3, m.layers, m.experts, where);
  write_row(m.bias_ds.get(), H5T_NATIVE_FLOAT, m.steps, b, 3, m.layers, m.experts, where);
  ++m.steps;
  H5Fflush(m.file.get(), H5F_SCOPE_LOCAL);
}

}  // namespace mlamoe
