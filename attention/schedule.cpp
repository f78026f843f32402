// build_schedule(): turns a kind's MaskRule into the CSR block schedule the kernels run, asking
// the rule for each block's class first and looking at single elements only where it cannot
// tell; plus the views of a schedule that tests and `ditkit attention mask` compare.
#include <algorithm>
#include <cstdint>

#include "attention/schedule.h"
#include "core/error.h"
#include "core/threadpool.h"

namespace ditkit::attention {
namespace {

// A kernel order checked against its token count: every token exactly once, -1 for padding.
// pad_before[p] = padding slots at positions < p, so a range's padding count is one subtraction.
struct Order {
  int64_t len;
  std::vector<int64_t> pad_before;  // empty when there is no padding

  Order(const std::vector<int64_t>& order, int64_t tokens, const char* what) : len(tokens) {
    DK_CHECK(tokens > 0, "build_schedule: ", what, " tokens must be positive, got ", tokens);
    if (order.empty()) return;
    len = int64_t(order.size());
    DK_CHECK(len >= tokens, "build_schedule: ", what, " order has ", len, " positions for ", tokens, " tokens");
    std::vector<uint8_t> seen(size_t(tokens), 0);
    pad_before.assign(size_t(len) + 1, 0);
    for (int64_t p = 0; p < len; ++p) {
      const int64_t t = order[size_t(p)];
      DK_CHECK(t >= -1 && t < tokens, "build_schedule: ", what, " order[", p, "] = ", t, " is not a token in [0, ",
               tokens, ") or -1");
      if (t >= 0) {
        DK_CHECK(!seen[size_t(t)], "build_schedule: ", what, " order holds token ", t, " twice");
        seen[size_t(t)] = 1;
      }
      pad_before[size_t(p) + 1] = pad_before[size_t(p)] + (t < 0);
    }
    DK_CHECK(pad_before.back() == len - tokens, "build_schedule: ", what, " order misses ",
             pad_before.back() - (len - tokens), " of its ", tokens, " tokens");
    if (pad_before.back() == 0) pad_before.clear();
  }

  int64_t padding(int64_t begin, int64_t end) const {
    return pad_before.empty() ? 0 : pad_before[size_t(end)] - pad_before[size_t(begin)];
  }
};

// One query block's share of the schedule, built by one task and concatenated afterwards.
struct Row {
  std::vector<int32_t> cols;
  std::vector<uint8_t> partial;  // per entry
  std::vector<uint64_t> bits;    // the partial entries' masks, in entry order
  int64_t visible = 0;
};

void build_row(const MaskRule& rule, const BlockSchedule& s, const Order& qo, const Order& ko, int64_t qb,
               Row& row) {
  const int64_t q0 = qb * s.q_block, q1 = std::min(q0 + s.q_block, s.q_len);
  const int64_t real_rows = (q1 - q0) - qo.padding(q0, q1);
  if (real_rows == 0) return;  // padding query rows see nothing
  const int64_t words = s.mask_words();
  std::vector<uint64_t> mask(size_t(s.q_block * words));
  for (int64_t kb = 0; kb < s.k_blocks(); ++kb) {
    const int64_t k0 = kb * s.k_block, k1 = std::min(k0 + s.k_block, s.k_len);
    const int64_t real_keys = (k1 - k0) - ko.padding(k0, k1);
    if (real_keys == 0) continue;
    const BlockClass cls = rule.classify(q0, q1, k0, k1);
    if (cls == BlockClass::Empty) continue;
    const bool padded = real_rows < q1 - q0 || real_keys < k1 - k0;
    if (cls == BlockClass::Full && !padded) {
      row.cols.push_back(int32_t(kb));
      row.partial.push_back(0);
      row.visible += real_rows * real_keys;
      continue;
    }
    // Element by element (a Full block with padding slots keeps only its real pairs).
    std::fill(mask.begin(), mask.end(), 0);
    int64_t visible = 0;
    for (int64_t qp = q0; qp < q1; ++qp) {
      if (s.q_token(qp) < 0) continue;
      uint64_t* bits = mask.data() + (qp - q0) * words;
      for (int64_t kp = k0; kp < k1; ++kp) {
        if (s.k_token(kp) < 0 || (cls == BlockClass::Partial && !rule.visible(qp, kp))) continue;
        bits[(kp - k0) / 64] |= uint64_t(1) << ((kp - k0) % 64);
        ++visible;
      }
    }
    if (visible == 0) continue;
    row.cols.push_back(int32_t(kb));
    row.visible += visible;
    const bool full = !padded && visible == real_rows * real_keys;
    row.partial.push_back(!full);
    if (!full) row.bits.insert(row.bits.end(), mask.begin(), mask.end());
  }
}

// Calls fn(canonical query, canonical key) for every visible pair of the schedule, one query
// block per task (tasks touch distinct query tokens).
template <typename Fn>
void for_each_visible(const BlockSchedule& s, const Fn& fn) {
  const int64_t words = s.mask_words();
  parallel_for(0, s.q_blocks(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t qb = begin; qb < end; ++qb) {
      const int64_t q0 = qb * s.q_block, q1 = std::min(q0 + s.q_block, s.q_len);
      for (int64_t e = s.row_ptr[size_t(qb)]; e < s.row_ptr[size_t(qb) + 1]; ++e) {
        const int64_t k0 = int64_t(s.cols[size_t(e)]) * s.k_block, k1 = std::min(k0 + s.k_block, s.k_len);
        const int64_t off = s.mask_offset[size_t(e)];
        for (int64_t qp = q0; qp < q1; ++qp) {
          const int64_t qi = s.q_token(qp);
          if (qi < 0) continue;
          const uint64_t* bits = off < 0 ? nullptr : s.bits.data() + off + (qp - q0) * words;
          for (int64_t kp = k0; kp < k1; ++kp)
            if (!bits || (bits[(kp - k0) / 64] >> ((kp - k0) % 64) & 1)) fn(qi, s.k_token(kp));
        }
      }
    }
  });
}

}  // namespace

