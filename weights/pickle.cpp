#include "weights/pickle.h"

#include <cstring>
#include <unordered_map>

#include "core/error.h"

namespace ditkit::weights::pickle {

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Global: return "global";
    case Value::Kind::Call: return "call";
    case Value::Kind::Persistent: return "persistent id";
  }
  return "?";
}

namespace {

// Opcodes of pickle protocols 1 to 4 (Python's Lib/pickle.py names).
enum Op : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', BINFLOAT = 'G', BININT = 'J', BININT1 = 'K',
  BININT2 = 'M', NONE = 'N', BINPERSID = 'Q', REDUCE = 'R', BINSTRING = 'T', SHORT_BINSTRING = 'U',
  BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e',
  BINGET = 'h', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', BINPUT = 'q', LONG_BINPUT = 'r',
  SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINBYTES = 'B', SHORT_BINBYTES = 'C',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89,
  LONG1 = 0x8a, LONG4 = 0x8b, SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e,
  STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::function<bool(const std::string&)>& allowed,
            const std::string& what)
      : data_(data), size_(size), allowed_(allowed), what_(what) {}

  Pickle run() {
    while (true) {
      const size_t at = pos_;
      const uint8_t op = read_uint(1);
      switch (op) {
        case PROTO: {
          const uint64_t version = read_uint(1);
          check(version <= 5, "unsupported pickle protocol ", version);
          break;
        }
        case FRAME: read_uint(8); break;  // frames only group opcodes; their length is a hint
        case STOP: result_.root = pop(); return std::move(result_);
        case MARK: marks_.push_back(stack_.size()); break;
        case POP: pop(); break;
        case POP_MARK: pop_mark(); break;
        case DUP: push(top()); break;
        case NONE: push(make(Value::Kind::None)); break;
        case NEWTRUE: case NEWFALSE: push_bool(op == NEWTRUE); break;
        case BININT: push_int(int32_t(read_uint(4))); break;
        case BININT1: push_int(int64_t(read_uint(1))); break;
        case BININT2: push_int(int64_t(read_uint(2))); break;
        case LONG1: push_int(read_long(read_uint(1))); break;
        case LONG4: push_int(read_long(read_length(4))); break;
        case BINFLOAT: {
          const uint64_t bits = read_uint_be(8);
          Value* v = make(Value::Kind::Float);
          std::memcpy(&v->real, &bits, 8);
          push(v);
          break;
        }
        case SHORT_BINUNICODE: case SHORT_BINSTRING: push_text(Value::Kind::String, read_length(1)); break;
        case BINUNICODE: case BINSTRING: push_text(Value::Kind::String, read_length(4)); break;
        case BINUNICODE8: push_text(Value::Kind::String, read_length(8)); break;
        case SHORT_BINBYTES: push_text(Value::Kind::Bytes, read_length(1)); break;
        case BINBYTES: push_text(Value::Kind::Bytes, read_length(4)); break;
        case BINBYTES8: push_text(Value::Kind::Bytes, read_length(8)); break;
        case EMPTY_TUPLE: push(make(Value::Kind::Tuple)); break;
        case TUPLE1: case TUPLE2: case TUPLE3: push_sequence(Value::Kind::Tuple, pop_n(op - TUPLE1 + 1)); break;
        case TUPLE: push_sequence(Value::Kind::Tuple, pop_mark()); break;
        case EMPTY_LIST: push(make(Value::Kind::List)); break;
        case LIST: push_sequence(Value::Kind::List, pop_mark()); break;
        case APPEND: {
          Value* item = pop();
          append(top(), {item});
          break;
        }
        case APPENDS: {
          std::vector<Value*> items = pop_mark();
          append(top(), items);
          break;
        }
        case EMPTY_DICT: push(make(Value::Kind::Dict)); break;
        case DICT: {
          Value* dict = make(Value::Kind::Dict);
          set_items(dict, pop_mark());
          push(dict);
          break;
        }
        case SETITEM: {
          std::vector<Value*> pair = pop_n(2);
          set_items(top(), pair);
          break;
        }
        case SETITEMS: {
          std::vector<Value*> items = pop_mark();
          set_items(top(), items);
          break;
        }
        case BINPUT: memo_put(read_uint(1)); break;
        case LONG_BINPUT: memo_put(read_uint(4)); break;
        case MEMOIZE: memo_put(memo_.size()); break;
        case BINGET: memo_get(read_uint(1)); break;
        case LONG_BINGET: memo_get(read_uint(4)); break;
        case GLOBAL: {
          std::string module = read_line();
          push_global(module, read_line());
          break;
        }
        case STACK_GLOBAL: {
          Value* name = pop();
          Value* module = pop();
          check(module->kind == Value::Kind::String && name->kind == Value::Kind::String,
                "STACK_GLOBAL needs two strings, got ", kind_name(module->kind), " and ", kind_name(name->kind));
          push_global(module->text, name->text);
          break;
        }
        case REDUCE: case NEWOBJ: {
          Value* args = pop();
          push(call(pop(), args));
          break;
        }
        case BUILD: {
          Value* state = pop();
          Value* obj = top();
          check(obj->kind == Value::Kind::Dict || obj->kind == Value::Kind::Call, "BUILD on a ",
                kind_name(obj->kind));
          // A dict's state is its attributes (an OrderedDict's _metadata): not needed.
          if (obj->kind == Value::Kind::Call) obj->state = state;
          break;
        }
        case BINPERSID: {
          Value* v = make(Value::Kind::Persistent);
          v->items = {pop()};
          push(v);
          break;
        }
        default:
          pos_ = at;
          fail_here("unsupported or unknown pickle opcode 0x", hex(op));
      }
    }
  }

 private:
  template <typename... Args>
  [[noreturn]] void fail_here(const Args&... args) const {
    fail(what_, ": ", args..., " (at pickle byte ", pos_, ")");
  }
  template <typename... Args>
  void check(bool cond, const Args&... args) const {
    if (!cond) fail_here(args...);
  }
  static std::string hex(uint8_t v) {
    const char* digits = "0123456789abcdef";
    return {digits[v >> 4], digits[v & 15]};
  }

  const uint8_t* take(uint64_t n) {
    check(n <= size_ - pos_, "truncated pickle: ", n, " more bytes needed, ", size_ - pos_, " left");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_uint(int n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
  }
  uint64_t read_uint_be(int n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | p[i];
    return v;
  }
  // A length field; BINSTRING and LONG4 store it signed.
  uint64_t read_length(int n) {
    const uint64_t len = read_uint(n);
    check(n != 4 || len < 0x80000000u, "negative length in pickle");
    return len;
  }
  // Two's complement little-endian integer of n bytes (LONG1/LONG4).
  int64_t read_long(uint64_t n) {
    check(n <= 8, "integer of ", n, " bytes is wider than 64 bits");
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
    return int64_t(v);
  }
  std::string read_line() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    check(nl != nullptr, "truncated pickle: unterminated GLOBAL name");
    const size_t len = static_cast<const uint8_t*>(nl) - (data_ + pos_);
    std::string line(reinterpret_cast<const char*>(take(len)), len);
    take(1);
    return line;
  }

  Value* make(Value::Kind kind) {
    result_.arena.push_back(std::make_unique<Value>());
    result_.arena.back()->kind = kind;
    return result_.arena.back().get();
  }
  void push(Value* v) { stack_.push_back(v); }
  void push_bool(bool b) {
    Value* v = make(Value::Kind::Bool);
    v->boolean = b;
    push(v);
  }
  void push_int(int64_t i) {
    Value* v = make(Value::Kind::Int);
    v->integer = i;
    push(v);
  }
  void push_text(Value::Kind kind, uint64_t len) {
    const uint8_t* p = take(len);
    Value* v = make(kind);
    v->text.assign(reinterpret_cast<const char*>(p), len);
    push(v);
  }
  void push_sequence(Value::Kind kind, std::vector<Value*> items) {
    Value* v = make(kind);
    v->items = std::move(items);
    push(v);
  }
  void push_global(const std::string& module, const std::string& name) {
    const std::string qualified = module + "." + name;
    check(allowed_(qualified), "pickle references ", qualified,
          ", which is not allowed (only torch tensor and storage types are; nothing is executed)");
    Value* v = make(Value::Kind::Global);
    v->text = qualified;
    push(v);
  }

  // The stack above the innermost mark is all that opcodes may touch.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value* top() const {
    check(stack_.size() > floor(), "pickle stack underflow");
    return stack_.back();
  }
  Value* pop() {
    Value* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Value*> pop_n(size_t n) {
    check(stack_.size() >= floor() + n, "pickle stack underflow");
    std::vector<Value*> items(stack_.end() - n, stack_.end());
    stack_.resize(stack_.size() - n);
    return items;
  }
  std::vector<Value*> pop_mark() {
    check(!marks_.empty(), "pickle MARK missing");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + mark, stack_.end());
    stack_.resize(mark);
    return items;
  }

  void append(Value* list, const std::vector<Value*>& items) {
    check(list->kind == Value::Kind::List, "APPEND to a ", kind_name(list->kind));
    list->items.insert(list->items.end(), items.begin(), items.end());
  }
  void set_items(Value* dict, const std::vector<Value*>& items) {
    check(dict->kind == Value::Kind::Dict, "SETITEM on a ", kind_name(dict->kind));
    check(items.size() % 2 == 0, "SETITEMS with an odd number of values");
    for (size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
  }
  void memo_put(uint64_t index) { memo_[index] = top(); }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    check(it != memo_.end(), "pickle memo index ", index, " was never stored");
    push(it->second);
  }

  Value* call(Value* callable, Value* args) {
    check(callable->kind == Value::Kind::Global, "call of a ", kind_name(callable->kind),
          " (only globals may be called)");
    check(args->kind == Value::Kind::Tuple, "call of ", callable->text, " with ", kind_name(args->kind),
          " arguments (a tuple is needed)");
    if (callable->text == "collections.OrderedDict") {
      check(args->items.empty(), "collections.OrderedDict with arguments is not supported");
      return make(Value::Kind::Dict);
    }
    Value* v = make(Value::Kind::Call);
    v->callable = callable;
    v->items = args->items;
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::function<bool(const std::string&)>& allowed_;
  const std::string& what_;
  Pickle result_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
};

}  // namespace

Pickle unpickle(const uint8_t* data, size_t size, const std::function<bool(const std::string&)>& allowed,
                const std::string& what) {
  return Unpickler(data, size, allowed, what).run();
}

}  // namespace ditkit::weights::pickle
