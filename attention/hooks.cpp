// Site selection of attention hooks.
#include <algorithm>

#include "attention/hooks.h"
#include "core/error.h"

namespace ditkit::attention {
namespace {

template <typename T>
bool listed(const std::vector<T>& list, T value) {
  return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

bool Where::matches(const Site& site) const {
  // A call without a step label (step < 0) is outside every step-limited selection.
  const bool step_ok = site.step < 0 ? step_begin <= 0 && step_end == INT_MAX
                                     : site.step >= step_begin && site.step < step_end;
  return step_ok && listed(layers, site.layer) && listed(passes, site.pass) && listed(roles, site.role);
}

bool moved_positions(const Control& control, const Site& at, const TokenLayout& layout,
                     const std::vector<int64_t>& ids, std::vector<int64_t>& moved) {
  if (!control.hooks) return false;
  Site site = at;
  site.row = control.row;
  bool any = false;
  for (const auto& h : *control.hooks) {
    if (!h || !h->applies(site)) continue;
    std::vector<int64_t> candidate = any ? moved : ids;
    if (h->positions(site, layout, candidate)) {
      DK_CHECK(candidate.size() == ids.size(), "attention hook (layer ", site.layer, "): position ids must keep ",
               ids.size(), " entries, got ", candidate.size());
      moved = std::move(candidate);
      any = true;
    }
  }
  return any;
}

void run_normed_hooks(const Control& control, const Site& at, const TokenLayout& layout,
                      const Positions* positions, Tensor& q, Tensor& k, Tensor& v) {
  if (!control.hooks) return;
  AttentionCall call{at, layout, q, k, v, 0.0f, positions, false, {}};
  call.site.row = control.row;
  bool any = false;
  for (const auto& h : *control.hooks) {
    if (!h || !h->applies(call.site)) continue;
    h->normed(call);
    any = true;
  }
  if (!any) return;
  DK_CHECK(call.q.shape() == q.shape() && call.k.shape() == k.shape() && call.v.shape() == v.shape(),
           "attention hook (layer ", at.layer, "): normed() must keep the shapes of q ", q.str(), ", k ", k.str(),
           ", v ", v.str());
  q = call.q;
  k = call.k;
  v = call.v;
}

}  // namespace ditkit::attention
