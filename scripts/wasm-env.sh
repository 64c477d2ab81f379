# Sourced by the wasm build and test scripts: Debian's rustc-web 1.96 builds std for
# wasm32 from source (rustup cannot add the target here). See docs/wasm-toolchain.md.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$ROOT/target-wasm"
export RUSTFLAGS='--cfg getrandom_backend="wasm_js" --cfg=web_sys_unstable_apis'
export CC_wasm32_unknown_unknown=clang-22
export AR_wasm32_unknown_unknown=llvm-ar-22
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$(command -v wasm-bindgen-test-runner || echo "$HOME/.cargo/bin/wasm-bindgen-test-runner")"
WASM_CARGO=/usr/bin/cargo
WASM_FLAGS=(--target wasm32-unknown-unknown -Zbuild-std=std,panic_abort)
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22
