// The values a Jinja template computes with, modelled on the Python objects Jinja2 sees when
// Hugging Face's apply_chat_template renders a chat template: None, bool, int, float, str, list,
// dict (insertion-ordered), a namespace() object, a function, and Jinja's Undefined. Printing,
// comparison, truthiness and JSON follow Python (str(), ==, bool(), json.dumps with
// ensure_ascii=False), so that a rendering is byte-identical to Jinja2's.
//
// Lists and dicts are shared, not copied: templates never mutate them (the sandbox Hugging Face
// renders in is immutable); only a namespace is mutable, through `set ns.attr = ...`.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace flashmem::jinja {

struct Value;
struct Dict;
struct CallArgs;

using List = std::vector<Value>;
using Function = std::function<Value(CallArgs& args)>;

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // kString: the text; kUndefined: the name that was missing (for messages)
  std::shared_ptr<const List> list;  // kList
  std::shared_ptr<Dict> dict;        // kDict, kNamespace (only a namespace is ever mutated)
  std::shared_ptr<const Function> fn;  // kFunction

  static Value undefined(std::string name = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value real(double v);
  static Value string(std::string v);
  static Value from_list(List v);
  static Value from_dict(Dict v);
  static Value name_space(Dict v);
  static Value function(Function fn);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_mapping() const { return kind == Kind::kDict || kind == Kind::kNamespace; }
};

struct Dict {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, unique keys
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);  // replaces an existing key in place
};

// Arguments of a call: positional, then keyword (name=value) in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Python's type name of the value ("str", "list", "dict", "NoneType", ...), for messages.
std::string type_name(const Value& v);
// bool(v): empty strings/lists/dicts, 0, None and Undefined are false.
bool truthy(const Value& v);
// str(v): None -> "None", True -> "True", floats as Python's repr, lists and dicts as their repr,
// Undefined -> "".
std::string to_str(const Value& v);
// repr(v) (strings quoted as Python quotes them).
std::string repr(const Value& v);
// Python's repr of a float: shortest round-trip digits, ".0" on integral values, exponent form
// below 1e-4 and from 1e16.
std::string float_repr(double d);
// v1 == v2 with Python semantics (numbers across int/float/bool, deep lists, dicts ignoring
// order, Undefined equals Undefined).
bool equals(const Value& a, const Value& b);
// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys); indent < 0 = none.
// Throws Error for values JSON cannot hold (Undefined, functions).
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);
// A JSON document as values (objects keep their key order). Throws Error beyond
// kMaxJsonDepth levels of nesting.
Value from_json(const nlohmann::ordered_json& j);

// Longest string a template may build, and its whole output: 64 MiB is 16x the text of a
// 1M-token context (about 4 bytes per token); a template that builds more is runaway.
constexpr size_t kMaxTextBytes = size_t{64} << 20;
// Loop iterations (and range() elements) of one rendering: real chat templates iterate a few
// times per message; 1M bounds a runaway template to about a second of work.
constexpr int64_t kMaxIterations = 1'000'000;

// Nesting of JSON input and output the renderer follows: far beyond what a chat request holds
// (messages -> tool calls -> arguments is 5 levels) while bounding the recursion.
constexpr int kMaxJsonDepth = 128;

}  // namespace flashmem::jinja
