//! Builds or finds the shm_channel C library.
//!
//! By default the C sources in `../../../c` (the repository's `c/` folder) are compiled with
//! the `cc` crate into a static library, with the same flags as the CMake build.
//!
//! When `SHM_CHANNEL_LIB_DIR` names a folder, the prebuilt `libshm_channel.so` found there is
//! linked instead (set `SHM_CHANNEL_STATIC=1` to link `libshm_channel.a` from that folder).
//! The interop tests use this to test the very library that the other bindings load.
//! `SHM_CHANNEL_INCLUDE_DIR` may name the folder holding `shm_channel.h` (informational, for
//! dependents: it is passed on as `DEP_SHM_CHANNEL_INCLUDE`).

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=SHM_CHANNEL_LIB_DIR");
    println!("cargo:rerun-if-env-changed=SHM_CHANNEL_STATIC");
    println!("cargo:rerun-if-env-changed=SHM_CHANNEL_INCLUDE_DIR");

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let c_dir = manifest_dir.join("../../../c");
    let include_dir = env::var_os("SHM_CHANNEL_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| c_dir.join("include"));
    println!("cargo:include={}", include_dir.display());

    match env::var_os("SHM_CHANNEL_LIB_DIR") {
        Some(dir) if !dir.is_empty() => link_prebuilt(Path::new(&dir)),
        _ => build_from_source(&c_dir, &include_dir),
    }
}

fn link_prebuilt(dir: &Path) {
    let dir = dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("SHM_CHANNEL_LIB_DIR={}: {e}", dir.display()));
    let static_link = env::var("SHM_CHANNEL_STATIC").is_ok_and(|v| v == "1");
    let file = if static_link {
        "libshm_channel.a"
    } else {
        "libshm_channel.so"
    };
    if !dir.join(file).exists() {
        panic!(
            "SHM_CHANNEL_LIB_DIR={} holds no {file}; build it with CMake first",
            dir.display()
        );
    }
    println!("cargo:rerun-if-changed={}", dir.join(file).display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    let kind = if static_link { "static" } else { "dylib" };
    println!("cargo:rustc-link-lib={kind}=shm_channel");
    // Dependents (the safe crate's tests, examples and benches) read DEP_SHM_CHANNEL_LIB_DIR
    // to add an rpath, so their binaries load this very library without LD_LIBRARY_PATH.
    println!("cargo:lib_dir={}", dir.display());
}

fn build_from_source(c_dir: &Path, include_dir: &Path) {
    let src = c_dir.join("src");
    let sources = [
        "channel.c",
        "segment.c",
        "ring.c",
        "os_linux.c",
        "broadcast.c",
        "broadcast_api.c",
    ];
    for f in &sources {
        println!("cargo:rerun-if-changed={}", src.join(f).display());
    }
    for f in ["atomics.h", "layout.h", "os.h", "ring.h"] {
        println!("cargo:rerun-if-changed={}", src.join(f).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        include_dir.join("shm_channel.h").display()
    );

    let mut build = cc::Build::new();
    build
        .files(sources.iter().map(|f| src.join(f)))
        .include(include_dir)
        .include(&src)
        .define("SHM_CHANNEL_BUILDING", None)
        .flag("-std=c11")
        .flag("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true);
    // Optimise the C code even in a debug build of the Rust side: the ring is the hot path.
    if env::var("PROFILE").as_deref() == Ok("debug") {
        build.opt_level(2);
    }
    build.compile("shm_channel");
}
