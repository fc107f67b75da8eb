#include "chat/jinja_builtins.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <initializer_list>

#include "chat/jinja_ops.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace flashmem::jinja {
namespace {

// A call's arguments matched to parameter names (positional first, then by keyword).
class Params {
 public:
  Params(const char* function, CallArgs& args, std::initializer_list<const char*> names)
      : function_(function), args_(args), names_(names) {
    if (args.positional.size() > names_.size())
      fail("{}() takes at most {} arguments ({} given)", function, names_.size(), args.positional.size());
    for (const auto& keyword : args.keyword)
      if (std::find_if(names_.begin(), names_.end(), [&](const char* n) { return keyword.first == n; }) == names_.end())
        fail("{}() got an unexpected keyword argument '{}'", function, keyword.first);
  }
  const Value* get(size_t k) const {
    if (k < args_.positional.size()) return &args_.positional[k];
    for (const auto& [key, v] : args_.keyword)
      if (key == names_[k]) return &v;
    return nullptr;
  }
  bool given(size_t k) const {
    const Value* v = get(k);
    return v && v->kind != Kind::kNone;
  }
  const Value& required(size_t k) const {
    const Value* v = get(k);
    if (!v) fail("{}() missing required argument '{}'", function_, names_[k]);
    return *v;
  }
  std::string str(size_t k, std::string fallback = {}) const {
    if (!given(k)) return fallback;
    const Value& v = *get(k);
    if (v.kind != Kind::kString) fail("{}(): '{}' must be a string, not {}", function_, names_[k], type_name(v));
    return v.s;
  }
  std::optional<std::string> opt_str(size_t k) const {
    if (!given(k)) return std::nullopt;
    return str(k);
  }
  int64_t integer(size_t k, int64_t fallback) const {
    if (!given(k)) return fallback;
    const Value& v = *get(k);
    if (v.kind != Kind::kInt && v.kind != Kind::kBool)
      fail("{}(): '{}' must be an integer, not {}", function_, names_[k], type_name(v));
    return v.i;
  }
  bool flag(size_t k) const { return given(k) && truthy(*get(k)); }
  // The positional arguments from index k on (select's and map's pass-through arguments).
  CallArgs rest(size_t k) const {
    CallArgs out;
    for (size_t j = k; j < args_.positional.size(); ++j) out.positional.push_back(args_.positional[j]);
    return out;
  }

 private:
  const char* function_;
  CallArgs& args_;
  std::vector<const char*> names_;
};

int64_t length(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(codepoint_count(v.s));
    case Kind::kList: return static_cast<int64_t>(v.list->size());
    case Kind::kDict:
    case Kind::kNamespace: return static_cast<int64_t>(v.dict->items.size());
    default: fail("object of type '{}' has no len()", type_name(v));
  }
}

// Jinja's attribute getter for map/selectattr/sort/join: "a.b.0" looks up each part.
Value lookup_path(const Value& item, const std::string& path) {
  Value v = item;
  for (const std::string& part : py_split(path, std::string("."), -1)) {
    int64_t index = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
    if (!part.empty() && ec == std::errc() && end == part.data() + part.size()) {
      v = get_item(v, Value::integer(index));
    } else {
      Value item_value = v.is_mapping() ? get_item(v, Value::string(part)) : Value::undefined();
      v = item_value.is_undefined() ? get_attr(v, part) : item_value;
    }
  }
  return v;
}

List select_items(const char* fn, const Value& value, CallArgs& args, bool by_attribute, bool keep) {
  const size_t first_test_arg = by_attribute ? 1 : 0;
  if (by_attribute && args.positional.empty()) fail("{}() needs an attribute name", fn);
  const std::string attribute = by_attribute ? args.positional[0].s : std::string();
  List out;
  for (const Value& item : iterate(value)) {
    const Value subject = by_attribute ? lookup_path(item, attribute) : item;
    bool passed;
    if (args.positional.size() > first_test_arg) {
      const Value& test = args.positional[first_test_arg];
      if (test.kind != Kind::kString) fail("{}(): the test name must be a string", fn);
      CallArgs test_args;
      for (size_t j = first_test_arg + 1; j < args.positional.size(); ++j)
        test_args.positional.push_back(args.positional[j]);
      passed = apply_test(test.s, subject, test_args);
    } else {
      passed = truthy(subject);
    }
    if (passed == keep) out.push_back(item);
  }
  return out;
}

