// Restricted unpickler for the pickles torch.save writes (protocols 2 to 4). It builds a
// tree of plain values and never runs anything: GLOBAL/STACK_GLOBAL names are checked
// against a caller-given allow-list, and REDUCE/NEWOBJ only record the call (callable and
// arguments) for the caller to interpret. Values live in an arena owned by the result, so
// memo cycles or deep nesting in a hostile pickle cannot leak or overflow the stack.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ditkit::weights::pickle {

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Call, Persistent };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;             // String, Bytes; Global: "module.name"
  std::vector<Value*> items;    // Tuple, List; Call: the arguments; Persistent: the persistent id
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order (a repeated key: last wins)
  Value* callable = nullptr;    // Call: the Global called
  Value* state = nullptr;       // Call: the BUILD state, if any

  bool is_call_to(const std::string& name) const {
    return kind == Kind::Call && callable->kind == Kind::Global && callable->text == name;
  }
};

const char* kind_name(Value::Kind kind);

// The unpickled object and the arena that owns every value reachable from it.
struct Pickle {
  std::vector<std::unique_ptr<Value>> arena;
  Value* root = nullptr;
};

// Unpickles `size` bytes; `allowed("module.name")` decides which globals may appear, and
// `what` names the source in errors. collections.OrderedDict calls become plain dicts.
Pickle unpickle(const uint8_t* data, size_t size, const std::function<bool(const std::string&)>& allowed,
                const std::string& what);

}  // namespace ditkit::weights::pickle
