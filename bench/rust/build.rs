//! Compiles c/loops.c, the C twin of the Rust loops (the paired `c_*` cases), against the
//! library's public header. It links against the same static C library as the Rust side
//! (shm-channel-sys builds it), so a `c_*` row and its `rs_*` row call the same code.

fn main() {
    println!("cargo:rerun-if-changed=c/loops.c");
    cc::Build::new()
        .file("c/loops.c")
        .include("../../c/include")
        .flag("-std=c11")
        .opt_level(3)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("cmp_c_loops");
}
