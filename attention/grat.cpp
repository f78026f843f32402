// The "grat" kind (OliverRensu/GRAT, ../shared/spec/attention.md §4): the grid is cut into
// contiguous groups, and all queries of a group share one key set made of whole groups: those
// sharing a group-grid axis with it (GRAT-X, criss-cross) or within radius_groups on every axis
// (GRAT-B, our reading of the paper). Groups run contiguously in the kernel order (the official
// clusterify permutation), so whole kernel blocks are full or empty; plus the joint text rule.
// group_shape "auto" is the official (4, 8, 8) on video and (8, 8) on images, clipped to the
// grid; a group_shape that does not divide the grid is padded, the padding slots masked.
#include <algorithm>
#include <array>
#include <cstdlib>

#include "attention/kind_util.h"
#include "core/error.h"

namespace ditkit::attention {
namespace {

// Groups over the (t, h, w) grid; images (rank 2) have one frame and group 1 on t.
struct Groups {
  int rank;
  std::array<int64_t, 3> dims, group, grid;  // grid = groups per axis, ceil(dims / group)
  int64_t tokens() const { return group[0] * group[1] * group[2]; }
  int64_t count() const { return grid[0] * grid[1] * grid[2]; }
};

// The clusterify order: groups row-major over the group grid, tokens row-major inside a group.
// A group cut by the grid's edge (group_shape not dividing it) is filled up with padding slots
// (-1) after its tokens, so every group is group_tokens slots and kernel blocks are rarely part
// padding.
std::vector<int64_t> cluster_order(const Groups& g) {
  std::vector<int64_t> order;
  order.reserve(size_t(g.count() * g.tokens()));
  for (int64_t a = 0; a < g.grid[0]; ++a)
    for (int64_t b = 0; b < g.grid[1]; ++b)
      for (int64_t c = 0; c < g.grid[2]; ++c) {
        const size_t end = order.size() + size_t(g.tokens());
        for (int64_t t = a * g.group[0]; t < std::min((a + 1) * g.group[0], g.dims[0]); ++t)
          for (int64_t h = b * g.group[1]; h < std::min((b + 1) * g.group[1], g.dims[1]); ++h)
            for (int64_t w = c * g.group[2]; w < std::min((c + 1) * g.group[2], g.dims[2]); ++w)
              order.push_back((t * g.dims[1] + h) * g.dims[2] + w);
        order.resize(end, -1);
      }
  return order;
}

// Group adjacency over grid kernel positions: position p is in group p / group_tokens.
class GroupRule final : public MaskRule {
 public:
  GroupRule(const Groups& g, bool criss_cross, int64_t radius)
      : rank_(g.rank), tokens_(g.tokens()), criss_cross_(criss_cross), radius_(radius) {
    for (int64_t a = 0; a < g.grid[0]; ++a)
      for (int64_t b = 0; b < g.grid[1]; ++b)
        for (int64_t c = 0; c < g.grid[2]; ++c) coords_.push_back({a, b, c});
  }

  bool visible(int64_t qp, int64_t kp) const override { return sees(qp / tokens_, kp / tokens_); }

  BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const override {
    bool any = false, all = true;
    for (int64_t qg = q0 / tokens_; qg <= (q1 - 1) / tokens_; ++qg)
      for (int64_t kg = k0 / tokens_; kg <= (k1 - 1) / tokens_; ++kg) {
        if (sees(qg, kg)) any = true;
        else all = false;
        if (any && !all) return BlockClass::Partial;
      }
    return all ? BlockClass::Full : BlockClass::Empty;
  }

 private:
  bool sees(int64_t qg, int64_t kg) const {
    const auto &q = coords_[size_t(qg)], &k = coords_[size_t(kg)];
    // GRAT-X: share a group-grid axis (images: h or w only, every group shares the one frame).
    if (criss_cross_) return (rank_ == 3 && q[0] == k[0]) || q[1] == k[1] || q[2] == k[2];
    for (int axis = 0; axis < 3; ++axis)
      if (std::abs(q[axis] - k[axis]) > radius_) return false;
    return true;
  }

