// An HDF5 token dataset (the output of `mlamoe data prepare`) as `mlamoe train` reads it:
// TokenDataset::open validates the attributes, the datasets and every doc offset, then tokens and
// loss mask are read at both ends, and the training loader cuts windows from it (train and
// held-out, the SFT mask applied, the resume position set).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/token_dataset.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = mlamoe::fuzz::write_temp(data, size, "tokens.h5");
  mlamoe::fuzz::expect_only_mlamoe_errors("fuzz_token_dataset", [&] {
    mlamoe::TokenDataset ds = mlamoe::TokenDataset::open(path);
    const int64_t n = ds.num_tokens();
    (void)ds.tokenizer();
    (void)ds.eos_token_id();
    const int64_t head = std::min<int64_t>(n, 4096), tail = std::min<int64_t>(n, 16);
    std::vector<int32_t> ids(static_cast<size_t>(head));
    std::vector<uint8_t> mask(static_cast<size_t>(head));
    ds.read(0, head, ids.data());
    ds.read(n - tail, tail, ids.data());
    ds.read_mask(0, head, mask.data());
    ds.read_mask(n - tail, tail, mask.data());
    if (ds.num_docs() <= 4096) (void)ds.read_doc_offsets();

    // Held-out windows need seq_len + 1 tokens at the tail: eval_fraction 0.5 with seq_len 2.
    for (double eval_fraction : {0.0, 0.5}) {
      mlamoe::TokenLoader loader(path, 2, 1, eval_fraction);
      const int64_t w = loader.seq_len() + 1;
      std::vector<int64_t> batch(static_cast<size_t>(3 * w));
      loader.next_batch(3, batch.data());
      loader.set_state({1, 0});
      loader.next_batch_slice(3, 1, 2, batch.data());
      if (loader.eval_windows() > 0) loader.eval_batch(0, 1, batch.data());
      if (n <= (int64_t{1} << 16)) {
        (void)loader.train_window_targets();
        (void)loader.eval_window_targets();
      }
    }
  });
  return 0;
}
