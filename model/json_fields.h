// Typed reading of one JSON object's fields for the config parsers (the model fields here, the
// "train", "data" and "parallel" sections in train/): wrong types and unknown fields are errors
// that name the file and the field's full path.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "model/json_parse.h"
#include "model/tensor/error.h"

namespace mlamoe {

// Reads fields of one JSON object, checking types, and remembers which it read so that the rest
// can be reported as unknown.
class Fields {
 public:
  Fields(const nlohmann::json& j, std::string where, std::string prefix)
      : j_(j), where_(std::move(where)), prefix_(std::move(prefix)) {
    MLAMOE_CHECK(j.is_object(), where_ << ": " << (prefix_.empty() ? "the config" : "field '" + prefix_ + "'")
                                       << " must be a JSON object, got " << brief(j));
  }

  bool has(const char* name) const { return j_.contains(name) && !j_.at(name).is_null(); }

  // One typed field: absent or null keeps the default (or is an error when required); a value of
  // the wrong JSON type is an error naming the field.
  template <class T>
  void get(const char* name, T& out, bool required = false) {
    if (!take(name, required)) return;
    const nlohmann::json& v = j_.at(name);
    bool ok;
    const char* expected;
    if constexpr (std::is_same_v<T, bool>) {
      ok = v.is_boolean(), expected = "true or false";
    } else if constexpr (std::is_integral_v<T>) {
      // An unsigned value past INT64_MAX (18446744073709551615) must not wrap to a negative one.
      MLAMOE_CHECK(!(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)),
                   where_ << ": field '" << path(name) << "' = " << v.get<uint64_t>() << " is out of range (at most 2^63 - 1)");
      ok = v.is_number_integer(), expected = "an integer";
    } else if constexpr (std::is_floating_point_v<T>) {
      ok = v.is_number(), expected = "a finite number";
    } else {
      ok = v.is_string(), expected = "a string";
    }
    MLAMOE_CHECK(ok, where_ << ": field '" << path(name) << "' must be " << expected << ", got " << brief(v));
    out = v.get<T>();
  }
  // null or absent -> empty
  void get(const char* name, std::optional<int64_t>& out) {
    seen_.insert(name);
    if (!has(name)) return;
    int64_t v = 0;
    get<int64_t>(name, v);
    out = v;
  }
  // A list of numbers.
  void get(const char* name, std::vector<double>& out) {
    if (!take(name, false)) return;
    const nlohmann::json& v = j_.at(name);
    bool ok = v.is_array();
    for (const auto& x : v) ok = ok && x.is_number();
    MLAMOE_CHECK(ok, where_ << ": field '" << path(name) << "' must be a list of numbers, got " << brief(v));
    out = v.get<std::vector<double>>();
  }
  // A list of strings.
  void get(const char* name, std::vector<std::string>& out) {
    if (!take(name, false)) return;
    const nlohmann::json& v = j_.at(name);
    bool ok = v.is_array();
    for (const auto& x : v) ok = ok && x.is_string();
    MLAMOE_CHECK(ok, where_ << ": field '" << path(name) << "' must be a list of strings, got " << brief(v));
    out = v.get<std::vector<std::string>>();
  }
  // A field HF configs carry that has no effect on training here.
  void ignore(const char* name) { seen_.insert(name); }

  void reject_unknown() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      MLAMOE_CHECK(seen_.count(it.key()), where_ << ": unknown field '" << path(it.key()).substr(0, 120) << "'");
  }

 private:
  bool take(const char* name, bool required) {
    seen_.insert(name);
    if (!has(name)) {
      MLAMOE_CHECK(!required, where_ << ": required field '" << path(name) << "' is missing");
      return false;
    }
    return true;
  }
  std::string path(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

  const nlohmann::json& j_;
  std::string where_, prefix_;
  std::set<std::string> seen_;
};

}  // namespace mlamoe
