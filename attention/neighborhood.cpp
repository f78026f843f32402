// Neighborhood attention (NATTEN / GNA, ../shared/spec/attention.md §3): the per-axis window,
// the tile permutation, the mask rule (with exact block classes from per-axis interval
// reasoning) and the "neighborhood" kind.
#include "attention/neighborhood.h"

#include <algorithm>

#include "attention/kind_util.h"
#include "core/error.h"

namespace ditkit::attention {

std::array<int64_t, 2> WindowAxis::window(int64_t x, int64_t n) const {
  const int64_t wl = kernel / 2, wr = kernel - 1 - wl;  // even kernels: one more key on the left
  if (clipped) return {std::max<int64_t>(x - wl, 0), std::min(x + wr, n - 1)};
  if (causal) {
    // The window ends at the query and starts from the last query of its stride group.
    const int64_t leader = std::min(x / stride * stride + stride - 1, n - 1);
    return {std::max<int64_t>(leader - kernel + 1, 0), x};
  }
  // Centred on the stride group's centre, shifted inward at the borders (always `kernel` keys).
  const int64_t leader = std::min(x / stride * stride + stride / 2, n - 1);
  const int64_t centre = std::clamp(leader, wl, n - 1 - wr);
  return {centre - wl, centre + wr};
}

namespace {

bool tiled(const WindowAxes& axes) {
  return std::all_of(axes.begin(), axes.end(), [](const WindowAxis& a) { return a.tile > 0; });
}

// Tiles per dilation group along an axis (the axis padded to a multiple of tile * dilation).
int64_t tiles_per_group(const WindowAxis& a) { return (a.length + a.tile * a.dilation - 1) / (a.tile * a.dilation); }

// The grid's kernel order as a mixed-radix number, most significant digit first: canonical
// order (t, h, w); tile order (group t, h, w; tile t, h, w; offset t, h, w), where coordinate
// x = (tile * tile_size + offset) * dilation + group.
std::vector<int64_t> order_radix(const WindowAxes& axes) {
  if (!tiled(axes)) return {axes[0].length, axes[1].length, axes[2].length};
  std::vector<int64_t> radix;
  for (const WindowAxis& a : axes) radix.push_back(a.dilation);
  for (const WindowAxis& a : axes) radix.push_back(tiles_per_group(a));
  for (const WindowAxis& a : axes) radix.push_back(a.tile);
  return radix;
}

struct Range {
  int64_t lo = 0, hi = -1;
  bool empty() const { return hi < lo; }
};

// The coordinates a run of kernel positions covers on one axis: an interval of coordinates
// (canonical order) or, in dilation groups [g0, g1], an interval of within-group indices (tile
// order).
struct AxisSet {
  bool grouped = false;
  int64_t g0 = 0, g1 = 0, lo = 0, hi = -1;

  // Within-group indices of group g in the set, clipped to the group's n real tokens.
  Range in_group(int64_t g, int64_t dilation, int64_t n) const {
    Range r;
    if (grouped) {
      if (g < g0 || g > g1) return {};
      r = {lo, hi};
    } else {
      if (hi < g) return {};
      r = {(lo - g + dilation - 1) / dilation, (hi - g) / dilation};
    }
    r.hi = std::min(r.hi, n - 1);
    return r;
  }
  bool real(const WindowAxis& a) const {
    for (int64_t g = 0; g < a.dilation; ++g)
      if (!in_group(g, a.dilation, a.group_length(g)).empty()) return true;
    return false;
  }
};

// A box of grid tokens: the product of one set per axis.
using Box = std::array<AxisSet, 3>;

// The boxes of a position range: a run of a mixed-radix number splits into at most
// 2 * digits - 1 boxes, each a prefix of fixed digits, one digit over an interval and the rest full.
struct Boxes {
  std::array<Box, 17> box;
  int n = 0;
};

class BoxSplitter {
 public:
  explicit BoxSplitter(const WindowAxes& axes) : axes_(axes), radix_(order_radix(axes)), span_(radix_.size() + 1, 1) {
    for (size_t i = radix_.size(); i-- > 0;) span_[i] = span_[i + 1] * radix_[i];
  }
  int64_t size() const { return span_[0]; }

  // Boxes of the real tokens at grid positions [a, b).
  void split(int64_t a, int64_t b, Boxes& out) const {
    out.n = 0;
    if (a >= b) return;
    std::array<Range, 9> digits{};
    split(0, a, b, digits, out);
  }

