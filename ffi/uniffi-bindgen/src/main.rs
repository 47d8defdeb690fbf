//! `cargo run -p uniffi-bindgen -- generate --library target/debug/libnabij_ffi.so --language python --out-dir out`
fn main() {
    uniffi::uniffi_bindgen_main()
}
