//! Keeps the declarations in `src/lib.rs` honest against `c/include/shm_channel.h`.
//!
//! 1. The names: every constant (macro or enum value), function and `shm_channel_stat_t`
//!    field of the header is declared in Rust, and nothing else is.
//! 2. The values and types: a C file generated from the Rust declarations is compiled
//!    against the header with `-Werror`. It asserts every constant's value, assigns every C
//!    function to a pointer of the type the Rust signature implies (a mismatched parameter
//!    or return type is an incompatible-pointer error), and asserts the offset, size and type
//!    of every struct field as Rust lays it out.
//! 3. The symbols: every declared function links and the library reports the declared
//!    version.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use shm_channel_sys::*;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    match std::env::var_os("SHM_CHANNEL_INCLUDE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => manifest_dir().join("c/include"),
    }
}

fn header_text() -> String {
    let path = include_dir().join("shm_channel.h");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What src/lib.rs declares, read with syn.
struct RustDecls {
    consts: Vec<(String, String)>, // name, value as written
    fns: Vec<(String, Vec<syn::Type>, Option<syn::Type>)>,
    stat_fields: Vec<(String, syn::Type)>,
}

fn rust_decls() -> RustDecls {
    let src = std::fs::read_to_string(manifest_dir().join("src/lib.rs")).unwrap();
    let file = syn::parse_file(&src).expect("src/lib.rs parses");
    let mut d = RustDecls {
        consts: vec![],
        fns: vec![],
        stat_fields: vec![],
    };
    for item in file.items {
        match item {
            syn::Item::Const(c) => {
                let value = quote_expr(&c.expr);
                d.consts.push((c.ident.to_string(), value));
            }
            syn::Item::ForeignMod(m) => {
                for fi in m.items {
                    let syn::ForeignItem::Fn(f) = fi else {
                        panic!("only functions are expected in the extern block");
                    };
                    let args = f
                        .sig
                        .inputs
                        .iter()
                        .map(|a| match a {
                            syn::FnArg::Typed(t) => (*t.ty).clone(),
                            syn::FnArg::Receiver(_) => unreachable!(),
                        })
                        .collect();
                    let ret = match &f.sig.output {
                        syn::ReturnType::Default => None,
                        syn::ReturnType::Type(_, t) => Some((**t).clone()),
                    };
                    d.fns.push((f.sig.ident.to_string(), args, ret));
                }
            }
            syn::Item::Struct(s) if s.ident == "shm_channel_stat_t" => {
                for f in s.fields {
                    d.stat_fields.push((f.ident.unwrap().to_string(), f.ty));
                }
            }
            _ => {}
        }
    }
    d
}

/// A Rust constant's value as a C integer literal (`-1`, `1099511627776`).
fn quote_expr(e: &syn::Expr) -> String {
    match e {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i.base10_digits().to_string(),
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => format!("-{}", quote_expr(expr)),
        other => panic!("constant value is not an integer literal: {other:?}"),
    }
}

/// The C spelling of a Rust FFI type, for the generated check.
fn c_type(t: &syn::Type) -> String {
    match t {
        syn::Type::Ptr(p) => {
            let qual = if p.const_token.is_some() {
                "const "
            } else {
                ""
            };
            format!("{} {qual}*", c_type(&p.elem))
        }
        syn::Type::Path(p) => {
            let name = p.path.segments.last().unwrap().ident.to_string();
            match name.as_str() {
                "u8" => "uint8_t".into(),
                "u16" => "uint16_t".into(),
                "u32" => "uint32_t".into(),
                "u64" => "uint64_t".into(),
                "i32" => "int32_t".into(),
                "i64" => "int64_t".into(),
                "c_int" => "int".into(),
                "c_char" => "char".into(),
                "c_void" => "void".into(),
                "shm_channel_t"
                | "shm_channel_stat_t"
                | "shm_channel_broadcast_config_t"
                | "shm_channel_broadcast_stat_t"
                | "shm_channel_sub_stat_t"
                | "shm_channel_service_config_t"
                | "shm_channel_request_id_t"
                | "shm_channel_service_stat_t"
                | "shm_channel_compat_stat_t" => name,
                other => panic!("no C spelling for Rust type {other}"),
            }
        }
        other => panic!("unexpected type in a declaration: {other:?}"),
    }
}

/// Names the header declares: `SHM_CHANNEL_*` macros with a value and enum constants,
/// functions marked SHM_CHANNEL_API, and shm_channel_stat_t's fields.
struct HeaderNames {
    consts: BTreeSet<String>,
    fns: BTreeSet<String>,
    stat_fields: Vec<String>,
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("closed comment");
        rest = &rest[i + end + 2..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The functions a (comment-stripped) header declares: the identifier right before the
/// first '(' after each SHM_CHANNEL_API, outside preprocessor lines; and, second, any other
/// `shm_channel_*` identifier followed by '(': a function declared without the marker (not
/// exported, and easy to miss), which the name check reports too.
fn header_fns(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let ident_before = |s: &str| -> String {
        let tail: Vec<char> = s
            .trim_end()
            .chars()
            .rev()
            .take_while(|&c| is_ident_char(c))
            .collect();
        tail.into_iter().rev().collect()
    };
    let mut fns = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("SHM_CHANNEL_API ") {
        let decl = &rest[i..];
        let paren = decl.find('(').unwrap();
        fns.insert(ident_before(&decl[..paren]));
        rest = &decl[paren..];
    }
    let mut called = BTreeSet::new();
    for (i, _) in code.match_indices('(') {
        let name = ident_before(&code[..i]);
        if name.starts_with("shm_channel_") {
            called.insert(name);
        }
    }
    let unmarked = called.difference(&fns).cloned().collect();
    (fns, unmarked)
}

/// Functions declared on one side only (in the header but not in Rust, or the reverse),
/// and header functions without the SHM_CHANNEL_API marker.
fn fn_drift(rust: &BTreeSet<String>, header_text: &str) -> Vec<String> {
    let (fns, unmarked) = header_fns(&strip_comments(header_text));
    let mut drift: Vec<String> = fns.symmetric_difference(rust).cloned().collect();
    drift.extend(
        unmarked
            .into_iter()
            .map(|f| format!("{f} (no SHM_CHANNEL_API)")),
    );
    drift
}

fn header_names() -> HeaderNames {
    let text = strip_comments(&header_text());
    let mut consts = BTreeSet::new();
    let mut stat_fields = vec![];

    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("#define") {
            let name = words.next().unwrap();
            let has_value = words.next().is_some();
            // Macros without a value are include guards; SHM_CHANNEL_API is an attribute.
            if has_value && name.starts_with("SHM_CHANNEL_") && name != "SHM_CHANNEL_API" {
                consts.insert(name.to_string());
            }
        }
    }
    // Enum constants: `NAME = value` inside `enum ... { ... };`.
    let mut rest = text.as_str();
    while let Some(i) = rest.find("enum ") {
        let body_start = i + rest[i..].find('{').unwrap() + 1;
        let body_end = body_start + rest[body_start..].find('}').unwrap();
        for entry in rest[body_start..body_end].split(',') {
            let name = entry.split('=').next().unwrap().trim();
            if !name.is_empty() {
                consts.insert(name.to_string());
            }
        }
        rest = &rest[body_end..];
    }
    let (fns, _) = header_fns(&text);
    // shm_channel_stat_t's fields, in order.
    let start = text.find("typedef struct shm_channel_stat {").unwrap();
    let body_start = start + text[start..].find('{').unwrap() + 1;
    let body_end = body_start + text[body_start..].find('}').unwrap();
    for decl in text[body_start..body_end].split(';') {
        let decl = decl.trim();
        if decl.is_empty() {
            continue;
        }
        let decl = decl.split('[').next().unwrap().trim_end();
        let name: String = decl
            .chars()
            .rev()
            .take_while(|&c| is_ident_char(c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        stat_fields.push(name);
    }
    HeaderNames {
        consts,
        fns,
        stat_fields,
    }
}

#[test]
fn names_match_the_header() {
    let rust = rust_decls();
    let header = header_names();

    let rust_consts: BTreeSet<String> = rust.consts.iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        rust_consts
            .symmetric_difference(&header.consts)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "constants declared on one side only"
    );
    let rust_fns: BTreeSet<String> = rust.fns.iter().map(|f| f.0.clone()).collect();
    assert_eq!(
        fn_drift(&rust_fns, &header_text()),
        Vec::<String>::new(),
        "functions declared on one side only"
    );
    assert_eq!(header.fns, rust_fns);
    let rust_fields: Vec<String> = rust.stat_fields.iter().map(|f| f.0.clone()).collect();
    assert_eq!(rust_fields, header.stat_fields, "shm_channel_stat_t fields");
    // Sanity: the parsers found what they should, so this test can fail.
    assert!(header.consts.len() >= 23 && header.fns.len() >= 21);
}

/// The name check must be able to fail: a header function missing from the Rust
/// declarations (shm_channel_detach, say), one added to the header, with or without the
/// SHM_CHANNEL_API marker, and a Rust function the header lacks are each reported.
#[test]
fn the_name_check_catches_a_missing_or_extra_function() {
    let header = header_text();
    let rust: BTreeSet<String> = rust_decls().fns.into_iter().map(|f| f.0).collect();
    assert!(fn_drift(&rust, &header).is_empty());

    let mut missing = rust.clone();
    assert!(missing.remove("shm_channel_detach"));
    assert_eq!(fn_drift(&missing, &header), ["shm_channel_detach"]);

    let mut extra = rust.clone();
    extra.insert("shm_channel_gone".into());
    assert_eq!(fn_drift(&extra, &header), ["shm_channel_gone"]);

    let added =
        format!("{header}\nSHM_CHANNEL_API int shm_channel_new_thing(shm_channel_t *ch);\n");
    assert_eq!(fn_drift(&rust, &added), ["shm_channel_new_thing"]);

    let unmarked = format!("{header}\nint shm_channel_unmarked(shm_channel_t *ch);\n");
    assert_eq!(
        fn_drift(&rust, &unmarked),
        ["shm_channel_unmarked (no SHM_CHANNEL_API)"]
    );
}

/// Offsets and sizes of shm_channel_stat_t's fields as Rust lays them out.
fn rust_stat_layout() -> Vec<(&'static str, usize, usize)> {
    fn size_of_field<T>(_: fn(&shm_channel_stat_t) -> &T) -> usize {
        size_of::<T>()
    }
    macro_rules! fields {
        ($($f:ident),* $(,)?) => {
            vec![$((
                stringify!($f),
                offset_of!(shm_channel_stat_t, $f),
                size_of_field(|s| &s.$f),
            )),*]
        };
    }
    fields!(
        kind,
        layout_major,
        layout_minor,
        capacity,
        max_payload,
        write_pos,
        read_pos,
        used,
        msgs_written,
        bytes_written,
        msgs_read,
        bytes_read,
        full_events,
        empty_events,
        producer_wakes,
        consumer_wakes,
        producer_sleeps,
        consumer_sleeps,
        producer_state,
        consumer_state,
        producer_epoch,
        consumer_epoch,
        producer_alive,
        consumer_alive,
        in_use,
        creator_pid,
        created_ns,
        reserved,
    )
}

/// The C check generated from the Rust declarations.
fn generated_check() -> String {
    let rust = rust_decls();
    let mut c =
        String::from("#include <stddef.h>\n#include <stdint.h>\n#include \"shm_channel.h\"\n\n");
    for (name, value) in &rust.consts {
        writeln!(
            c,
            "_Static_assert((long long)({name}) == {value}LL, \"value of {name}\");"
        )
        .unwrap();
    }
    c.push('\n');
    for (name, args, ret) in &rust.fns {
        let ret = ret.as_ref().map_or("void".to_string(), c_type);
        let args = if args.is_empty() {
            "void".to_string()
        } else {
            args.iter().map(c_type).collect::<Vec<_>>().join(", ")
        };
        writeln!(c, "{ret} (*const check_{name})({args}) = {name};").unwrap();
    }
    c.push('\n');
    let layout = rust_stat_layout();
    let names: Vec<&str> = layout.iter().map(|f| f.0).collect();
    let parsed: Vec<String> = rust.stat_fields.iter().map(|f| f.0.clone()).collect();
    assert_eq!(
        names, parsed,
        "update rust_stat_layout() with the struct's fields"
    );
    writeln!(
        c,
        "_Static_assert(sizeof(shm_channel_stat_t) == {}, \"size of shm_channel_stat_t\");",
        size_of::<shm_channel_stat_t>()
    )
    .unwrap();
    // Compat channels: the size of their stat struct.
    writeln!(
        c,
        "_Static_assert(sizeof(shm_channel_compat_stat_t) == {}, \"size of shm_channel_compat_stat_t\");",
        size_of::<shm_channel_compat_stat_t>()
    )
    .unwrap();
    for ((name, off, size), (_, ty)) in layout.iter().zip(&rust.stat_fields) {
        // Arrays: check the element type; the size covers the length.
        let (expr, ty) = match ty {
            syn::Type::Array(a) => (format!("s->{name}[0]"), c_type(&a.elem)),
            t => (format!("s->{name}"), c_type(t)),
        };
        writeln!(
            c,
            "_Static_assert(offsetof(shm_channel_stat_t, {name}) == {off}, \"offset of {name}\");\n\
             _Static_assert(sizeof(((shm_channel_stat_t *)0)->{name}) == {size}, \"size of {name}\");\n\
             static inline int type_of_{name}(shm_channel_stat_t *s) {{ return _Generic({expr}, {ty}: 1); }}"
        )
        .unwrap();
    }
    service_layout_checks(&mut c);
    c
}

/// Services: the size and every field offset of the three service structs as Rust lays
/// them out, asserted against the header.
fn service_layout_checks(c: &mut String) {
    macro_rules! layout {
        ($t:ident { $($f:ident),* $(,)? }) => {{
            writeln!(c, "_Static_assert(sizeof({}) == {}, \"size of {}\");",
                     stringify!($t), size_of::<$t>(), stringify!($t)).unwrap();
            $(writeln!(c, "_Static_assert(offsetof({}, {}) == {}, \"offset of {}.{}\");",
                       stringify!($t), stringify!($f), offset_of!($t, $f),
                       stringify!($t), stringify!($f)).unwrap();)*
        }};
    }
    layout!(shm_channel_service_config_t {
        max_request,
        max_response,
        max_clients,
        reserved0,
        reserved,
    });
    layout!(shm_channel_request_id_t {
        client,
        reserved,
        seq
    });
    layout!(shm_channel_service_stat_t {
        max_request,
        max_response,
        max_clients,
        clients,
        live_clients,
        server_state,
        server_epoch,
        server_alive,
        joins,
        reclaims,
        reaped,
        requests,
        responses,
        stale,
        expired,
        invalid,
        server_sleeps,
        server_wakes,
        client_sleeps,
        client_timeouts,
        reserved,
    });
}

#[test]
fn declarations_compile_against_the_header() {
    let check = generated_check();
    let dir = std::env::temp_dir().join(format!("shm-channel-sys-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("check.c");
    std::fs::write(&file, &check).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(include_dir())
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "the Rust declarations disagree with shm_channel.h:\n{}\n--- generated check ---\n{check}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The check itself must be able to fail: a wrong value, a wrong parameter type and a
/// wrong field offset are each rejected by the compiler, and so is a wrong return or
/// parameter type of `shm_channel_detach`.
#[test]
fn the_compiled_check_catches_drift() {
    let good = generated_check();
    let bad_variants = [
        good.replace(
            "(long long)(SHM_CHANNEL_MIN_CAPACITY) == 1024LL",
            "(long long)(SHM_CHANNEL_MIN_CAPACITY) == 2048LL",
        ),
        good.replace(
            "int (*const check_shm_channel_write)(shm_channel_t *, void const *, uint64_t, int64_t)",
            "int (*const check_shm_channel_write)(shm_channel_t *, void const *, uint32_t, int64_t)",
        ),
        good.replace(
            "int (*const check_shm_channel_detach)(shm_channel_t *)",
            "void (*const check_shm_channel_detach)(shm_channel_t *)",
        ),
        good.replace(
            "int (*const check_shm_channel_detach)(shm_channel_t *)",
            "int (*const check_shm_channel_detach)(shm_channel_t const *)",
        ),
        good.replace(
            "offsetof(shm_channel_stat_t, capacity) == 8",
            "offsetof(shm_channel_stat_t, capacity) == 16",
        ),
        good.replace(
            "offsetof(shm_channel_request_id_t, seq) == 8",
            "offsetof(shm_channel_request_id_t, seq) == 4",
        ),
    ];
    let dir = std::env::temp_dir().join(format!("shm-channel-sys-drift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for (i, bad) in bad_variants.iter().enumerate() {
        assert_ne!(bad, &good, "variant {i} did not change the check");
        let file = dir.join(format!("bad{i}.c"));
        std::fs::write(&file, bad).unwrap();
        let status = Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I"])
            .arg(include_dir())
            .arg(&file)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            !status.success(),
            "variant {i} compiled, but should not have"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_function_links_and_the_version_matches() {
    // Taking each address makes the linker resolve every declared symbol.
    let fns: [(&str, usize); 27 + 13 + 1 + 1 + 3 + 2 + 2] = [
        ("shm_channel_open", shm_channel_open as *const () as usize),
        ("shm_channel_close", shm_channel_close as *const () as usize),
        (
            "shm_channel_detach",
            shm_channel_detach as *const () as usize,
        ),
        (
            "shm_channel_unlink",
            shm_channel_unlink as *const () as usize,
        ),
        ("shm_channel_write", shm_channel_write as *const () as usize),
        (
            "shm_channel_write_batch",
            shm_channel_write_batch as *const () as usize,
        ),
        (
            "shm_channel_reserve",
            shm_channel_reserve as *const () as usize,
        ),
        (
            "shm_channel_commit",
            shm_channel_commit as *const () as usize,
        ),
        ("shm_channel_abort", shm_channel_abort as *const () as usize),
        ("shm_channel_read", shm_channel_read as *const () as usize),
        (
            "shm_channel_read_batch",
            shm_channel_read_batch as *const () as usize,
        ),
        ("shm_channel_peek", shm_channel_peek as *const () as usize),
        (
            "shm_channel_release",
            shm_channel_release as *const () as usize,
        ),
        ("shm_channel_stat", shm_channel_stat as *const () as usize),
        (
            "shm_channel_max_payload",
            shm_channel_max_payload as *const () as usize,
        ),
        (
            "shm_channel_capacity",
            shm_channel_capacity as *const () as usize,
        ),
        (
            "shm_channel_set_spin",
            shm_channel_set_spin as *const () as usize,
        ),
        ("shm_channel_dir", shm_channel_dir as *const () as usize),
        (
            "shm_channel_strerror",
            shm_channel_strerror as *const () as usize,
        ),
        (
            "shm_channel_version",
            shm_channel_version as *const () as usize,
        ),
        (
            "shm_channel_version_string",
            shm_channel_version_string as *const () as usize,
        ),
        (
            "shm_channel_open_broadcast",
            shm_channel_open_broadcast as *const () as usize,
        ),
        ("shm_channel_recv", shm_channel_recv as *const () as usize),
        (
            "shm_channel_read_latest",
            shm_channel_read_latest as *const () as usize,
        ),
        (
            "shm_channel_peek_latest",
            shm_channel_peek_latest as *const () as usize,
        ),
        (
            "shm_channel_broadcast_stat",
            shm_channel_broadcast_stat as *const () as usize,
        ),
        (
            "shm_channel_sub_stat",
            shm_channel_sub_stat as *const () as usize,
        ),
        // services
        (
            "shm_channel_open_service",
            shm_channel_open_service as *const () as usize,
        ),
        (
            "shm_channel_request",
            shm_channel_request as *const () as usize,
        ),
        (
            "shm_channel_response",
            shm_channel_response as *const () as usize,
        ),
        (
            "shm_channel_wait_server",
            shm_channel_wait_server as *const () as usize,
        ),
        (
            "shm_channel_receive",
            shm_channel_receive as *const () as usize,
        ),
        (
            "shm_channel_receive_peek",
            shm_channel_receive_peek as *const () as usize,
        ),
        (
            "shm_channel_receive_release",
            shm_channel_receive_release as *const () as usize,
        ),
        (
            "shm_channel_respond",
            shm_channel_respond as *const () as usize,
        ),
        (
            "shm_channel_respond_reserve",
            shm_channel_respond_reserve as *const () as usize,
        ),
        (
            "shm_channel_respond_commit",
            shm_channel_respond_commit as *const () as usize,
        ),
        ("shm_channel_drop", shm_channel_drop as *const () as usize),
        ("shm_channel_reap", shm_channel_reap as *const () as usize),
        (
            "shm_channel_service_stat",
            shm_channel_service_stat as *const () as usize,
        ),
        // Compat channels.
        (
            "shm_channel_compat_stat",
            shm_channel_compat_stat as *const () as usize,
        ),
        // Reclaiming dead peers' entries (issue 10).
        (
            "shm_channel_reclaim",
            shm_channel_reclaim as *const () as usize,
        ),
        // Batch peek and the mapping window (issue 14).
        (
            "shm_channel_peek_batch",
            shm_channel_peek_batch as *const () as usize,
        ),
        (
            "shm_channel_release_n",
            shm_channel_release_n as *const () as usize,
        ),
        (
            "shm_channel_mapping",
            shm_channel_mapping as *const () as usize,
        ),
        // One-try write and read (issue 14).
        (
            "shm_channel_try_write",
            shm_channel_try_write as *const () as usize,
        ),
        (
            "shm_channel_try_read",
            shm_channel_try_read as *const () as usize,
        ),
        // One-try zero copy (issue 14).
        (
            "shm_channel_try_reserve",
            shm_channel_try_reserve as *const () as usize,
        ),
        (
            "shm_channel_try_peek",
            shm_channel_try_peek as *const () as usize,
        ),
    ];
    let listed: BTreeSet<String> = fns.iter().map(|f| f.0.to_string()).collect();
    let declared: BTreeSet<String> = rust_decls().fns.into_iter().map(|f| f.0).collect();
    assert_eq!(
        listed, declared,
        "update this list with the declared functions"
    );
    assert!(fns.iter().all(|f| f.1 != 0));

    // SAFETY: no arguments; the strings returned are static and NUL-terminated.
    let (v, text) = unsafe {
        (
            shm_channel_version(),
            std::ffi::CStr::from_ptr(shm_channel_version_string()),
        )
    };
    assert_eq!(
        v,
        (SHM_CHANNEL_VERSION_MAJOR << 16)
            | (SHM_CHANNEL_VERSION_MINOR << 8)
            | SHM_CHANNEL_VERSION_PATCH
    );
    assert_eq!(
        text.to_str().unwrap(),
        format!(
            "{SHM_CHANNEL_VERSION_MAJOR}.{SHM_CHANNEL_VERSION_MINOR}.{SHM_CHANNEL_VERSION_PATCH}"
        )
    );
}