 private:
  void split(size_t level, int64_t a, int64_t b, std::array<Range, 9>& digits, Boxes& out) const {
    const int64_t sub = span_[level + 1];
    int64_t first = a / sub;
    const int64_t last = (b - 1) / sub;
    if (a % sub != 0) {  // a partial leading digit value
      digits[level] = {first, first};
      if (first == last) return split(level + 1, a - first * sub, b - first * sub, digits, out);
      split(level + 1, a - first * sub, sub, digits, out);
      ++first;
    }
    const int64_t full_last = b % sub == 0 ? last : last - 1;
    if (first <= full_last) {
      digits[level] = {first, full_last};
      for (size_t i = level + 1; i < radix_.size(); ++i) digits[i] = {0, radix_[i] - 1};
      emit(digits, out);
    }
    if (b % sub != 0) {  // a partial trailing digit value
      digits[level] = {last, last};
      split(level + 1, 0, b - last * sub, digits, out);
    }
  }

  void emit(const std::array<Range, 9>& d, Boxes& out) const {
    Box box;
    for (size_t i = 0; i < 3; ++i) {
      AxisSet& s = box[i];
      if (radix_.size() == 3) {
        s = {false, 0, 0, d[i].lo, d[i].hi};
      } else {
        // A partial offset range comes with a single tile (every digit before it is fixed).
        const int64_t tile = axes_[i].tile;
        const Range r = d[3 + i], o = d[6 + i];
        const bool whole_tiles = o.lo == 0 && o.hi == tile - 1;
        s = {true, d[i].lo, d[i].hi, r.lo * tile + o.lo, whole_tiles ? r.hi * tile + o.hi : r.lo * tile + o.hi};
      }
      if (!s.real(axes_[i])) return;  // padding slots only
    }
    out.box[size_t(out.n++)] = box;
  }

  const WindowAxes& axes_;
  std::vector<int64_t> radix_, span_;
};

enum class Cover { None, Some, All };

// How many of the pairs (query coordinate in q, key coordinate in k) one axis allows, both sets
// holding real tokens. Windows move monotonically with the query, so per dilation group the
// first query whose window reaches k.lo is the one with the lowest window start among those
// that do, and the window intersection over q is [start(q.hi), end(q.lo)].
Cover cover(const WindowAxis& a, const AxisSet& qs, const AxisSet& ks) {
  int q_groups = 0, k_groups = 0;
  bool some = false, all = true;
  for (int64_t g = 0; g < a.dilation; ++g) {
    const int64_t n = a.group_length(g);
    const Range q = qs.in_group(g, a.dilation, n), k = ks.in_group(g, a.dilation, n);
    q_groups += !q.empty();
    k_groups += !k.empty();
    if (q.empty() || k.empty()) continue;
    int64_t lo = q.lo, hi = q.hi + 1;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (a.window(mid, n)[1] >= k.lo)
        hi = mid;
      else
        lo = mid + 1;
    }
    some = some || (lo <= q.hi && a.window(lo, n)[0] <= k.hi);
    all = all && a.window(q.hi, n)[0] <= k.lo && a.window(q.lo, n)[1] >= k.hi;
  }
  if (!some) return Cover::None;
  return all && q_groups == 1 && k_groups == 1 ? Cover::All : Cover::Some;
}

BlockClass box_class(const WindowAxes& axes, const Box& q, const Box& k) {
  bool all = true;
  for (size_t i = 0; i < 3; ++i) {
    const Cover c = cover(axes[i], q[i], k[i]);
    if (c == Cover::None) return BlockClass::Empty;
    all = all && c == Cover::All;
  }
  return all ? BlockClass::Full : BlockClass::Partial;
}

// The window over grid positions in kernel order (canonical or the tile order); the text
// around it is joint_mask()'s.
class WindowRule final : public MaskRule {
 public:
  WindowRule(const WindowAxes& axes, const std::vector<int64_t>& grid_order) : axes_(axes), split_(axes_) {
    const int64_t H = axes_[1].length, W = axes_[2].length;
    // Each axis's window ends per coordinate, then per position: the key's coordinates and the
    // query's window, so that visible() is three range checks.
    std::array<std::vector<std::array<int32_t, 2>>, 3> ends;
    for (size_t i = 0; i < 3; ++i) {
      const WindowAxis& a = axes_[i];
      dilated_ = dilated_ || a.dilation > 1;
      for (int64_t x = 0; x < a.length; ++x) {
        const int64_t g = x % a.dilation;
        const auto [lo, hi] = a.window(x / a.dilation, a.group_length(g));
        ends[i].push_back({int32_t(lo * a.dilation + g), int32_t(hi * a.dilation + g)});
      }
    }
    const size_t slots = grid_order.empty() ? size_t(split_.size()) : grid_order.size();
    cells_.resize(slots);
    windows_.resize(slots);
    for (size_t p = 0; p < slots; ++p) {
      const int64_t g = grid_order.empty() ? int64_t(p) : grid_order[p];
      if (g < 0) continue;  // padding: never asked about
      cells_[p] = {int32_t(g / (H * W)), int32_t(g / W % H), int32_t(g % W)};
      for (size_t i = 0; i < 3; ++i) {
        const auto [lo, hi] = ends[i][size_t(cells_[p][i])];
        windows_[p].first[i] = lo;
        windows_[p].span[i] = uint32_t(hi - lo);
      }
    }
  }

