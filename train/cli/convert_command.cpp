// `mlamoe convert` (see convert_command.h). The expected tensor list comes from the config, so
// both directions check names and shapes up front, then stream tensor by tensor between
// data/safetensors and the checkpoint's CheckpointTensorWriter / for_each_checkpoint_tensor.
#include "train/cli/convert_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "data/safetensors.h"
#include "model/json_parse.h"
#include "model/tensor/error.h"
#include "train/atomic_file.h"
#include "train/checkpoint.h"
#include "train/cli/cli_args.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

using TensorList = std::vector<std::pair<std::string, Shape>>;

std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Mirrors the constructors of model/modules (deepseek_model, decoder_layer, mla, mlp, moe): the
// test cross-checks this list against DeepSeekModel::params.all() so the two cannot drift apart.
void add_swiglu(TensorList& out, const std::string& p, int64_t hidden, int64_t width) {
  out.push_back({p + "gate_proj.weight", {width, hidden}});
  out.push_back({p + "up_proj.weight", {width, hidden}});
  out.push_back({p + "down_proj.weight", {hidden, width}});
}

void add_decoder_layer(TensorList& out, const ModelConfig& c, int64_t l) {
  std::string p = layer_prefix(l);
  int64_t d = c.hidden_size, h = c.num_attention_heads;
  out.push_back({p + "input_layernorm.weight", {d}});
  out.push_back({p + "post_attention_layernorm.weight", {d}});
  std::string a = p + "self_attn.";
  if (c.q_lora_rank) {
    out.push_back({a + "q_a_proj.weight", {*c.q_lora_rank, d}});
    out.push_back({a + "q_a_layernorm.weight", {*c.q_lora_rank}});
    out.push_back({a + "q_b_proj.weight", {h * c.qk_head_dim(), *c.q_lora_rank}});
  } else {
    out.push_back({a + "q_proj.weight", {h * c.qk_head_dim(), d}});
  }
  out.push_back({a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, d}});
  out.push_back({a + "kv_a_layernorm.weight", {c.kv_lora_rank}});
  out.push_back({a + "kv_b_proj.weight", {h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}});
  out.push_back({a + "o_proj.weight", {d, h * c.v_head_dim}});
  std::string m = p + "mlp.";
  if (!c.is_moe_layer(l)) {
    add_swiglu(out, m, d, c.intermediate_size);
    return;
  }
  out.push_back({m + "gate.weight", {c.n_routed_experts, d}});
  if (c.topk_method == "noaux_tc") out.push_back({m + "gate.e_score_correction_bias", {c.n_routed_experts}});
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    add_swiglu(out, m + "experts." + std::to_string(e) + ".", d, c.moe_intermediate_size);
  if (c.n_shared_experts > 0) add_swiglu(out, m + "shared_experts.", d, c.n_shared_experts * c.moe_intermediate_size);
}

// HF checkpoints of V3 repeat the (shared) embedding and head inside each MTP layer; mlamoe's MTP
// reads the main ones, so these are written on export and dropped on import.
std::vector<std::pair<std::string, std::string>> mtp_copies(const ModelConfig& c) {  // (copy, original)
  std::vector<std::pair<std::string, std::string>> out;
  for (int64_t k = 1; k <= c.num_nextn_predict_layers; ++k) {
    std::string p = layer_prefix(c.num_hidden_layers + k - 1);
    out.push_back({p + "embed_tokens.weight", "model.embed_tokens.weight"});
    out.push_back({p + "shared_head.head.weight", "lm_head.weight"});
  }
  return out;
}

// Non-parameter tensors of HF directories that are read (scales) or ignored (rotary buffers).
bool is_scale(const std::string& name) { return ends_with(name, "_scale_inv"); }
bool is_rotary_buffer(const std::string& name) { return ends_with(name, ".rotary_emb.inv_freq"); }

