// Small helpers shared by the CLI commands.
#pragma once
#include <string>

#include "tensor/dtype.h"
#include "util/error.h"

namespace flashmem::cli {

inline DType parse_kv_type(const std::string& s) {
  if (s == "f16") return DType::F16;
  if (s == "f32") return DType::F32;
  fail("--kv-type must be f16 or f32, not '{}'", s);
}

}  // namespace flashmem::cli