  bool visible(int64_t qp, int64_t kp) const override {
    const Window& w = windows_[size_t(qp)];
    const Cell& y = cells_[size_t(kp)];
    for (size_t i = 0; i < 3; ++i)
      if (uint32_t(y[i] - w.first[i]) > w.span[i]) return false;
    if (dilated_)  // the window's ends are in the query's dilation group
      for (size_t i = 0; i < 3; ++i)
        if ((y[i] - w.first[i]) % int32_t(axes_[i].dilation) != 0) return false;
    return true;
  }

  BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const override {
    Boxes qb, kb;
    split_.split(q0, q1, qb);
    split_.split(k0, k1, kb);
    bool full = false, empty = false;
    for (int i = 0; i < qb.n; ++i)
      for (int j = 0; j < kb.n; ++j) {
        const BlockClass c = box_class(axes_, qb.box[size_t(i)], kb.box[size_t(j)]);
        full = full || c == BlockClass::Full;
        empty = empty || c == BlockClass::Empty;
        if (c == BlockClass::Partial || (full && empty)) return BlockClass::Partial;
      }
    return full ? BlockClass::Full : BlockClass::Empty;  // Empty also when the block holds only padding
  }

 private:
  using Cell = std::array<int32_t, 3>;
  struct Window {
    std::array<int32_t, 3> first;  // per axis: first key coordinate
    std::array<uint32_t, 3> span;  // and last - first
  };

  WindowAxes axes_;
  BoxSplitter split_;
  bool dilated_ = false;
  std::vector<Cell> cells_;        // grid coordinates at each position
  std::vector<Window> windows_;    // the window of the query at each position
};

}  // namespace

std::vector<int64_t> tile_order(const WindowAxes& axes) {
  const std::vector<int64_t> radix = order_radix(axes);
  DK_CHECK(radix.size() == 9, "tile_order: every axis needs a tile");
  int64_t slots = 1;
  for (int64_t r : radix) slots *= r;
  std::vector<int64_t> order(static_cast<size_t>(slots));
  std::array<int64_t, 9> digit{};  // counts up in the kernel order
  for (int64_t p = 0; p < slots; ++p) {
    int64_t index = 0;
    bool padding = false;
    for (size_t i = 0; i < 3; ++i) {
      const int64_t x = (digit[3 + i] * axes[i].tile + digit[6 + i]) * axes[i].dilation + digit[i];
      padding = padding || x >= axes[i].length;
      index = index * axes[i].length + x;
    }
    order[size_t(p)] = padding ? -1 : index;
    for (size_t i = 9; i-- > 0;) {
      if (++digit[i] < radix[i]) break;
      digit[i] = 0;
    }
  }
  return order;
}

KindMask window_mask(const WindowAxes& axes, const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens,
                     const std::string& kind) {
  DK_CHECK(axes[0].length == layout.frames && axes[1].length == layout.height && axes[2].length == layout.width,
           "attention kind '", kind, "': window axes ", axes[0].length, "x", axes[1].length, "x", axes[2].length,
           " do not match the ", layout.frames, "x", layout.height, "x", layout.width, " layout");
  const std::vector<int64_t> order = tiled(axes) ? tile_order(axes) : std::vector<int64_t>{};
  return joint_mask(kind, layout, q_tokens, k_tokens, std::make_unique<WindowRule>(axes, order), order);
}

// ---- parameters ------------------------------------------------------------------------------

