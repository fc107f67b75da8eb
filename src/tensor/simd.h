// <immintrin.h> for the kernel files. GCC 12's AVX-512 intrinsics initialise their "undefined"
// operands from themselves and trip -Wuninitialized at every inlined call (GCC bug 105593,
// fixed in 12.3/13); the warnings point into the system header, so they are silenced only there.
#pragma once
#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
