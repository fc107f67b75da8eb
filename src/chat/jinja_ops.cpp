#include "chat/jinja_ops.h"

#include <cmath>

#include "chat/jinja_builtins.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace flashmem::jinja {

void fail_undefined(const Value& v) {
  if (v.s.empty()) fail("a value is undefined");
  fail("{}", v.s);
}

namespace {

bool is_integral(const Value& v) { return v.kind == Kind::kInt || v.kind == Kind::kBool; }
double as_double(const Value& v) { return v.kind == Kind::kFloat ? v.f : static_cast<double>(v.i); }

[[noreturn]] void fail_types(const std::string& op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

// a OP b on 64-bit integers; Error on overflow (Python's integers have no limit).
Value int_op(char op, int64_t a, int64_t b) {
  int64_t r = 0;
  const bool overflow = op == '+'   ? __builtin_add_overflow(a, b, &r)
                        : op == '-' ? __builtin_sub_overflow(a, b, &r)
                                    : __builtin_mul_overflow(a, b, &r);
  if (overflow) fail("integer overflow in '{}' (values beyond 64 bits are not supported)", op);
  return Value::integer(r);
}

std::string repeat(const std::string& s, int64_t n) {
  if (n <= 0 || s.empty()) return {};
  if (static_cast<uint64_t>(n) > kMaxTextBytes / s.size())
    fail("string repetition beyond {} bytes", kMaxTextBytes);
  std::string out;
  out.reserve(s.size() * n);
  for (int64_t k = 0; k < n; ++k) out += s;
  return out;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) fail_types(op, a, b);
  const bool ints = is_integral(a) && is_integral(b);
  if (op == "+") return ints ? int_op('+', a.i, b.i) : Value::real(as_double(a) + as_double(b));
  if (op == "-") return ints ? int_op('-', a.i, b.i) : Value::real(as_double(a) - as_double(b));
  if (op == "*") return ints ? int_op('*', a.i, b.i) : Value::real(as_double(a) * as_double(b));
  if (op == "/") {
    if (as_double(b) == 0) fail("division by zero");
    return Value::real(as_double(a) / as_double(b));
  }
  if (op == "//" || op == "%") {
    if (as_double(b) == 0) fail("{} by zero", op == "//" ? "integer division" : "modulo");
    if (ints) {
      if (a.i == INT64_MIN && b.i == -1) fail("integer overflow in '{}'", op);
      int64_t q = a.i / b.i, m = a.i % b.i;
      if (m != 0 && ((m < 0) != (b.i < 0))) {  // Python floors toward negative infinity
        --q;
        m += b.i;
      }
      return Value::integer(op == "//" ? q : m);
    }
    const double x = as_double(a), y = as_double(b);
    if (op == "//") return Value::real(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::real(m);
  }
  // **
  if (ints && b.i >= 0) {
    int64_t result = 1, base = a.i;
    for (int64_t e = b.i; e > 0; e >>= 1) {
      if (e & 1) result = int_op('*', result, base).i;
      if (e > 1) base = int_op('*', base, base).i;
    }
    return Value::integer(result);
  }
  return Value::real(std::pow(as_double(a), as_double(b)));
}

int order(const Value& a, const Value& b, const std::string& op) {
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return a.i < b.i ? -1 : a.i > b.i;
    const double x = as_double(a), y = as_double(b);
    return x < y ? -1 : x > y;
  }
  if (a.kind == Kind::kString && b.kind == Kind::kString) return a.s < b.s ? -1 : a.s > b.s;
  if (a.kind == Kind::kList && b.kind == Kind::kList) {
    const size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k)
      if (!equals((*a.list)[k], (*b.list)[k])) return order((*a.list)[k], (*b.list)[k], op);
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size();
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  fail("'{}' not supported between instances of '{}' and '{}'", op, type_name(a), type_name(b));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::kString:
      if (item.kind != Kind::kString)
        fail("'in <string>' requires string as left operand, not {}", type_name(item));
      return container.s.find(item.s) != std::string::npos;
    case Kind::kList:
      for (const Value& v : *container.list)
        if (equals(v, item)) return true;
      return false;
    case Kind::kDict:
    case Kind::kNamespace:
      return item.kind == Kind::kString && container.dict->find(item.s) != nullptr;
    case Kind::kUndefined: return false;
    default: fail("argument of type '{}' is not iterable", type_name(container));
  }
}

