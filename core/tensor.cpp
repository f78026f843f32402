#include "core/tensor.h"

#include <algorithm>
#include <numeric>

#include "core/allocator.h"
#include "core/ops.h"

namespace ditkit {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) DK_CHECK(d >= 0, "tensor shape ", shape_str(shape), " has a negative size");
  size_t bytes = dtype_bytes(dtype, shape_numel(shape));
  auto block = device_alloc(device, bytes);
  return from_blob(block.get(), shape, dtype, device, block, bytes);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0f, dtype, device); }

Tensor Tensor::full(const Shape& shape, float value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  ops::fill_(t, value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, DType dtype) {
  DK_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(), " values for shape ",
           shape_str(shape));
  Tensor t = empty(shape, dtype);
  from_f32(values.data(), dtype, t.raw(), int64_t(values.size()));
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device device, std::shared_ptr<void> owner,
                         size_t bytes) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->data = data;
  t.storage_->bytes = bytes ? bytes : dtype_bytes(dtype, shape_numel(shape));
  t.storage_->device = device;
  t.storage_->owner = std::move(owner);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::dim(int64_t i) const {
  int64_t d = i < 0 ? i + ndim() : i;
  DK_CHECK(d >= 0 && d < ndim(), "dim ", i, " out of range for tensor ", str());
  return shape_[d];
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "(undefined tensor)";
  return shape_str(shape_) + " " + dtype_name(dtype_) + " " + device().str();
}

namespace {
int64_t wrap_dim(int64_t d, int64_t n, const Tensor& t) {
  int64_t r = d < 0 ? d + n : d;
  DK_CHECK(r >= 0 && r < n, "dim ", d, " out of range for tensor ", t.str());
  return r;
}
void check_viewable(const Tensor& t, const char* op) {
  DK_CHECK(t.dtype() != DType::Q8_0, op, ": Q8_0 tensors support no views (", t.str(), ")");
}
}  // namespace

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  check_viewable(*this, "slice");
  d = wrap_dim(d, ndim(), *this);
  int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  DK_CHECK(step > 0, "slice: step must be positive");
  Tensor t = *this;
  t.offset_ += size_t(start * strides_[d]) * dtype_size(dtype_);
  t.shape_[d] = (end - start + step - 1) / step;
  t.strides_[d] *= step;
  return t;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, ndim(), *this);
  if (index < 0) index += shape_[d];
  DK_CHECK(index >= 0 && index < shape_[d], "select: index ", index, " out of range for dim ", d, " of ", str());
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check_viewable(*this, "permute");
  DK_CHECK(int64_t(dims.size()) == ndim(), "permute: ", dims.size(), " dims for tensor ", str());
  std::vector<bool> seen(dims.size());
  Tensor t = *this;
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], ndim(), *this);
    DK_CHECK(!seen[d], "permute: dim ", d, " repeated");
    seen[d] = true;
    t.shape_[i] = shape_[d];
    t.strides_[i] = strides_[d];
  }
  return t;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> dims(ndim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(a, ndim(), *this)], dims[wrap_dim(b, ndim(), *this)]);
  return permute(dims);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, ndim() + 1, *this);
  Tensor t = *this;
  int64_t st = d < ndim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, st);
  return t;
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, ndim(), *this);
  DK_CHECK(shape_[d] == 1, "squeeze: dim ", d, " of ", str(), " is not 1");
  Tensor t = *this;
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::expand(const Shape& shape) const {
  check_viewable(*this, "expand");
  DK_CHECK(shape.size() >= shape_.size(), "expand: ", str(), " to ", shape_str(shape));
  Tensor t = *this;
  size_t lead = shape.size() - shape_.size();
  t.shape_ = shape;
  t.strides_.assign(shape.size(), 0);
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (shape_[i] == shape[lead + i]) {
      t.strides_[lead + i] = strides_[i];
    } else {
      DK_CHECK(shape_[i] == 1, "expand: ", str(), " to ", shape_str(shape));
    }
  }
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DK_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DK_CHECK(known > 0 && numel() % known == 0, "reshape: ", str(), " to ", shape_str(shape));
    s[infer] = numel() / known;
  }
  DK_CHECK(shape_numel(s) == numel(), "reshape: ", str(), " has ", numel(), " elements, not ", shape_numel(s),
           " as ", shape_str(shape));
  Tensor t = is_contiguous() ? *this : contiguous();
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (ndim() == 0) return reshape({1});
  start = wrap_dim(start, ndim(), *this);
  end = wrap_dim(end, ndim(), *this);
  Shape s(shape_.begin(), shape_.begin() + start);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= shape_[i];
  s.push_back(m);
  s.insert(s.end(), shape_.begin() + end + 1, shape_.end());
  return reshape(s);
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  ops::copy_(out, *this);
  return out;
}

Tensor Tensor::to(DType dtype) const { return dtype == dtype_ ? *this : ops::cast(*this, dtype); }

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape_, dtype_, device);
  ops::copy_(out, *this);
  return out;
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = to(Device::cpu());
  if (host.dtype() == DType::Q8_0) {
    std::vector<float> v(static_cast<size_t>(numel()));
    to_f32(DType::Q8_0, host.raw(), v.data(), numel());
    return v;
  }
  Tensor f = host.to(DType::F32).contiguous();
  const float* p = f.data<float>();
  return std::vector<float>(p, p + f.numel());
}

float Tensor::item() const {
  DK_CHECK(numel() == 1, "item: tensor ", str(), " has more than one element");
  return to_vector()[0];
}

void expect_shape(const Tensor& t, const Shape& expected, const std::string& what) {
  bool ok = t.defined() && t.ndim() == int64_t(expected.size());
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == t.shape()[i];
  DK_CHECK(ok, what, ": expected shape ", shape_str(expected), ", got ", t.str());
}

}  // namespace ditkit
