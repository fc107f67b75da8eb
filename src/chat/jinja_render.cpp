// The renderer of chat/jinja.h: walks the syntax tree with Jinja2's scoping (a for loop's body
// has its own scope per iteration; `if` bodies share the enclosing one; `set` writes to the
// innermost scope), Python's operators (chat/jinja_ops.h) and the builtins.
#include <fmt/format.h>

#include "chat/jinja.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_ops.h"
#include "chat/jinja_parser.h"
#include "util/error.h"

namespace flashmem::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  explicit Renderer(const Dict& variables) : variables_(variables) { scopes_.emplace_back(); }

  std::string run(const Body& body) {
    exec(body);
    return std::move(out_);
  }

 private:
  // Runs fn, giving an Error it throws the position `pos`.
  template <typename Fn>
  static auto at(SourcePos pos, Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const Error& e) {
      fail_at(pos, e.what());
    }
  }

  void write(const std::string& text, SourcePos pos) {
    if (out_.size() + text.size() > kMaxTextBytes)
      fail_at(pos, fmt::format("the rendering exceeds {} bytes", kMaxTextBytes));
    out_ += text;
  }

  Flow exec(const Body& body) {
    for (const auto& s : body) {
      const Flow f = exec(*s);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Stmt& s) {
    switch (s.kind) {
      case StmtKind::kText: write(s.text, s.pos); return Flow::kNormal;
      case StmtKind::kOutput: {
        const Value v = eval(*s.expr);
        write(to_str(v), s.pos);
        return Flow::kNormal;
      }
      case StmtKind::kIf:
        for (const auto& [cond, body] : s.branches)
          if (truthy(eval(*cond))) return exec(body);
        return exec(s.else_body);
      case StmtKind::kFor: return exec_for(s);
      case StmtKind::kSet: assign(s, eval(*s.expr)); return Flow::kNormal;
      case StmtKind::kSetBlock: {
        std::string saved = std::move(out_);
        out_.clear();
        const Flow f = exec(s.body);
        Value captured = Value::string(std::move(out_));
        out_ = std::move(saved);
        assign(s, std::move(captured));
        return f;
      }
      case StmtKind::kBreak: return Flow::kBreak;
      case StmtKind::kContinue: return Flow::kContinue;
      case StmtKind::kBlock: return exec(s.body);
    }
    return Flow::kNormal;
  }

  void bind(const std::vector<std::string>& targets, const Value& item, SourcePos pos) {
    if (targets.size() == 1) {
      scopes_.back().set(targets[0], item);
      return;
    }
    if (item.kind != Kind::kList || item.list->size() != targets.size())
      fail_at(pos, fmt::format("cannot unpack {} into {} names", type_name(item), targets.size()));
    for (size_t k = 0; k < targets.size(); ++k) scopes_.back().set(targets[k], (*item.list)[k]);
  }

  void assign(const Stmt& s, Value v) {
    if (s.attr.empty()) {
      bind(s.targets, v, s.pos);
      return;
    }
    const Value ns = lookup(s.targets[0]);
    if (ns.kind != Kind::kNamespace)
      fail_at(s.pos, fmt::format("cannot set attribute '{}' of {} '{}' (only namespace() objects)", s.attr,
                                 type_name(ns), s.targets[0]));
    ns.dict->set(s.attr, std::move(v));
  }

  // Jinja's `loop`: one object per for statement, advanced in place each iteration (as Jinja's
  // LoopContext is); slots in kLoopFields order.
  static constexpr const char* kLoopFields[] = {"index0", "index", "revindex0", "revindex", "first", "last",
                                                "length", "depth", "depth0", "previtem", "nextitem", "cycle"};
  static Value make_loop(const std::shared_ptr<int64_t>& index) {
    Dict loop;
    for (const char* field : kLoopFields) loop.items.emplace_back(field, Value::none());
    loop.items[7].second = Value::integer(1);
    loop.items[8].second = Value::integer(0);
    loop.items[11].second = Value::function([index](CallArgs& args) {
      if (args.positional.empty()) fail("loop.cycle() needs at least one argument");
      return args.positional[static_cast<size_t>(*index) % args.positional.size()];
    });
    return Value::from_dict(std::move(loop));
  }
  static void advance_loop(Value& loop, const List& items, size_t k) {
    const int64_t n = static_cast<int64_t>(items.size()), i = static_cast<int64_t>(k);
    auto& slot = loop.dict->items;
    slot[0].second = Value::integer(i);
    slot[1].second = Value::integer(i + 1);
    slot[2].second = Value::integer(n - i - 1);
    slot[3].second = Value::integer(n - i);
    slot[4].second = Value::boolean(i == 0);
    slot[5].second = Value::boolean(i == n - 1);
    slot[6].second = Value::integer(n);
    slot[9].second = i > 0 ? items[k - 1] : Value::undefined("there is no previous item");
    slot[10].second = i + 1 < n ? items[k + 1] : Value::undefined("there is no next item");
  }

  void count_iteration(SourcePos pos) {
    if (++iterations_ > kMaxIterations)
      fail_at(pos, fmt::format("more than {} loop iterations", kMaxIterations));
  }

  Flow exec_for(const Stmt& s) {
    const Value iterable = eval(*s.expr);
    List items = at(s.expr->pos, [&] { return iterate(iterable); });
    if (s.filter) {
      List kept;
      for (const Value& item : items) {
        count_iteration(s.pos);
        scopes_.emplace_back();
        bind(s.targets, item, s.pos);
        const bool keep = truthy(eval(*s.filter));
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body);
    const auto index = std::make_shared<int64_t>(0);
    Value loop = make_loop(index);
    for (size_t k = 0; k < items.size(); ++k) {
      count_iteration(s.pos);
      *index = static_cast<int64_t>(k);
      advance_loop(loop, items, k);
      scopes_.emplace_back();
      bind(s.targets, items[k], s.pos);
      scopes_.back().set("loop", loop);
      const Flow f = exec(s.body);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  Value lookup(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope)
      if (const Value* v = scope->find(name)) return *v;
    if (const Value* v = variables_.find(name)) return *v;
    if (const Value* v = global_functions().find(name)) return *v;
    return Value::undefined(fmt::format("'{}' is undefined", name));
  }

  CallArgs call_args(const Expr& e) {
    CallArgs args;
    for (size_t k = 1; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k]));
    for (const auto& [key, arg] : e.kwargs) args.keyword.emplace_back(key, eval(*arg));
    return args;
  }

  std::optional<int64_t> slice_bound(const ExprPtr& e) {
    if (!e) return std::nullopt;
    const Value v = eval(*e);
    if (v.kind == Kind::kNone) return std::nullopt;
    if (v.kind != Kind::kInt && v.kind != Kind::kBool)
      fail_at(e->pos, fmt::format("slice indices must be integers or None, not {}", type_name(v)));
    return v.i;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral: return e.literal;
      case ExprKind::kName: return lookup(e.name);
      case ExprKind::kGetAttr: {
        const Value obj = eval(*e.args[0]);
        return at(e.pos, [&] { return get_attr(obj, e.name); });
      }
      case ExprKind::kGetItem: {
        const Value obj = eval(*e.args[0]);
        const Value key = eval(*e.args[1]);
        return at(e.pos, [&] { return get_item(obj, key); });
      }
      case ExprKind::kSlice: {
        const Value obj = eval(*e.args[0]);
        const auto start = slice_bound(e.args[1]), stop = slice_bound(e.args[2]), step = slice_bound(e.args[3]);
        return at(e.pos, [&] { return slice(obj, start, stop, step); });
      }
      case ExprKind::kCall: {
        const Value callee = eval(*e.args[0]);
        CallArgs args = call_args(e);
        if (callee.is_undefined()) at(e.pos, [&] { fail_undefined(callee); });
        if (callee.kind != Kind::kFunction) fail_at(e.pos, fmt::format("'{}' object is not callable", type_name(callee)));
        return at(e.pos, [&] { return (*callee.fn)(args); });
      }
      case ExprKind::kFilter: {
        const Value value = eval(*e.args[0]);
        CallArgs args = call_args(e);
        return at(e.pos, [&] { return apply_filter(e.name, value, args); });
      }
      case ExprKind::kTest: {
        const Value value = eval(*e.args[0]);
        CallArgs args = call_args(e);
        const bool passed = at(e.pos, [&] { return apply_test(e.name, value, args); });
        return Value::boolean(passed != e.negated);
      }
      case ExprKind::kUnary: {
        const Value v = eval(*e.args[0]);
        return at(e.pos, [&] { return unary_op(e.name, v); });
      }
      case ExprKind::kBinary: {
        const Value a = eval(*e.args[0]);
        const Value b = eval(*e.args[1]);
        return at(e.pos, [&] { return binary_op(e.name, a, b); });
      }
      case ExprKind::kCompare: {
        Value left = eval(*e.args[0]);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          if (!at(e.pos, [&] { return compare(e.ops[k], left, right); })) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case ExprKind::kAnd: {
        Value left = eval(*e.args[0]);
        return truthy(left) ? eval(*e.args[1]) : left;
      }
      case ExprKind::kOr: {
        Value left = eval(*e.args[0]);
        return truthy(left) ? left : eval(*e.args[1]);
      }
      case ExprKind::kNot: return Value::boolean(!truthy(eval(*e.args[0])));
      case ExprKind::kConditional:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the conditional expression had no else branch");
      case ExprKind::kList: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::from_list(std::move(items));
      }
      case ExprKind::kDict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          const Value key = eval(*e.args[k]);
          if (key.kind != Kind::kString)
            fail_at(e.args[k]->pos, fmt::format("dict keys must be strings here, not {}", type_name(key)));
          d.set(key.s, eval(*e.args[k + 1]));
        }
        return Value::from_dict(std::move(d));
      }
    }
    fail_at(e.pos, "unknown expression");
  }

  const Dict& variables_;
  std::vector<Dict> scopes_;  // [0]: the template's top level; one more per loop iteration
  std::string out_;
  int64_t iterations_ = 0;
};

}  // namespace

Template Template::parse(std::string_view source) {
  Template t;
  t.body_ = std::make_shared<const Body>(parse_template(source));
  return t;
}

std::string Template::render(const Dict& variables) const { return Renderer(variables).run(*body_); }

}  // namespace flashmem::jinja
