//! When shm-channel-sys links a prebuilt library (`SHM_CHANNEL_LIB_DIR`), give this
//! package's tests, examples and benches an rpath to it, so they run against that very
//! library without `LD_LIBRARY_PATH`. Other programs need `LD_LIBRARY_PATH` or their own
//! rpath. Nothing to do when the C sources are compiled in (the default).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_SHM_CHANNEL_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_SHM_CHANNEL_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