  int rank_;
  int64_t tokens_;
  bool criss_cross_;
  int64_t radius_;
  std::vector<std::array<int64_t, 3>> coords_;
};

class GratKind final : public Kind {
 public:
  GratKind(nlohmann::json params, bool criss_cross, nlohmann::json group_shape, int64_t radius)
      : Kind(std::move(params)), criss_cross_(criss_cross), group_shape_(std::move(group_shape)), radius_(radius) {}
  std::string name() const override { return "grat"; }

  KindMask mask(const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) const override {
    const Groups g = groups(layout);
    return joint_mask("grat", layout, q_tokens, k_tokens, std::make_unique<GroupRule>(g, criss_cross_, radius_),
                      cluster_order(g));
  }

 private:
  // The groups on this layout: "auto" = (4, 8, 8) on video, (8, 8) on images, each clipped to
  // its axis; given shapes are used as they are (padded where they do not divide the grid).
  Groups groups(const TokenLayout& layout) const {
    Groups g;
    g.rank = layout.frames > 1 ? 3 : 2;
    g.dims = {layout.frames, layout.height, layout.width};
    if (group_shape_.is_string()) {
      g.group = {g.rank == 3 ? 4 : 1, 8, 8};
      for (int axis = 0; axis < 3; ++axis) g.group[axis] = std::min(g.group[axis], g.dims[axis]);
    } else if (group_shape_.is_number()) {
      const int64_t s = group_shape_.get<int64_t>();
      g.group = {g.rank == 3 ? s : 1, s, s};
    } else {
      const size_t n = group_shape_.size();
      DK_CHECK(!(n == 3 && g.rank == 2), "attention kind 'grat': a 3-D group_shape ", group_shape_.dump(),
               " on a single-frame layout makes every group share the frame axis (dense); give 2 values (h, w)");
      DK_CHECK(n == size_t(g.rank), "attention kind 'grat': group_shape ", group_shape_.dump(), " needs ", g.rank,
               " values for a ", layout.frames, "x", layout.height, "x", layout.width, " grid");
      g.group = {1, 1, 1};
      for (size_t i = 0; i < n; ++i) g.group[3 - n + i] = group_shape_[i].get<int64_t>();
    }
    for (int axis = 0; axis < 3; ++axis) g.grid[axis] = (g.dims[axis] + g.group[axis] - 1) / g.group[axis];
    return g;
  }

  bool criss_cross_;
  nlohmann::json group_shape_;  // "auto", a number for every axis, or one per axis
  int64_t radius_;
};

}  // namespace

std::shared_ptr<const Kind> make_grat_kind(const nlohmann::json& params) {
  KindParams p("grat", params);
  // A radius only means something for GRAT-B, so giving one selects it (the GRAT-B golden's
  // params say so only this way).
  const bool criss_cross = p.word("variant", params.contains("radius_groups") ? "b" : "x", {"x", "b"}) == "x";
  nlohmann::json group_shape = p.optional("group_shape");
  if (group_shape.is_null()) group_shape = "auto";
  const auto positive = [](const nlohmann::json& v) { return v.is_number_integer() && v.get<int64_t>() >= 1; };
  DK_CHECK(group_shape == "auto" || positive(group_shape) ||
               (group_shape.is_array() && (group_shape.size() == 2 || group_shape.size() == 3) &&
                std::all_of(group_shape.begin(), group_shape.end(), positive)),
           p.where(), "group_shape must be auto, a positive integer or 2 (h, w) or 3 (t, h, w) of them, got ",
           group_shape.dump());
  const int64_t radius = p.integer("radius_groups", 1, 0);
  p.scale();
  p.informative({"group_grid", "group_tokens", "block_size_for_block_class", "border"});
  nlohmann::json all = p.finish();
  all["group_shape"] = group_shape;
  return std::make_shared<GratKind>(std::move(all), criss_cross, std::move(group_shape), radius);
}

}  // namespace ditkit::attention
