# The commands README.md documents. Every target first makes sure the
# wasm32-wasip2 target is installed: machines here set RUSTUP_AUTO_INSTALL=0,
# so rust-toolchain.toml alone does not install it.

HOST_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
LISTEN ?= 127.0.0.1:8080

.PHONY: demo test vtc bench fuzz wasm-target test-packages lint unit-test e2e-test plugin-test examples example-tools

## Build everything and run the demo: three backends behind a round-robin proxy.
## The dev profile (dependencies optimized, see Cargo.toml) builds far faster
## than the fat-LTO release profile and is the build `make test` reuses.
demo: wasm-target
	cargo run -p bascule -- demo --listen $(LISTEN)

## The whole test suite: formatting, lints, unit, plugin and end-to-end tests.
## The end-to-end tests include the VTest scripts in tests/vtc (run by
## tests/e2e/vtc.rs against the real binary), so `make vtc` is only for
## running those alone.
test: wasm-target test-packages lint plugin-test examples
	cargo test --workspace

## The example plugins of examples/, each by its own build script (the
## end-to-end tests load what they build).
## C builds with Debian's clang-14, lld-14 and wasi-libc, and two tools from
## crates.io installed into $(TOOLS) (a cache the CI keeps between runs);
## JavaScript with componentize-js, pinned in examples/package.json and
## installed there by examples/js-tools.sh with npm.
COMPONENTIZE_PY_VERSION := 0.25.1
WIT_BINDGEN_VERSION := 0.63.0
WASM_TOOLS_VERSION := 1.262.0
TOOLS := $(HOME)/.cache/bascule/tools
export PATH := $(TOOLS)/bin:$(PATH)

examples: wasm-target example-tools
	CARGO_TARGET_DIR=$(CURDIR)/target/examples examples/canary-router/rust/build.sh
	examples/canary-router/c/build.sh
	examples/canary-router/python/build.sh
	examples/canary-router/js/build.sh
	examples/redis-role/c/build.sh
	examples/api-keys/js/build.sh
	CARGO_TARGET_DIR=$(CURDIR)/target/examples cargo test --manifest-path examples/canary-router/rust/Cargo.toml --target $(HOST_TRIPLE)

## The pinned toolchains of the non-Rust examples, each installed only when
## the right version is missing.
example-tools:
	@componentize-py --version 2>/dev/null | grep -q "$(COMPONENTIZE_PY_VERSION)" || \
	  python3 -m pip install -q "componentize-py==$(COMPONENTIZE_PY_VERSION)"
	@command -v clang-14 >/dev/null 2>&1 && command -v wasm-ld-14 >/dev/null 2>&1 && [ -f /usr/lib/wasm32-wasi/libc.a ] && \
	  ls /usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32; }
	@wit-bindgen --version 2>/dev/null | grep -q "$(WIT_BINDGEN_VERSION)" || \
	  cargo install --locked --root $(TOOLS) wit-bindgen-cli --version $(WIT_BINDGEN_VERSION) --no-default-features --features c
	@wasm-tools --version 2>/dev/null | grep -q "$(WASM_TOOLS_VERSION)" || \
	  cargo install --locked --root $(TOOLS) wasm-tools --version $(WASM_TOOLS_VERSION) --no-default-features --features component,validate,print

## Only the VTest protocol scripts of tests/vtc.
vtc: wasm-target test-packages
	cargo test -p bascule --test e2e vtc::

## Third-party programs the end-to-end tests run: a real DNS server
## (dnsmasq), the VTest engine for the protocol scripts (varnishtest), the
## TLS scanner run against TLS listeners (testssl.sh), the Prometheus
## metrics linter run on a real scrape (promtool, from `prometheus`), the
## headless browser the status page is tested in (chromium) and the
## Redis servers the example health interpreter judges (redis-server).
test-packages:
	@{ command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; } && command -v varnishtest >/dev/null 2>&1 && command -v testssl >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsmasq-base varnish testssl.sh prometheus chromium redis-server; }

## Fuzz the request-head steps (authority, path, framing, hop-by-hop) for
## FUZZ_SECONDS with libFuzzer. cargo-fuzz's flags are unstable ones, which
## RUSTC_BOOTSTRAP lets the pinned stable toolchain take (no other toolchain
## is available on the CI machines); no sanitizer, as the host code has no
## unsafe. Inputs it finds go to fuzz/corpus (ignored by git); a crash
## leaves its input in fuzz/artifacts and fails the target.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
	mkdir -p fuzz/corpus/request_head
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --release request_head \
	  corpus/request_head seeds/request_head -- \
	  -dict=request_head.dict -max_total_time=$(FUZZ_SECONDS)

## Micro-benchmarks of plugin calls (criterion); results in target/criterion.
bench: wasm-target
	cargo bench -p bascule --bench balancers

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path plugins/Cargo.toml --workspace --target wasm32-wasip2 -- -D warnings

## Plugin algorithms, natively.
plugin-test:
	cargo test --manifest-path plugins/Cargo.toml --workspace --target $(HOST_TRIPLE)
