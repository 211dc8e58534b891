//! When the library is prebuilt (SHM_CHANNEL_LIB_DIR, as the interop runner sets it), bake its
//! folder into the binary's run path, so the peer loads that very file.
fn main() {
    println!("cargo:rerun-if-env-changed=SHM_CHANNEL_LIB_DIR");
    if let Some(dir) = std::env::var_os("SHM_CHANNEL_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = std::path::Path::new(&dir)
            .canonicalize()
            .expect("SHM_CHANNEL_LIB_DIR exists");
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", dir.display());
    }
}
