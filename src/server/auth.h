// --api-key: requests carry "Authorization: Bearer KEY".
#pragma once
#include <string_view>

namespace flashmem::server {

// True when `authorization` (the header's value) is "Bearer " + key. The comparison takes the
// same time whichever byte differs, so the key cannot be guessed byte by byte from timings.
bool bearer_matches(std::string_view authorization, std::string_view key);

}  // namespace flashmem::server