namespace {

bool positive_int(const nlohmann::json& v) { return v.is_number_integer() && v.get<int64_t>() >= 1; }

}  // namespace

nlohmann::json read_tile_shape(KindParams& p) {
  nlohmann::json v = p.optional("tile_shape");
  if (v.is_null()) return "auto";
  const bool ok = v == "auto" || v == "none" || positive_int(v) ||
                  (v.is_array() && !v.empty() && v.size() <= 3 && std::all_of(v.begin(), v.end(), positive_int));
  DK_CHECK(ok, p.where(), "tile_shape must be auto, none, a positive integer or a list of 1 to 3 of them, got ",
           v.dump());
  return v;
}

void apply_tile_shape(const nlohmann::json& v, int rank, WindowAxes& axes, const std::string& kind) {
  for (WindowAxis& a : axes) a.tile = v == "none" ? 0 : 1;  // axes the rank does not use have length 1
  if (v == "none") return;
  DK_CHECK(!v.is_array() || int(v.size()) == rank, "attention kind '", kind, "': tile_shape ", v.dump(), " has ",
           v.size(), " entries for a rank-", rank, " window");
  static const int64_t auto_tiles[3][3] = {{64}, {8, 8}, {1, 8, 8}};
  for (int i = 0; i < rank; ++i) {
    WindowAxis& a = axes[size_t(3 - rank + i)];
    if (v == "auto")
      a.tile = std::min(auto_tiles[rank - 1][i], (a.length + a.dilation - 1) / a.dilation);
    else
      a.tile = (v.is_array() ? v[size_t(i)] : v).get<int64_t>();
  }
}

namespace {

const char* const kWhere = "attention kind 'neighborhood': ";

// "t" / "h" / "w" for the rank's axes (rank 1: "l").
std::string axis_name(int rank, int axis) {
  static const char* names[] = {"t", "h", "w"};
  return rank == 1 ? "l" : names[3 - rank + axis];
}
const char* const kPerAxis[] = {"kernel_size", "stride", "dilation", "is_causal", "tile_shape"};

// The window rank the per-axis lists ask for (0: scalars only); `from` = the first list's key.
int list_rank(const nlohmann::json& p, std::string& from) {
  int rank = 0;
  for (const char* key : kPerAxis) {
    const nlohmann::json& v = p.at(key);
    if (!v.is_array()) continue;
    const int n = int(v.size());
    DK_CHECK(n >= 1 && n <= 3, kWhere, key, " ", v.dump(), " must have 1 to 3 entries (one per axis)");
    DK_CHECK(rank == 0 || n == rank, kWhere, key, " ", v.dump(), " has ", n, " axes but ", from, " ", p.at(from).dump(),
             " has ", rank);
    rank = n;
    from = key;
  }
  return rank;
}

// Entry `i` of a per-axis parameter (a scalar applies to every axis).
const nlohmann::json& entry(const nlohmann::json& v, int i) { return v.is_array() ? v[size_t(i)] : v; }

void check_stride(const WindowAxis& a, int rank, int i) {
  DK_CHECK(a.stride <= a.kernel, kWhere, "stride ", a.stride, " exceeds kernel_size ", a.kernel, " on axis ",
           axis_name(rank, i), " (need 1 <= stride <= kernel_size)");
}

// Checks the per-axis values (what needs no layout) and fills kernel (0 = "half"), stride,
// dilation and causal of the rank's axes.
void read_axes(const nlohmann::json& p, int rank, WindowAxes& axes) {
  const nlohmann::json &ks = p.at("kernel_size"), &causal = p.at("is_causal");
  DK_CHECK(ks == "half" || positive_int(ks) || (ks.is_array() && std::all_of(ks.begin(), ks.end(), positive_int)),
           kWhere, "kernel_size must be half, a positive integer or a list of them, got ", ks.dump());
  for (const char* key : {"stride", "dilation"})
    DK_CHECK(positive_int(p.at(key)) || (p.at(key).is_array() && std::all_of(p.at(key).begin(), p.at(key).end(),
                                                                             positive_int)),
             kWhere, key, " must be a positive integer or a list of them, got ", p.at(key).dump());
  const auto flag = [](const nlohmann::json& c) { return c.is_boolean() || c == 0 || c == 1; };
  DK_CHECK(flag(causal) || (causal.is_array() && std::all_of(causal.begin(), causal.end(), flag)), kWhere,
           "is_causal must be true, false (or 1, 0) or a list of them, got ", causal.dump());
  for (int i = 0; i < rank; ++i) {
    WindowAxis& a = axes[size_t(3 - rank + i)];
    a.kernel = ks == "half" ? 0 : entry(ks, i).get<int64_t>();
    a.stride = entry(p.at("stride"), i).get<int64_t>();
    a.dilation = entry(p.at("dilation"), i).get<int64_t>();
    a.causal = entry(causal, i) == true || entry(causal, i) == 1;
    if (a.kernel > 0) check_stride(a, rank, i);
  }
}

class NeighborhoodKind final : public Kind {
 public:
  using Kind::Kind;
  std::string name() const override { return "neighborhood"; }

