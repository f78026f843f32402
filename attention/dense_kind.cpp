// The dense kind: every key is visible except padded ones. attend() runs it with the dense
// kernel; its mask is what `ditkit attention mask` draws and what a sparse kind is measured against.
#include "attention/kind.h"
#include "attention/kind_util.h"
#include "core/error.h"

namespace ditkit::attention {
namespace {

// Keys [0, valid) are visible to every query.
class PrefixKeys final : public MaskRule {
 public:
  explicit PrefixKeys(int64_t valid) : valid_(valid) {}
  bool visible(int64_t, int64_t kp) const override { return kp < valid_; }
  BlockClass classify(int64_t, int64_t, int64_t k0, int64_t k1) const override {
    if (k1 <= valid_) return BlockClass::Full;
    return k0 >= valid_ ? BlockClass::Empty : BlockClass::Partial;
  }

 private:
  int64_t valid_;
};

class DenseKind final : public Kind {
 public:
  using Kind::Kind;
  std::string name() const override { return "dense"; }
  bool is_dense() const override { return true; }
  KindMask mask(const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) const override {
    DK_CHECK(q_tokens > 0 && k_tokens > 0, "attention kind 'dense': token counts must be positive, got ", q_tokens,
             " queries, ", k_tokens, " keys");
    DK_CHECK(layout.valid_keys == -1 || (layout.valid_keys >= 1 && layout.valid_keys <= k_tokens),
             "attention kind 'dense': valid_keys must be -1 or in [1, ", k_tokens, "], got ", layout.valid_keys);
    return {std::make_unique<PrefixKeys>(layout.valid_keys < 0 ? k_tokens : layout.valid_keys), {}, {}};
  }
};

}  // namespace

std::shared_ptr<const Kind> make_dense_kind(const nlohmann::json& params) {
  KindParams p("dense", params);
  p.scale();
  return std::make_shared<DenseKind>(p.finish());
}

}  // namespace ditkit::attention
