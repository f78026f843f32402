// Pieces the sparse kinds share: reading a kind's parameters (known keys, defaults, errors that
// name the kind and the key) and the joint-attention text rule around a kind's grid pattern
// (../shared/spec/attention.md §0.1).
#pragma once
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/kind.h"

namespace ditkit::attention {

// A kind's parameters as given. Each accessor takes its key and fills in the default;
// finish() rejects every key nobody took and returns all parameters, defaults included.
class KindParams {
 public:
  KindParams(std::string kind, const nlohmann::json& given);

  int64_t integer(const std::string& key, int64_t fallback, int64_t min);
  // A number > 0 (or >= 0 when allow_zero).
  double number(const std::string& key, double fallback, bool allow_zero = false);
  std::string word(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);
  // The value when given, else null (nothing filled in).
  nlohmann::json optional(const std::string& key);
  // "scale": optional, a number >= 0 (0 = the kind's own rule); read by Kind::scale().
  void scale();
  // Keys accepted and kept as given but not used (the goldens' informative parameters).
  void informative(std::initializer_list<const char*> keys);
  nlohmann::json finish() const;

  // "attention kind 'NAME': ", the start of every error about these parameters.
  std::string where() const;

 private:
  std::string kind_;
  nlohmann::json given_, out_;
  std::vector<std::string> known_;
};

// The mask of a kind whose pattern is `grid`, a rule over the grid's kernel positions, joined
// with the layout's text by the joint-attention rule: grid queries see their grid keys plus every
// valid text key, text queries see every valid key, keys at or past layout.valid_keys are never
// seen. Text keeps its place (prefix first, suffix last); AdditionalKV keys act as text keys with
// no text queries. grid_order = grid token at each grid slot (-1 = padding; empty = row-major).
// Checks the token counts against the layout, naming `kind`.
KindMask joint_mask(const std::string& kind, const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens,
                    std::unique_ptr<MaskRule> grid, const std::vector<int64_t>& grid_order = {});

}  // namespace ditkit::attention