Value to_int(const Value& v, int64_t fallback) {
  switch (v.kind) {
    case Kind::kInt:
    case Kind::kBool: return Value::integer(v.i);
    case Kind::kFloat:
      if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return Value::integer(fallback);
      return Value::integer(static_cast<int64_t>(v.f));
    case Kind::kString: {
      const std::string s = py_strip(v.s, std::nullopt, true, true);
      int64_t i = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
      if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return Value::integer(i);
      double d = 0;
      const auto [end2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
      if (ec2 == std::errc() && end2 == s.data() + s.size() && !s.empty() && std::fabs(d) < 9.2e18)
        return Value::integer(static_cast<int64_t>(d));
      return Value::integer(fallback);
    }
    default: return Value::integer(fallback);
  }
}

Value to_float(const Value& v, double fallback) {
  if (v.kind == Kind::kFloat) return v;
  if (v.kind == Kind::kInt || v.kind == Kind::kBool) return Value::real(static_cast<double>(v.i));
  if (v.kind == Kind::kString) {
    const std::string s = py_strip(v.s, std::nullopt, true, true);
    double d = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return Value::real(d);
  }
  return Value::real(fallback);
}

Value sort_filter(const Value& value, CallArgs& args) {
  const Params p("sort", args, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = p.flag(0), case_sensitive = p.flag(1);
  const std::optional<std::string> attribute = p.opt_str(2);
  List items = iterate(value);
  const auto key = [&](const Value& v) {
    Value k = attribute ? lookup_path(v, *attribute) : v;
    if (!case_sensitive && k.kind == Kind::kString) k.s = py_lower(k.s);
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    return reverse ? compare("<", key(b), key(a)) : compare("<", key(a), key(b));
  });
  return Value::from_list(std::move(items));
}

Value unique_filter(const Value& value, CallArgs& args) {
  const Params p("unique", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = p.flag(0);
  const std::optional<std::string> attribute = p.opt_str(1);
  List out, seen;
  for (const Value& item : iterate(value)) {
    Value k = attribute ? lookup_path(item, *attribute) : item;
    if (!case_sensitive && k.kind == Kind::kString) k.s = py_lower(k.s);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::from_list(std::move(out));
}

Value map_filter(const Value& value, CallArgs& args) {
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [key, v] : args.keyword) {
    if (key == "attribute") attribute = &v;
    else if (key == "default") fallback = &v;
    else fail("map() got an unexpected keyword argument '{}'", key);
  }
  List out;
  if (attribute) {
    if (attribute->kind != Kind::kString) fail("map(): attribute must be a string");
    for (const Value& item : iterate(value)) {
      Value v = lookup_path(item, attribute->s);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value::from_list(std::move(out));
  }
  if (args.positional.empty() || args.positional[0].kind != Kind::kString)
    fail("map() needs a filter name or attribute=");
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  for (const Value& item : iterate(value)) {
    CallArgs call = rest;
    out.push_back(apply_filter(args.positional[0].s, item, call));
  }
  return Value::from_list(std::move(out));
}

Value tojson_filter(const Value& value, CallArgs& args) {
  const Params p("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  if (p.flag(0)) fail("tojson(ensure_ascii=True) is not supported");
  if (p.given(2)) fail("tojson(separators=...) is not supported");
  return Value::string(to_json(value, static_cast<int>(std::clamp<int64_t>(p.integer(1, -1), -1, 64)), p.flag(3)));
}

Value join_filter(const Value& value, CallArgs& args) {
  const Params p("join", args, {"d", "attribute"});
  const std::string sep = p.str(0);
  const std::optional<std::string> attribute = p.opt_str(1);
  std::string out;
  bool first = true;
  for (const Value& item : iterate(value)) {
    if (!first) out += sep;
    out += to_str(attribute ? lookup_path(item, *attribute) : item);
    first = false;
    if (out.size() > kMaxTextBytes) fail("join: string longer than {} bytes", kMaxTextBytes);
  }
  return Value::string(std::move(out));
}

}  // namespace

Value apply_filter(const std::string& name, const Value& value, CallArgs& args) {
  const auto no_args = [&] { Params(name.c_str(), args, {}); };
  if (name == "trim") {
    const Params p("trim", args, {"chars"});
    return Value::string(py_strip(to_str(value), p.opt_str(0), true, true));
  }
  if (name == "length" || name == "count") {
    no_args();
    return Value::integer(length(value));
  }
  if (name == "tojson") return tojson_filter(value, args);
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    no_args();
    const std::string s = to_str(value);
    if (name == "upper") return Value::string(py_upper(s));
    if (name == "lower") return Value::string(py_lower(s));
    if (name == "capitalize") return Value::string(py_capitalize(s));
    return Value::string(jinja_title(s));
  }
  if (name == "default" || name == "d") {
    const Params p(name.c_str(), args, {"default_value", "boolean"});
    const bool use_default = value.is_undefined() || (p.flag(1) && !truthy(value));
    if (!use_default) return value;
    return p.get(0) ? *p.get(0) : Value::string("");
  }
  if (name == "items") {
    no_args();
    if (value.is_undefined()) return Value::from_list({});
    if (!value.is_mapping()) fail("items: can only get item pairs from a mapping, not {}", type_name(value));
    List pairs;
    for (const auto& [k, v] : value.dict->items) pairs.push_back(Value::from_list({Value::string(k), v}));
    return Value::from_list(std::move(pairs));
  }
  if (name == "join") return join_filter(value, args);
  if (name == "replace") {
    const Params p("replace", args, {"old", "new", "count"});
    if (p.get(0) == nullptr || p.get(1) == nullptr) fail("replace() needs old and new strings");
    return Value::string(py_replace(to_str(value), to_str(*p.get(0)), to_str(*p.get(1)), p.integer(2, -1)));
  }
  if (name == "first" || name == "last") {
    no_args();
    const List items = iterate(value);
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    no_args();
    return Value::from_list(iterate(value));
  }
  if (name == "string") {
    no_args();
    return Value::string(to_str(value));
  }
  if (name == "safe") {
    no_args();
    return value;
  }
  if (name == "int") {
    const Params p("int", args, {"default", "base"});
    if (p.integer(1, 10) != 10) fail("int(base=...) other than 10 is not supported");
    return to_int(value, p.integer(0, 0));
  }
  if (name == "float") {
    const Params p("float", args, {"default"});
    return to_float(value, p.given(0) ? to_float(*p.get(0), 0).f : 0.0);
  }
  if (name == "abs") {
    no_args();
    if (value.kind == Kind::kFloat) return Value::real(std::fabs(value.f));
    if (!value.is_number()) fail("bad operand type for abs(): '{}'", type_name(value));
    if (value.i == INT64_MIN) fail("integer overflow in abs()");
    return Value::integer(value.i < 0 ? -value.i : value.i);
  }
  if (name == "reverse") {
    no_args();
    if (value.kind == Kind::kString) return slice(value, std::nullopt, std::nullopt, -1);
    List items = iterate(value);
    std::reverse(items.begin(), items.end());
    return Value::from_list(std::move(items));
  }
  if (name == "select" || name == "reject")
    return Value::from_list(select_items(name.c_str(), value, args, false, name == "select"));
  if (name == "selectattr" || name == "rejectattr")
    return Value::from_list(select_items(name.c_str(), value, args, true, name == "selectattr"));
  if (name == "map") return map_filter(value, args);
  if (name == "sort") return sort_filter(value, args);
  if (name == "unique") return unique_filter(value, args);
  fail("unknown filter '{}'", name);
}

bool apply_test(const std::string& name, const Value& value, CallArgs& args) {
  const auto no_args = [&] { Params(name.c_str(), args, {}); };
  const auto other = [&]() -> const Value& { return Params(name.c_str(), args, {"other"}).required(0); };
  if (name == "defined" || name == "undefined") {
    no_args();
    return value.is_undefined() == (name == "undefined");
  }
  if (name == "none") return no_args(), value.kind == Kind::kNone;
  if (name == "boolean") return no_args(), value.kind == Kind::kBool;
  if (name == "true") return no_args(), value.kind == Kind::kBool && value.b;
  if (name == "false") return no_args(), value.kind == Kind::kBool && !value.b;
  if (name == "integer") return no_args(), value.kind == Kind::kInt;
  if (name == "float") return no_args(), value.kind == Kind::kFloat;
  if (name == "number") return no_args(), value.is_number();
  if (name == "string") return no_args(), value.kind == Kind::kString;
  if (name == "mapping") return no_args(), value.kind == Kind::kDict;
  if (name == "callable") return no_args(), value.kind == Kind::kFunction;
  if (name == "iterable")
    return no_args(), value.kind == Kind::kString || value.kind == Kind::kList ||
                          value.kind == Kind::kDict || value.is_undefined();
  if (name == "sequence")
    return no_args(), value.kind == Kind::kString || value.kind == Kind::kList || value.kind == Kind::kDict;
  if (name == "lower") return no_args(), value.kind == Kind::kString && py_lower(value.s) == value.s;
  if (name == "upper") return no_args(), value.kind == Kind::kString && py_upper(value.s) == value.s;
  if (name == "odd" || name == "even") {
    no_args();
    if (value.kind != Kind::kInt && value.kind != Kind::kBool) fail("{}: not an integer: {}", name, type_name(value));
    return (value.i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& n = Params("divisibleby", args, {"num"}).required(0);
    const Value m = binary_op("%", value, n);
    return equals(m, Value::integer(0));
  }
  if (name == "eq" || name == "equalto" || name == "==") return compare("==", value, other());
  if (name == "ne" || name == "!=") return compare("!=", value, other());
  if (name == "lt" || name == "lessthan" || name == "<") return compare("<", value, other());
  if (name == "le" || name == "<=") return compare("<=", value, other());
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(">", value, other());
  if (name == "ge" || name == ">=") return compare(">=", value, other());
  if (name == "in") return compare("in", value, Params("in", args, {"seq"}).required(0));
  if (name == "sameas") {
    const Value& o = other();
    if (value.kind != o.kind) return false;
    if (value.kind == Kind::kList) return value.list == o.list;
    if (value.is_mapping()) return value.dict == o.dict;
    return equals(value, o);
  }
  fail("unknown test '{}'", name);
}

namespace {

Value string_method(const std::string& self, const std::string& name, CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Params p(name.c_str(), args, {"chars"});
    return Value::string(py_strip(self, p.opt_str(0), name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    const Value& arg = Params(name.c_str(), args, {"prefix"}).required(0);
    List candidates = arg.kind == Kind::kList ? *arg.list : List{arg};
    for (const Value& c : candidates) {
      if (c.kind != Kind::kString) fail("{} first arg must be str or a tuple of str, not {}", name, type_name(c));
      const bool hit = name == "startswith" ? self.compare(0, c.s.size(), c.s) == 0
                                            : self.size() >= c.s.size() &&
                                                  self.compare(self.size() - c.s.size(), c.s.size(), c.s) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split") {
    const Params p("split", args, {"sep", "maxsplit"});
    List parts;
    for (std::string& s : py_split(self, p.opt_str(0), p.integer(1, -1))) parts.push_back(Value::string(std::move(s)));
    return Value::from_list(std::move(parts));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    Params(name.c_str(), args, {});
    if (name == "upper") return Value::string(py_upper(self));
    if (name == "lower") return Value::string(py_lower(self));
    if (name == "title") return Value::string(py_title(self));
    return Value::string(py_capitalize(self));
  }
  if (name == "replace") {
    const Params p("replace", args, {"old", "new", "count"});
    return Value::string(py_replace(self, p.str(0), p.str(1), p.integer(2, -1)));
  }
  if (name == "find") {
    const std::string sub = Params("find", args, {"sub"}).str(0);
    const size_t at = self.find(sub);
    return Value::integer(at == std::string::npos ? -1 : static_cast<int64_t>(codepoint_count(self.substr(0, at))));
  }
  // join
  const Value& items = Params("join", args, {"iterable"}).required(0);
  std::string out;
  bool first = true;
  for (const Value& item : iterate(items)) {
    if (item.kind != Kind::kString) fail("join: sequence item: expected str instance, {} found", type_name(item));
    if (!first) out += self;
    out += item.s;
    first = false;
    if (out.size() > kMaxTextBytes) fail("join: string longer than {} bytes", kMaxTextBytes);
  }
  return Value::string(std::move(out));
}

Value dict_method(const Value& self, const std::string& name, CallArgs& args) {
  if (name == "get") {
    const Params p("get", args, {"key", "default"});
    const Value& key = p.required(0);
    const Value* v = key.kind == Kind::kString ? self.dict->find(key.s) : nullptr;
    if (v) return *v;
    return p.get(1) ? *p.get(1) : Value::none();
  }
  Params(name.c_str(), args, {});
  List out;
  for (const auto& [k, v] : self.dict->items) {
    if (name == "items") out.push_back(Value::from_list({Value::string(k), v}));
    else if (name == "keys") out.push_back(Value::string(k));
    else out.push_back(v);
  }
  return Value::from_list(std::move(out));
}

bool one_of(const std::string& name, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

}  // namespace

std::optional<Value> bound_method(const Value& self, const std::string& name) {
  if (self.kind == Kind::kString &&
      one_of(name, {"strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower",
                    "title", "capitalize", "replace", "find", "join"})) {
    const std::string text = self.s;
    return Value::function([text, name](CallArgs& args) { return string_method(text, name, args); });
  }
  if (self.kind == Kind::kDict && one_of(name, {"get", "items", "keys", "values"}))
    return Value::function([self, name](CallArgs& args) { return dict_method(self, name, args); });
  return std::nullopt;
}

namespace {

Value range_function(CallArgs& args) {
  const Params p("range", args, {"start", "stop", "step"});
  int64_t start = 0, stop = 0;
  if (args.positional.size() == 1) {
    stop = p.integer(0, 0);
  } else {
    start = p.integer(0, 0);
    stop = p.integer(1, 0);
  }
  const int64_t step = p.integer(2, 1);
  if (step == 0) fail("range() arg 3 must not be zero");
  const double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
  if (count > static_cast<double>(kMaxIterations)) fail("range() of more than {} elements", kMaxIterations);
  List out;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(Value::integer(k));
  return Value::from_list(std::move(out));
}

// namespace(...) and dict(...): an optional mapping, then keyword arguments.
Dict mapping_from_args(const char* fn, CallArgs& args) {
  Dict d;
  if (args.positional.size() > 1) fail("{}() takes at most one positional argument", fn);
  if (!args.positional.empty()) {
    if (!args.positional[0].is_mapping()) fail("{}(): the positional argument must be a mapping", fn);
    d = *args.positional[0].dict;
  }
  for (const auto& [k, v] : args.keyword) d.set(k, v);
  return d;
}

Dict make_globals() {
  Dict g;
  g.set("range", Value::function(range_function));
  g.set("namespace", Value::function([](CallArgs& a) { return Value::name_space(mapping_from_args("namespace", a)); }));
  g.set("dict", Value::function([](CallArgs& a) { return Value::from_dict(mapping_from_args("dict", a)); }));
  g.set("raise_exception", Value::function([](CallArgs& a) -> Value {
          fail("the template raised an error: {}", Params("raise_exception", a, {"message"}).str(0));
        }));
  g.set("strftime_now", Value::function([](CallArgs& a) {
          const std::string format = Params("strftime_now", a, {"format"}).str(0);
          const std::time_t now = std::time(nullptr);
          std::tm local{};
          localtime_r(&now, &local);
          // 256 bytes hold any date format a template prints ("26 Jul 2024", ISO stamps).
          char buf[256];
          const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
          if (n == 0 && !format.empty()) fail("strftime_now: format '{}' gives no text or more than 255 bytes", format);
          return Value::string(std::string(buf, n));
        }));
  return g;
}

}  // namespace

const Dict& global_functions() {
  static const Dict globals = make_globals();
  return globals;
}

}  // namespace flashmem::jinja
