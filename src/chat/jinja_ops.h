// Python's operators and element access on template values, as Jinja2 applies them: arithmetic,
// comparison, membership, attribute and item lookup, slices and iteration. Errors are plain
// flashmem::Error messages (the renderer adds the source position); using an Undefined where
// Jinja2 would raise UndefinedError is an error naming what was undefined.
#pragma once
#include <optional>
#include <string>

#include "chat/jinja_value.h"

namespace flashmem::jinja {

// a OP b for OP in + - * / // % ** ~.
Value binary_op(const std::string& op, const Value& a, const Value& b);
// -a or +a.
Value unary_op(const std::string& op, const Value& a);
// a OP b for OP in == != < <= > >= in, not in.
bool compare(const std::string& op, const Value& a, const Value& b);

// obj.name: a dict's item (or its get/items/keys/values method), a namespace attribute, a str
// method; Undefined (not an error) when obj has no such attribute; Error when obj is Undefined.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list and str indices (negative from the end), dict keys; Undefined when missing.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] of a list or str (absent parts as nullopt).
Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step);
// The items a for loop visits: a list's elements, a dict's keys, a str's characters; nothing for
// Undefined.
List iterate(const Value& v);
// Error with the message an Undefined carries ("'x' is undefined").
[[noreturn]] void fail_undefined(const Value& v);

}  // namespace flashmem::jinja
