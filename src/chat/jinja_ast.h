// The syntax tree of a parsed Jinja template (chat/jinja_parser.h builds it, chat/jinja.h renders
// it). Nodes own their children; every node keeps its source position for error messages.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_lexer.h"
#include "chat/jinja_value.h"

namespace flashmem::jinja {

enum class ExprKind {
  kLiteral,      // literal
  kName,         // name
  kGetAttr,      // args[0].name
  kGetItem,      // args[0][args[1]]
  kSlice,        // args[0][args[1]:args[2]:args[3]] (absent parts are nullptr)
  kCall,         // args[0](args[1..], kwargs)
  kFilter,       // args[0] | name(args[1..], kwargs)
  kTest,         // args[0] is [not] name(args[1..], kwargs)
  kUnary,        // name ("-" or "+") args[0]
  kBinary,       // args[0] name args[1]: + - * / // % ** ~
  kCompare,      // args[0] ops[0] args[1] ops[1] args[2] ... (chained as in Python)
  kAnd,          // args[0] and args[1] (the deciding operand's value, as in Python)
  kOr,           // args[0] or args[1]
  kNot,          // not args[0]
  kConditional,  // args[0] if args[1] else args[2] (args[2] nullptr: Undefined)
  kList,         // [args...] and tuples (a, b)
  kDict,         // {args[0]: args[1], args[2]: args[3], ...}
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  SourcePos pos;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare: "==", "!=", "<", "<=", ">", ">=", "in", "not in"
  bool negated = false;          // kTest: `is not`
};

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // branches (condition, body); else_body
  kFor,       // for targets in expr [if filter]: body; else_body when nothing iterated
  kSet,       // set targets = expr, or set targets[0].attr = expr
  kSetBlock,  // {% set targets[0] %}body{% endset %}
  kBreak,
  kContinue,
  kBlock,     // {% generation %}body{% endgeneration %}: renders its body
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  StmtKind kind = StmtKind::kText;
  SourcePos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::string> targets;
  std::string attr;  // kSet of a namespace attribute: targets[0].attr
};

}  // namespace flashmem::jinja
