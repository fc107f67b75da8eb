// Jinja2's filters and tests, the str and dict methods templates call, and the global functions
// Hugging Face's chat-template environment provides (range, namespace, dict, raise_exception,
// strftime_now). `tojson` is Hugging Face's: json.dumps(ensure_ascii=False) keeping key order,
// not Jinja's HTML-safe one. Errors are plain flashmem::Error messages; an unknown filter or test
// is an error naming it.
//
// Filters: abs, capitalize, count, d, default, first, float, int, items, join, last, length,
// list, lower, map, reject, rejectattr, replace, reverse, safe, select, selectattr, sort, string,
// title, tojson, trim, unique, upper.
// Tests: boolean, callable, defined, divisibleby, eq/equalto/==, even, false, float, ge/>=,
// gt/>, in, integer, iterable, le/<=, lower, lt/<, mapping, ne/!=, none, number, odd, sameas,
// sequence, string, true, undefined, upper.
// str methods: capitalize, endswith, find, join, lower, lstrip, replace, rstrip, split,
// startswith, strip, title, upper. dict methods: get, items, keys, values.
#pragma once
#include <optional>
#include <string>

#include "chat/jinja_value.h"

namespace flashmem::jinja {

Value apply_filter(const std::string& name, const Value& value, CallArgs& args);
bool apply_test(const std::string& name, const Value& value, CallArgs& args);
// `self.name` as a callable when self is a str or dict with such a method; nullopt otherwise.
std::optional<Value> bound_method(const Value& self, const std::string& name);
// The global functions, looked up after the template's and the caller's variables.
const Dict& global_functions();

}  // namespace flashmem::jinja