Value missing(const Value& obj, const std::string& what) {
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(obj), what));
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a) + to_str(b);
    if (s.size() > kMaxTextBytes) fail("string longer than {} bytes", kMaxTextBytes);
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (op == "+") {
    if (a.kind == Kind::kString && b.kind == Kind::kString) {
      if (a.s.size() + b.s.size() > kMaxTextBytes) fail("string longer than {} bytes", kMaxTextBytes);
      return Value::string(a.s + b.s);
    }
    if (a.kind == Kind::kList && b.kind == Kind::kList) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::from_list(std::move(l));
    }
  }
  if (op == "*") {
    if (a.kind == Kind::kString && is_integral(b)) return Value::string(repeat(a.s, b.i));
    if (b.kind == Kind::kString && is_integral(a)) return Value::string(repeat(b.s, a.i));
    if (a.kind == Kind::kList && is_integral(b)) {
      List l;
      for (int64_t k = 0; k < b.i; ++k) {
        if (static_cast<int64_t>(l.size() + a.list->size()) > kMaxIterations)
          fail("list repetition beyond {} elements", kMaxIterations);
        l.insert(l.end(), a.list->begin(), a.list->end());
      }
      return Value::from_list(std::move(l));
    }
  }
  if (op == "%" && a.kind == Kind::kString) fail("printf-style '%' formatting of strings is not supported");
  return arithmetic(op, a, b);
}

Value unary_op(const std::string& op, const Value& a) {
  if (a.is_undefined()) fail_undefined(a);
  if (!a.is_number()) fail("bad operand type for unary {}: '{}'", op, type_name(a));
  if (op == "+") return is_integral(a) ? Value::integer(a.i) : a;
  if (!is_integral(a)) return Value::real(-a.f);
  if (a.i == INT64_MIN) fail("integer overflow in unary -");
  return Value::integer(-a.i);
}

bool compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  const int c = order(a, b, op);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;  // >=
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::kUndefined: fail_undefined(obj);
    case Kind::kNamespace: {
      const Value* v = obj.dict->find(name);
      return v ? *v : missing(obj, name);
    }
    case Kind::kDict: {
      if (std::optional<Value> m = bound_method(obj, name)) return *m;
      const Value* v = obj.dict->find(name);
      return v ? *v : missing(obj, name);
    }
    default:
      if (std::optional<Value> m = bound_method(obj, name)) return *m;
      return missing(obj, name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if ((obj.kind == Kind::kList || obj.kind == Kind::kString) && is_integral(key)) {
    const std::vector<size_t> offsets = obj.kind == Kind::kString ? codepoint_offsets(obj.s) : std::vector<size_t>{};
    const int64_t n = obj.kind == Kind::kList ? static_cast<int64_t>(obj.list->size())
                                              : static_cast<int64_t>(offsets.size()) - 1;
    const int64_t k = key.i < 0 ? key.i + n : key.i;
    if (k < 0 || k >= n)
      return Value::undefined(fmt::format("{} index {} out of range", type_name(obj), key.i));
    if (obj.kind == Kind::kList) return (*obj.list)[k];
    return Value::string(obj.s.substr(offsets[k], offsets[k + 1] - offsets[k]));
  }
  if (obj.is_mapping() && key.kind == Kind::kString) {
    const Value* v = obj.dict->find(key.s);
    return v ? *v : Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(obj), key.s));
  }
  return Value::undefined(fmt::format("'{}' object has no item {}", type_name(obj), repr(key)));
}

Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.kind == Kind::kList) {
    List out;
    for (int64_t k : slice_indices(static_cast<int64_t>(obj.list->size()), start, stop, step))
      out.push_back((*obj.list)[k]);
    return Value::from_list(std::move(out));
  }
  if (obj.kind == Kind::kString) {
    const std::vector<size_t> offsets = codepoint_offsets(obj.s);
    std::string out;
    for (int64_t k : slice_indices(static_cast<int64_t>(offsets.size()) - 1, start, stop, step))
      out.append(obj.s, offsets[k], offsets[k + 1] - offsets[k]);
    return Value::string(std::move(out));
  }
  fail("'{}' object is not subscriptable", type_name(obj));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return {};
    case Kind::kList: return *v.list;
    case Kind::kDict: {
      List keys;
      for (const auto& [k, e] : v.dict->items) keys.push_back(Value::string(k));
      return keys;
    }
    case Kind::kString: {
      List chars;
      const std::vector<size_t> offsets = codepoint_offsets(v.s);
      for (size_t k = 0; k + 1 < offsets.size(); ++k)
        chars.push_back(Value::string(v.s.substr(offsets[k], offsets[k + 1] - offsets[k])));
      return chars;
    }
    default: fail("'{}' object is not iterable", type_name(v));
  }
}

}  // namespace flashmem::jinja
