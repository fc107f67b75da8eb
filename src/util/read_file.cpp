#include "util/read_file.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace flashmem {

std::string read_file(const std::string& path, std::string_view what) {
  const std::string role = what.empty() ? "" : std::string(what) + " ";
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}'{}'", role, path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read {}'{}'", role, path);
  return text.str();
}

}  // namespace flashmem
