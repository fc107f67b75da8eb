#include "chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "util/error.h"

namespace flashmem::jinja {
namespace {

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::kText: return "template text";
    case TokenType::kVariableBegin: return "'{{'";
    case TokenType::kVariableEnd: return "'}}'";
    case TokenType::kBlockBegin: return "'{%'";
    case TokenType::kBlockEnd: return "'%}'";
    case TokenType::kName: return fmt::format("'{}'", t.text);
    case TokenType::kString: return "a string";
    case TokenType::kInteger:
    case TokenType::kFloat: return fmt::format("number {}", t.text);
    case TokenType::kOperator: return fmt::format("'{}'", t.text);
    case TokenType::kEnd: return "the end of the template";
  }
  return "?";
}

ExprPtr make(ExprKind kind, SourcePos pos) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  return e;
}

ExprPtr make(ExprKind kind, SourcePos pos, std::string name, ExprPtr a, ExprPtr b = nullptr) {
  auto e = make(kind, pos);
  e->name = std::move(name);
  e->args.push_back(std::move(a));
  if (b) e->args.push_back(std::move(b));
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse() {
    Body body = parse_body({});
    if (cur().type != TokenType::kEnd) fail_at(cur().pos, "unexpected " + describe(cur()));
    return body;
  }

 private:
  // Counts nesting while alive; Error beyond kMaxNesting.
  struct Nest {
    Parser& p;
    Nest(Parser& parser, SourcePos pos) : p(parser) {
      if (++p.depth_ > kMaxNesting) fail_at(pos, fmt::format("nested deeper than {} levels", kMaxNesting));
    }
    ~Nest() { --p.depth_; }
  };

  const Token& cur() const { return tokens_[at_]; }
  const Token& peek(size_t ahead = 1) const { return tokens_[std::min(at_ + ahead, tokens_.size() - 1)]; }
  void next() {
    if (at_ + 1 < tokens_.size()) ++at_;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::kOperator && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail_at(cur().pos, fmt::format("expected '{}', found {}", op, describe(cur())));
  }
  void expect(TokenType type, const char* what) {
    if (cur().type != type) fail_at(cur().pos, fmt::format("expected {}, found {}", what, describe(cur())));
    next();
  }
  std::string expect_name() {
    if (cur().type != TokenType::kName) fail_at(cur().pos, "expected a name, found " + describe(cur()));
    std::string name = cur().text;
    next();
    return name;
  }

  // ---- statements ----

  // Statements up to a block tag named in `ends` (left unconsumed, at its name) or the end.
  Body parse_body(std::initializer_list<const char*> ends) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::kEnd) {
        if (ends.size() == 0) return body;
        const auto end = std::find_if(ends.begin(), ends.end(), [](const char* e) { return std::string_view(e).starts_with("end"); });
        fail_at(t.pos, fmt::format("missing {{% {} %}}", end != ends.end() ? *end : *ends.begin()));
      }
      if (t.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->pos = t.pos;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TokenType::kVariableBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->pos = t.pos;
        next();
        s->expr = parse_tuple(true, {});
        expect(TokenType::kVariableEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        const Token& name = peek();
        if (name.type == TokenType::kName &&
            std::any_of(ends.begin(), ends.end(), [&](const char* e) { return name.text == e; })) {
          next();
          return body;
        }
        next();
        body.push_back(parse_statement());
      } else {
        fail_at(t.pos, "unexpected " + describe(t));
      }
    }
  }

  std::unique_ptr<Stmt> parse_statement() {
    const Token tag = cur();
    if (tag.type != TokenType::kName) fail_at(tag.pos, "expected a tag name, found " + describe(tag));
    Nest nest(*this, tag.pos);
    auto s = std::make_unique<Stmt>();
    s->pos = tag.pos;
    next();
    const std::string& n = tag.text;
    if (n == "if") {
      parse_if(*s);
    } else if (n == "for") {
      parse_for(*s);
    } else if (n == "set") {
      parse_set(*s);
    } else if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) fail_at(tag.pos, fmt::format("'{}' outside a for loop", n));
      s->kind = n == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      expect(TokenType::kBlockEnd, "'%}'");
    } else if (n == "generation") {
      s->kind = StmtKind::kBlock;
      expect(TokenType::kBlockEnd, "'%}'");
      s->body = parse_body({"endgeneration"});
      end_tag();
    } else if (n == "macro" || n == "call" || n == "filter" || n == "raw" || n == "include" ||
               n == "import" || n == "from" || n == "extends" || n == "block" || n == "with" ||
               n == "autoescape" || n == "do") {
      fail_at(tag.pos, fmt::format("the '{}' tag is not supported by flashmem's chat templates", n));
    } else {
      fail_at(tag.pos, fmt::format("unknown or unexpected tag '{}'", n));
    }
    return s;
  }

  // At the name of an end tag: consume it and its %}.
  void end_tag() {
    next();
    expect(TokenType::kBlockEnd, "'%}'");
  }

  void parse_if(Stmt& s) {
    s.kind = StmtKind::kIf;
    while (true) {
      ExprPtr cond = parse_tuple(false, {});
      expect(TokenType::kBlockEnd, "'%}'");
      Body body = parse_body({"elif", "else", "endif"});
      s.branches.emplace_back(std::move(cond), std::move(body));
      const std::string which = cur().text;
      if (which == "elif") {
        next();
        continue;
      }
      if (which == "else") {
        end_tag();
        s.else_body = parse_body({"endif"});
      }
      end_tag();
      return;
    }
  }

  // Names, optionally parenthesised and comma-separated: `x`, `k, v`, `(k, v)`.
  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = skip_op("(");
    do names.push_back(expect_name());
    while (skip_op(","));
    if (paren) expect_op(")");
    return names;
  }

  void parse_for(Stmt& s) {
    s.kind = StmtKind::kFor;
    s.targets = parse_targets();
    if (!is_name("in")) fail_at(cur().pos, "expected 'in', found " + describe(cur()));
    next();
    s.expr = parse_tuple(false, {"recursive"});
    if (is_name("if")) {
      next();
      s.filter = parse_expression(true);
    }
    if (is_name("recursive")) fail_at(cur().pos, "recursive for loops are not supported");
    expect(TokenType::kBlockEnd, "'%}'");
    ++loop_depth_;
    s.body = parse_body({"endfor", "else"});
    --loop_depth_;
    if (cur().text == "else") {
      end_tag();
      s.else_body = parse_body({"endfor"});
    }
    end_tag();
  }

  void parse_set(Stmt& s) {
    s.kind = StmtKind::kSet;
    s.targets.push_back(expect_name());
    if (skip_op(".")) {
      s.attr = expect_name();
    } else {
      while (skip_op(",")) s.targets.push_back(expect_name());
    }
    if (skip_op("=")) {
      s.expr = parse_tuple(true, {});
      expect(TokenType::kBlockEnd, "'%}'");
      return;
    }
    if (!s.attr.empty() || s.targets.size() != 1)
      fail_at(cur().pos, "expected '=' after a namespace attribute or several names");
    s.kind = StmtKind::kSetBlock;
    expect(TokenType::kBlockEnd, "'%}'");
    s.body = parse_body({"endset"});
    end_tag();
  }

  // ---- expressions ----

  bool at_tuple_end(std::initializer_list<const char*> extra_ends) const {
    const Token& t = cur();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEnd)
      return true;
    if (t.type == TokenType::kOperator && t.text == ")") return true;
    return t.type == TokenType::kName &&
           std::any_of(extra_ends.begin(), extra_ends.end(), [&](const char* e) { return t.text == e; });
  }

  // expr or a comma-separated tuple of them (`explicit_parens`: inside (), where () is empty).
  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra_ends,
                      bool explicit_parens = false) {
    const SourcePos pos = cur().pos;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (at_tuple_end(extra_ends)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail_at(pos, "expected an expression, found " + describe(cur()));
    }
    auto e = make(ExprKind::kList, pos);
    e->args = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest nest(*this, cur().pos);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const SourcePos pos = cur().pos;
      next();
      ExprPtr cond = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        next();
        otherwise = parse_condexpr();
      }
      auto e = make(ExprKind::kConditional, pos);
      e->args.push_back(std::move(expr));
      e->args.push_back(std::move(cond));
      e->args.push_back(std::move(otherwise));
      expr = std::move(e);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const SourcePos pos = cur().pos;
      next();
      left = make(ExprKind::kOr, pos, "or", std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const SourcePos pos = cur().pos;
      next();
      left = make(ExprKind::kAnd, pos, "and", std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const SourcePos pos = cur().pos;
      Nest nest(*this, pos);
      next();
      return make(ExprKind::kNot, pos, "not", parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const SourcePos pos = cur().pos;
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::kOperator &&
          (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=")) {
        ops.push_back(t.text);
        next();
      } else if (is_name("in")) {
        ops.push_back("in");
        next();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        ops.push_back("not in");
        next();
        next();
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = make(ExprKind::kCompare, pos);
    e->args.push_back(std::move(first));
    for (auto& o : operands) e->args.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token t = cur();
      next();
      left = make(ExprKind::kBinary, t.pos, t.text, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const SourcePos pos = cur().pos;
      next();
      left = make(ExprKind::kBinary, pos, "~", std::move(left), parse_math2());
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token t = cur();
      next();
      left = make(ExprKind::kBinary, t.pos, t.text, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const SourcePos pos = cur().pos;
      next();
      left = make(ExprKind::kBinary, pos, "**", std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    const Token t = cur();
    Nest nest(*this, t.pos);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      next();
      node = make(ExprKind::kUnary, t.pos, t.text, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr literal(SourcePos pos, Value v) {
    auto e = make(ExprKind::kLiteral, pos);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token t = cur();
    switch (t.type) {
      case TokenType::kName:
        next();
        if (t.text == "true" || t.text == "True") return literal(t.pos, Value::boolean(true));
        if (t.text == "false" || t.text == "False") return literal(t.pos, Value::boolean(false));
        if (t.text == "none" || t.text == "None") return literal(t.pos, Value::none());
        {
          auto e = make(ExprKind::kName, t.pos);
          e->name = t.text;
          return e;
        }
      case TokenType::kString: {
        std::string text;
        while (cur().type == TokenType::kString) {  // adjacent literals concatenate
          text += cur().text;
          next();
        }
        return literal(t.pos, Value::string(std::move(text)));
      }
      case TokenType::kInteger: next(); return literal(t.pos, Value::integer(t.integer));
      case TokenType::kFloat: next(); return literal(t.pos, Value::real(t.real));
      case TokenType::kOperator:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail_at(t.pos, "unexpected " + describe(t));
  }

  ExprPtr parse_list() {
    auto e = make(ExprKind::kList, cur().pos);
    expect_op("[");
    while (!is_op("]")) {
      if (!e->args.empty()) expect_op(",");
      if (is_op("]")) break;
      e->args.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprPtr parse_dict() {
    auto e = make(ExprKind::kDict, cur().pos);
    expect_op("{");
    while (!is_op("}")) {
      if (!e->args.empty()) expect_op(",");
      if (is_op("}")) break;
      e->args.push_back(parse_expression(true));
      expect_op(":");
      e->args.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) node = parse_subscript(std::move(node));
      else if (is_op("(")) node = parse_call(std::move(node));
      else return node;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) node = parse_filter(std::move(node));
      else if (is_name("is")) node = parse_test(std::move(node));
      else if (is_op("(")) node = parse_call(std::move(node));
      else return node;
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token t = cur();
    next();
    if (t.text == ".") {
      const Token attr = cur();
      next();
      if (attr.type == TokenType::kName) {
        auto e = make(ExprKind::kGetAttr, attr.pos, attr.text, std::move(node));
        return e;
      }
      if (attr.type == TokenType::kInteger)
        return make(ExprKind::kGetItem, attr.pos, "", std::move(node), literal(attr.pos, Value::integer(attr.integer)));
      fail_at(attr.pos, "expected an attribute name after '.', found " + describe(attr));
    }
    // [index] or [start:stop:step]
    ExprPtr parts[3];
    bool is_slice = false;
    for (int k = 0; k < 3; ++k) {
      if (k > 0) {
        if (!skip_op(":")) break;
        is_slice = true;
      }
      if (!is_op(":") && !is_op("]")) parts[k] = parse_expression(true);
    }
    if (is_op(",")) fail_at(cur().pos, "tuple subscripts are not supported");
    expect_op("]");
    if (!is_slice) {
      if (!parts[0]) fail_at(t.pos, "empty subscript []");
      return make(ExprKind::kGetItem, t.pos, "", std::move(node), std::move(parts[0]));
    }
    auto e = make(ExprKind::kSlice, t.pos);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // Call arguments after '(' up to ')': positional, then name=value.
  void parse_call_args(Expr& e) {
    expect_op("(");
    for (bool first = true; !is_op(")"); first = false) {
      if (!first) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail_at(cur().pos, "*args and **kwargs are not supported");
      if (cur().type == TokenType::kName && peek().type == TokenType::kOperator && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail_at(cur().pos, "positional argument after keyword arguments");
        e.args.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(ExprKind::kCall, cur().pos);
    e->args.push_back(std::move(callee));
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node) {
    const SourcePos pos = cur().pos;
    next();  // |
    auto e = make(ExprKind::kFilter, pos);
    e->name = dotted_name();
    e->args.push_back(std::move(node));
    if (is_op("(")) parse_call_args(*e);
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    const SourcePos pos = cur().pos;
    next();  // is
    auto e = make(ExprKind::kTest, pos);
    if (is_name("not")) {
      e->negated = true;
      next();
    }
    e->name = dotted_name();
    e->args.push_back(std::move(node));
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_at(t.pos, "tests cannot be chained with 'is'");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  std::vector<Token> tokens_;
  size_t at_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(lex_template(source)).parse(); }

}  // namespace flashmem::jinja