// [rows, cols] of DeepSeek-V3's FP8 blocks, from quantization_config.weight_block_size (128 × 128).
std::pair<int64_t, int64_t> fp8_block(const nlohmann::json& j, const std::string& where) {
  if (!j.contains("quantization_config") || !j["quantization_config"].is_object() ||
      !j["quantization_config"].contains("weight_block_size"))
    return {128, 128};
  const auto& b = j["quantization_config"]["weight_block_size"];
  MLAMOE_CHECK(b.is_array() && b.size() == 2 && b[0].is_number_integer() && b[1].is_number_integer() && b[0].get<int64_t>() > 0 &&
                   b[1].get<int64_t>() > 0,
               where << ": quantization_config.weight_block_size must be [rows, cols] of positive integers, got " << b.dump());
  return {b[0].get<int64_t>(), b[1].get<int64_t>()};
}

std::string human(int64_t n) {
  char buf[32];
  if (n >= 1000000000)
    std::snprintf(buf, sizeof buf, "%.2fB", static_cast<double>(n) / 1e9);
  else if (n >= 1000000)
    std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

// Checks that `have` (a checkpoint's model/ tensors) is exactly `want`; names the first difference.
void check_same_tensors(const TensorList& want, const TensorList& have, const std::string& where) {
  std::map<std::string, Shape> h(have.begin(), have.end()), w(want.begin(), want.end());
  for (const auto& [name, shape] : want) {
    auto it = h.find(name);
    MLAMOE_CHECK(it != h.end(), where << " has no tensor '" << name << "' (expected " << shape_str(shape) << " for its config)");
    MLAMOE_CHECK(it->second == shape, where << ": tensor '" << name << "' has shape " << shape_str(it->second)
                                            << ", its config gives " << shape_str(shape));
  }
  for (const auto& [name, shape] : have)
    MLAMOE_CHECK(w.count(name), where << " has an unexpected tensor '" << name << "' (not part of a model with its config)");
}

void write_text_file(const fs::path& path, const std::string& text) { write_file_atomically(path.string(), text); }

// The HF config.json of an export: the model fields of a run config (no train/data/parallel), no
// quantization (the tensors are bf16 or f32), the dtype, and the architecture transformers needs.
nlohmann::json hf_config(nlohmann::json j, const std::string& dtype) {
  for (const char* k : {"train", "data", "parallel", "quantization_config"}) j.erase(k);
  j["torch_dtype"] = dtype == "bf16" ? "bfloat16" : "float32";
  if (!j.contains("architectures")) {
    std::string mt = j.value("model_type", "deepseek_v3");
    j["architectures"] = {mt == "deepseek_v2" ? "DeepseekV2ForCausalLM" : "DeepseekV3ForCausalLM"};
  }
  return j;
}

// A model file of ours from an earlier export (replaced on --overwrite; other files stay).
bool is_model_file(const std::string& name) {
  return name == "model.safetensors" || name == "model.safetensors.index.json" ||
         (name.rfind("model-", 0) == 0 && ends_with(name, ".safetensors") && name.find("-of-") != std::string::npos);
}

}  // namespace