double BlockSchedule::block_density() const {
  double area = 0;
  for (int64_t qb = 0; qb < q_blocks(); ++qb) {
    const double rows = double(std::min(q_block, q_len - qb * q_block));
    for (int64_t e = row_ptr[size_t(qb)]; e < row_ptr[size_t(qb) + 1]; ++e)
      area += rows * double(std::min(k_block, k_len - int64_t(cols[size_t(e)]) * k_block));
  }
  return area / (double(q_len) * double(k_len));
}

BlockSchedule build_schedule(const MaskRule& rule, int64_t q_tokens, int64_t k_tokens, int64_t q_block,
                             int64_t k_block, std::vector<int64_t> q_order, std::vector<int64_t> k_order) {
  DK_CHECK(q_block > 0 && k_block > 0, "build_schedule: block shape must be positive, got ", q_block, "x", k_block);
  const Order qo(q_order, q_tokens, "query"), ko(k_order, k_tokens, "key");
  BlockSchedule s;
  s.q_tokens = q_tokens;
  s.k_tokens = k_tokens;
  s.q_len = qo.len;
  s.k_len = ko.len;
  s.q_block = q_block;
  s.k_block = k_block;
  s.q_order = std::move(q_order);
  s.k_order = std::move(k_order);
  DK_CHECK(s.k_blocks() <= INT32_MAX, "build_schedule: ", s.k_blocks(), " key blocks do not fit the schedule");

  std::vector<Row> rows(size_t(s.q_blocks()));
  parallel_for(0, s.q_blocks(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t qb = begin; qb < end; ++qb) build_row(rule, s, qo, ko, qb, rows[size_t(qb)]);
  });

  size_t entries = 0, words = 0;
  for (const Row& r : rows) {
    entries += r.cols.size();
    words += r.bits.size();
  }
  s.row_ptr.reserve(rows.size() + 1);
  s.row_ptr.push_back(0);
  s.cols.reserve(entries);
  s.mask_offset.reserve(entries);
  s.bits.reserve(words);
  const int64_t block_words = s.q_block * s.mask_words();
  for (Row& r : rows) {
    s.cols.insert(s.cols.end(), r.cols.begin(), r.cols.end());
    int64_t offset = int64_t(s.bits.size());
    for (uint8_t partial : r.partial) {
      s.mask_offset.push_back(partial ? offset : -1);
      if (partial) offset += block_words;
    }
    s.bits.insert(s.bits.end(), r.bits.begin(), r.bits.end());
    s.row_ptr.push_back(int64_t(s.cols.size()));
    s.visible_pairs += r.visible;
    r = Row();  // frees the row's copy as we go
  }
  return s;
}

std::vector<uint8_t> token_mask(const BlockSchedule& s) {
  std::vector<uint8_t> mask(size_t(s.q_tokens * s.k_tokens), 0);
  for_each_visible(s, [&](int64_t qi, int64_t ki) { mask[size_t(qi * s.k_tokens + ki)] = 1; });
  return mask;
}

std::vector<BlockClass> block_classes(const BlockSchedule& s) {
  std::vector<BlockClass> classes(size_t(s.q_blocks() * s.k_blocks()), BlockClass::Empty);
  for (int64_t qb = 0; qb < s.q_blocks(); ++qb)
    for (int64_t e = s.row_ptr[size_t(qb)]; e < s.row_ptr[size_t(qb) + 1]; ++e)
      classes[size_t(qb * s.k_blocks() + s.cols[size_t(e)])] =
          s.mask_offset[size_t(e)] < 0 ? BlockClass::Full : BlockClass::Partial;
  return classes;
}

}  // namespace ditkit::attention
