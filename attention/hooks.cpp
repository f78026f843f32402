// Site selection of attention hooks.
#include <algorithm>

#include "attention/hooks.h"

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

}  // namespace ditkit::attention
