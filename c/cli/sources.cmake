# The CLI's sources, for the top-level build and for the Python wheel's copy of the binary
# (bindings/python/CMakeLists.txt). Paths relative to the repository root.
set(SHM_CHANNEL_CLI_SOURCES c/cli/main.c c/cli/kinds.c c/cli/json.c c/cli/io.c c/cli/top.c
    c/cli/doctor.c c/cli/bridge.c)