  KindMask mask(const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) const override {
    return window_mask(axes_for(layout), layout, q_tokens, k_tokens, name());
  }

 private:
  WindowAxes axes_for(const TokenLayout& layout) const {
    const std::string shape = cat(layout.frames, "x", layout.height, "x", layout.width);
    std::string from;
    int rank = list_rank(params_, from);
    const std::string asks = from.empty() ? "" : cat(from, " ", params_.at(from).dump(), " asks for ");
    if (rank == 0) rank = layout.frames > 1 ? 3 : layout.height > 1 ? 2 : 1;
    DK_CHECK(rank == 3 || layout.frames == 1, kWhere, asks, "a rank-", rank,
             " window, which needs a single-frame layout, got ", shape, " (give 3 entries per axis for video)");
    DK_CHECK(rank >= 2 || layout.height == 1, kWhere, asks, "a rank-1 window, which needs a 1x1xL layout, got ", shape,
             " (give 2 entries per axis for images)");
    WindowAxes axes;
    axes[0].length = layout.frames;
    axes[1].length = layout.height;
    axes[2].length = layout.width;
    read_axes(params_, rank, axes);
    for (int i = 0; i < rank; ++i) {
      WindowAxis& a = axes[size_t(3 - rank + i)];
      if (a.kernel == 0) {  // half: odd, about half the axis (its dilation group)
        a.kernel = std::max<int64_t>(a.length / a.dilation / 2, 1) | 1;
        check_stride(a, rank, i);
      }
      DK_CHECK(a.kernel * a.dilation <= a.length, kWhere, "kernel_size ", a.kernel, " x dilation ", a.dilation,
               " exceeds axis ", axis_name(rank, i), " of length ", a.length, " in the ", shape,
               " layout (need kernel_size * dilation <= length)");
    }
    apply_tile_shape(params_.at("tile_shape"), rank, axes, name());
    return axes;
  }
};

}  // namespace

// Parameters, per axis of the layout's grid (a scalar applies to every axis; lists of 1, 2 or 3
// entries make the window rank 1 ([L] = width), 2 ([H, W], single frame) or 3 ([T, H, W]);
// scalars only: the layout's rank). Defaults suit a plain `--attention neighborhood` on any
// video or image: kernel_size "half" (odd, about half of each axis: 11x15x27 on Wan 480p),
// stride 1, dilation 1, is_causal false, tile_shape "auto" (tiles 1x8x8 / 8x8 / 64 that fill
// 64-token kernel blocks; "none" keeps the canonical order), scale 1/sqrt(head_dim). Joint text
// follows spec §0.1: text queries see every valid key, grid queries their window plus every
// valid text key (AdditionalKV: NATTEN's additional keys).
std::shared_ptr<const Kind> make_neighborhood_kind(const nlohmann::json& params) {
  KindParams p("neighborhood", params);
  nlohmann::json given = nlohmann::json::object();
  for (const auto& [key, fallback] : {std::pair<const char*, nlohmann::json>{"kernel_size", "half"},
                                      {"stride", 1},
                                      {"dilation", 1},
                                      {"is_causal", false}}) {
    const nlohmann::json v = p.optional(key);
    given[key] = v.is_null() ? fallback : v;
  }
  given["tile_shape"] = read_tile_shape(p);
  p.scale();
  p.informative({"block_size_for_block_class", "tile_tokens", "dilation_groups", "permuted_len", "padding_slots",
                 "permuted_partial_blocks", "permuted_full_blocks"});
  nlohmann::json all = p.finish();
  all.update(given);
  std::string from;
  const int rank = list_rank(all, from);
  WindowAxes axes;
  read_axes(all, rank == 0 ? 3 : rank, axes);
  return std::make_shared<NeighborhoodKind>(std::move(all));
}

}  // namespace ditkit::attention