TensorList expected_hf_tensors(const ModelConfig& c) {
  TensorList out;
  int64_t d = c.hidden_size, v = c.vocab_size;
  out.push_back({"model.embed_tokens.weight", {v, d}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) add_decoder_layer(out, c, l);
  out.push_back({"model.norm.weight", {d}});
  out.push_back({"lm_head.weight", {v, d}});
  for (int64_t k = 1; k <= c.num_nextn_predict_layers; ++k) {
    int64_t l = c.num_hidden_layers + k - 1;
    std::string p = layer_prefix(l);
    out.push_back({p + "enorm.weight", {d}});
    out.push_back({p + "hnorm.weight", {d}});
    out.push_back({p + "eh_proj.weight", {d, 2 * d}});
    add_decoder_layer(out, c, l);
    out.push_back({p + "shared_head.norm.weight", {d}});
  }
  return out;
}

ConvertStats import_hf_checkpoint(const std::string& hf_dir, const std::string& ckpt_path, bool overwrite, bool allow_nonfinite) {
  std::string where = "model directory '" + hf_dir + "'";
  MLAMOE_CHECK(fs::is_directory(hf_dir), "convert: " << where << " does not exist or is not a directory");
  std::string cfg_path = (fs::path(hf_dir) / "config.json").string();
  MLAMOE_CHECK(fs::exists(cfg_path), "convert: " << where << " has no config.json");
  nlohmann::json j = read_json_file(cfg_path);
  ModelConfig cfg = parse_model_config(j, cfg_path);
  MLAMOE_CHECK(overwrite || !fs::exists(ckpt_path), "convert: '" << ckpt_path << "' exists; pass --overwrite to replace it");
  auto [block_rows, block_cols] = fp8_block(j, cfg_path);
  SafetensorsDir st = SafetensorsDir::open(hf_dir);

  // Plan from the headers alone: every problem is found before a byte is written.
  ConvertStats stats;
  TensorList want = expected_hf_tensors(cfg);
  std::set<std::string> used;
  for (const auto& [name, shape] : want) {
    MLAMOE_CHECK(st.contains(name),
                 where << " has no tensor '" << name << "' (expected " << shape_str(shape) << " for this config)");
    const SafetensorsInfo& in = st.info(name);
    std::string file = st.file_of(name).path();
    MLAMOE_CHECK(in.shape == shape, "tensor '" << name << "' in '" << file << "' has shape " << shape_str(in.shape)
                                               << ", the config gives " << shape_str(shape));
    used.insert(name);
    if (in.dtype == "F8_E4M3") {
      std::string scale = name + "_scale_inv";
      MLAMOE_CHECK(shape.size() == 2, "tensor '" << name << "' in '" << file
                                                 << "' is F8_E4M3 but not a matrix (only block-scaled matrices are supported)");
      MLAMOE_CHECK(st.contains(scale),
                   "tensor '" << name << "' in '" << file << "' is F8_E4M3 but " << where << " has no '" << scale << "'");
      Shape want_scale = {(shape[0] + block_rows - 1) / block_rows, (shape[1] + block_cols - 1) / block_cols};
      MLAMOE_CHECK(st.info(scale).shape == want_scale, "tensor '" << scale << "' has shape " << shape_str(st.info(scale).shape)
                                                                  << ", expected " << shape_str(want_scale) << " for "
                                                                  << shape_str(shape) << " in blocks of " << block_rows << "x"
                                                                  << block_cols);
      ++stats.fp8;
    } else {
      MLAMOE_CHECK(in.dtype == "BF16" || in.dtype == "F16" || in.dtype == "F32" || in.dtype == "F64",
                   "tensor '" << name << "' in '" << file << "' has dtype " << in.dtype
                              << " (supported: BF16, F16, F32, F64, F8_E4M3 with a scale)");
    }
  }
  std::map<std::string, std::string> copies;
  for (const auto& [copy, original] : mtp_copies(cfg)) copies[copy] = original;
  Shape vd = {cfg.vocab_size, cfg.hidden_size};
  for (const auto& name : st.names()) {
    if (used.count(name)) continue;
    ++stats.dropped;
    if (is_rotary_buffer(name)) continue;
    if (is_scale(name)) {
      std::string base = name.substr(0, name.size() - std::string("_scale_inv").size());
      MLAMOE_CHECK(used.count(base) && st.info(base).dtype == "F8_E4M3",
                   where << " has tensor '" << name << "' but no F8_E4M3 model tensor '" << base << "' for it to scale");
      continue;
    }
    MLAMOE_CHECK(copies.count(name),
                 where << " has an unexpected tensor '" << name << "' (not part of a model with this config)");
    MLAMOE_CHECK(st.info(name).shape == vd, "tensor '" << name << "' has shape " << shape_str(st.info(name).shape)
                                                       << ", the config gives " << shape_str(vd) << " (a copy of '"
                                                       << copies[name] << "')");
  }

  // The weights are stored dequantised in f32, so the quantization settings no longer apply.
  nlohmann::json stored = j;
  stored.erase("quantization_config");
  CheckpointTensorWriter out(ckpt_path, stored, 0);
  std::vector<float> values, scale;
  for (const auto& [name, shape] : want) {
    st.read_f32(name, values);
    if (st.info(name).dtype == "F8_E4M3") {
      std::string sname = name + "_scale_inv";
      st.read_f32(sname, scale);
      dequantize_fp8_blocks(values, shape[0], shape[1], scale, st.info(sname).shape, block_rows, block_cols,
                            "tensor '" + name + "'");
    }
    int64_t bad = std::count_if(values.begin(), values.end(), [](float x) { return !std::isfinite(x); });
    if (bad > 0) stats.nonfinite.push_back(name + ": " + std::to_string(bad));
    out.write(name, shape, values.data());
    ++stats.tensors;
    stats.parameters += shape_numel(shape);
  }
  if (!stats.nonfinite.empty() && !allow_nonfinite) {
    // Refused before finish(): the unfinished file is removed, nothing is written.
    std::string list;
    for (size_t i = 0; i < std::min<size_t>(stats.nonfinite.size(), 3); ++i) list += (i ? "; " : "") + stats.nonfinite[i];
    throw Error("convert: " + std::to_string(stats.nonfinite.size()) + " tensor(s) of " + where + " hold NaN or Inf values (" +
                list + (stats.nonfinite.size() > 3 ? "; ..." : "") + "); pass --allow-nonfinite to import them anyway");
  }
  out.finish();
  stats.files = 1;
  return stats;
}

ConvertStats export_hf_checkpoint(const std::string& ckpt_path, const std::string& hf_dir, const std::string& dtype,
                                  uint64_t max_shard_bytes, bool overwrite) {
  MLAMOE_CHECK(dtype == "bf16" || dtype == "f32", "convert: --dtype must be bf16 or f32, got '" << dtype << "'");
  MLAMOE_CHECK(fs::exists(ckpt_path), "convert: checkpoint '" << ckpt_path << "' does not exist");
  nlohmann::json j = read_checkpoint_config(ckpt_path);
  std::string where = "checkpoint '" + ckpt_path + "'";
  ModelConfig cfg = parse_model_config(j, where);
  fs::path dir(hf_dir);
  bool existed = fs::exists(dir);
  MLAMOE_CHECK(!existed || fs::is_directory(dir), "convert: '" << hf_dir << "' exists and is not a directory");
  MLAMOE_CHECK(!existed || overwrite || fs::is_empty(dir), "convert: '" << hf_dir << "' exists; pass --overwrite to replace it");
  check_same_tensors(expected_hf_tensors(cfg), list_checkpoint_tensors(ckpt_path), where);

  // Everything is written into DIR/.mlamoe-convert.tmp first and moved into place at the end, so a
  // failure leaves DIR as it was.
  std::error_code ec;
  fs::create_directories(dir, ec);
  MLAMOE_CHECK(fs::is_directory(dir), "convert: cannot create directory '" << hf_dir << "'" << (ec ? ": " + ec.message() : ""));
  fs::path tmp = dir / ".mlamoe-convert.tmp";
  fs::remove_all(tmp, ec);
  ConvertStats stats;
  try {
    std::vector<std::string> files;
    {
      SafetensorsDirWriter w(tmp.string(), dtype == "bf16" ? "BF16" : "F32", max_shard_bytes);
      std::vector<std::pair<std::string, std::string>> copies = mtp_copies(cfg);
      for_each_checkpoint_tensor(ckpt_path, [&](const std::string& name, const Shape& shape, const std::vector<float>& v) {
        // HF keeps the routing correction biases in f32 whatever the weights' dtype.
        std::string dt = ends_with(name, ".e_score_correction_bias") ? "F32" : "";
        w.add(name, shape, v.data(), dt);
        for (const auto& [copy, original] : copies)
          if (original == name) w.add(copy, shape, v.data(), dt);
        ++stats.tensors;
        stats.parameters += shape_numel(shape);
      });
      files = w.finish();
    }
    write_text_file(tmp / "config.json", hf_config(j, dtype).dump(2) + "\n");
    files.push_back("config.json");
    // Into place: a stale index first (it would point at old shards), then the new files (the
    // index after its shards, config.json last), then stale shards of an earlier export.
    std::set<std::string> fresh(files.begin(), files.end());
    if (!fresh.count("model.safetensors.index.json")) fs::remove(dir / "model.safetensors.index.json", ec);
    for (const auto& f : files) {
      fs::rename(tmp / f, dir / f, ec);
      MLAMOE_CHECK(!ec, "convert: cannot move '" << f << "' into '" << hf_dir << "': " << ec.message());
    }
    for (const auto& e : fs::directory_iterator(dir)) {
      std::string name = e.path().filename().string();
      if (is_model_file(name) && !fresh.count(name)) fs::remove(e.path(), ec);
    }
    fs::remove_all(tmp, ec);
    stats.files = static_cast<int64_t>(files.size());
  } catch (...) {
    fs::remove_all(tmp, ec);
    if (!existed) fs::remove(dir, ec);  // only removes it if still empty
    throw;
  }
  return stats;
}

int run_convert_command(const std::vector<std::string>& args) {
  CliArgs a("convert", args, {"overwrite", "allow-nonfinite"});
  std::string from_hf = a.get("from-hf", ""), to = a.get("to", ""), from = a.get("from", ""), to_hf = a.get("to-hf", "");
  std::string dtype = a.get("dtype", "");
  int64_t shard_mb = a.get_int("shard-size-mb", 4096, 1, int64_t{1} << 30);
  bool shard_given = !a.get("shard-size-mb", "").empty();
  bool overwrite = a.has_switch("overwrite"), allow_nonfinite = a.has_switch("allow-nonfinite");
  a.reject_unknown();
  bool import = !from_hf.empty() || !to.empty(), export_ = !from.empty() || !to_hf.empty();
  MLAMOE_CHECK(import != export_, "convert: give either --from-hf DIR --to CKPT.h5 or --from CKPT.h5 --to-hf DIR");
  if (import) {
    MLAMOE_CHECK(!from_hf.empty() && !to.empty(), "convert: --from-hf DIR and --to CKPT.h5 go together");
    MLAMOE_CHECK(dtype.empty() && !shard_given, "convert: --dtype and --shard-size-mb apply to --to-hf only");
    ConvertStats s = import_hf_checkpoint(from_hf, to, overwrite, allow_nonfinite);
    for (const auto& t : s.nonfinite)
      std::fprintf(stderr, "warning: convert: non-finite values kept (--allow-nonfinite) in %s\n", t.c_str());
    std::printf(
        "convert: %lld tensors, %s parameters from %s -> %s (f32; %lld FP8 tensors dequantised, %lld HF-only tensors dropped)\n",
        static_cast<long long>(s.tensors), human(s.parameters).c_str(), from_hf.c_str(), to.c_str(),
        static_cast<long long>(s.fp8), static_cast<long long>(s.dropped));
    return 0;
  }
  MLAMOE_CHECK(!from.empty() && !to_hf.empty(), "convert: --from CKPT.h5 and --to-hf DIR go together");
  MLAMOE_CHECK(!allow_nonfinite, "convert: --allow-nonfinite applies to --from-hf only");
  if (dtype.empty()) dtype = "bf16";
  ConvertStats s = export_hf_checkpoint(from, to_hf, dtype, static_cast<uint64_t>(shard_mb) << 20, overwrite);
  std::printf("convert: %lld tensors, %s parameters from %s -> %s (%s, %lld files)\n", static_cast<long long>(s.tensors),
              human(s.parameters).c_str(), from.c_str(), to_hf.c_str(), dtype.c_str(), static_cast<long long>(s.files));
  return 0;
}

}  // namespace mlamoe
