"""The cffi cdef must be a literal subset of c/include/shm_channel.h: cffi's ABI mode checks
nothing, and a misdeclared function would corrupt memory at random. Both texts are parsed
with pycparser (a cffi dependency) and compared declaration by declaration."""

from __future__ import annotations

import re

import pytest

from conftest import REPO
from shm_channel import _lib

pycparser = pytest.importorskip("pycparser")
from pycparser import c_ast, c_generator, c_parser  # noqa: E402

HEADER = REPO / "c" / "include" / "shm_channel.h"
PRELUDE = "".join(
    f"typedef {c} {t};\n"
    for t, c in [
        ("uint8_t", "unsigned char"),
        ("uint16_t", "unsigned short"),
        ("uint32_t", "unsigned int"),
        ("uint64_t", "unsigned long long"),
        ("int32_t", "int"),
        ("int64_t", "long long"),
        ("size_t", "unsigned long"),
    ]
)


def split(text: str) -> tuple[dict[str, str], str]:
    """(#define name -> value, the C declarations without comments or preprocessor lines)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    defines: dict[str, str] = {}
    body = []
    skipping = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#ifdef __cplusplus"):
            skipping = True
        elif skipping and s.startswith("#endif"):
            skipping = False
        elif s.startswith("#"):
            m = re.match(r"#\s*define\s+(\w+)\s+(.+)$", s)
            if m:
                defines[m.group(1)] = m.group(2).strip()
        elif not skipping:
            body.append(line)
    code = "\n".join(body).replace("SHM_CHANNEL_API", "")
    return defines, code


def declarations(code: str) -> dict[str, str]:
    """Canonical text of each top-level declaration, keyed by what it declares."""
    ast = c_parser.CParser().parse(PRELUDE + code)
    gen = c_generator.CGenerator()
    out: dict[str, str] = {}
    for node in ast.ext[len(PRELUDE.splitlines()) :]:
        if isinstance(node, c_ast.Typedef):
            key = f"typedef {node.name}"
        elif isinstance(node, c_ast.Decl) and node.name:
            key = node.name
        elif isinstance(node, c_ast.Decl) and isinstance(node.type, (c_ast.Enum, c_ast.Struct)):
            key = f"{type(node.type).__name__.lower()} {node.type.name}"
        else:
            raise AssertionError(f"unexpected declaration: {gen.visit(node)}")
        out[key] = re.sub(r"\s+", " ", gen.visit(node))
    return out


HEADER_DEFINES, HEADER_CODE = split(HEADER.read_text())
CDEF_DEFINES, CDEF_CODE = split(_lib.CDEF)
HEADER_DECLS = declarations(HEADER_CODE)
CDEF_DECLS = declarations(CDEF_CODE)


def test_header_parsed() -> None:
    assert "shm_channel_open" in HEADER_DECLS
    assert "typedef shm_channel_stat_t" in HEADER_DECLS
    assert len(HEADER_DECLS) >= 25


@pytest.mark.parametrize("key", sorted(CDEF_DECLS))
def test_cdef_declaration_is_in_header(key: str) -> None:
    assert key in HEADER_DECLS, f"{key} is in the cdef but not in shm_channel.h"
    assert CDEF_DECLS[key] == HEADER_DECLS[key]


@pytest.mark.parametrize("name", sorted(CDEF_DEFINES))
def test_cdef_define_matches_header(name: str) -> None:
    assert HEADER_DEFINES.get(name) == CDEF_DEFINES[name]


def test_every_function_is_bound() -> None:
    functions = {
        k for k, v in HEADER_DECLS.items() if "(" in v and not k.startswith(("typedef", "enum"))
    }
    missing = functions - set(CDEF_DECLS)
    assert not missing, f"functions of shm_channel.h missing from the cdef: {missing}"


def test_every_enum_and_type_is_bound() -> None:
    wanted = {k for k in HEADER_DECLS if k.startswith(("enum ", "typedef "))}
    assert wanted <= set(CDEF_DECLS)


def test_cdef_constants_reach_python() -> None:
    lib = _lib.lib
    for name, value in CDEF_DEFINES.items():
        assert getattr(lib, name) == int(value)
    # kind+layout, 15 u64 counters, 8 u32 states, created_ns, reserved[8]
    assert _lib.ffi.sizeof("shm_channel_stat_t") == 8 + 15 * 8 + 8 * 4 + 8 + 8 * 8
