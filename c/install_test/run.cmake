# ctest -R install_package: install the build tree into a temporary prefix, then build and run
# a downstream program with find_package(shm_channel) and with pkg-config.
# Inputs: -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=...
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
foreach(f include/shm_channel.h lib/libshm_channel.so.1 lib/libshm_channel.a bin/shm_channel)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/c/install_test" -B "${WORK_DIR}/build"
                        -DCMAKE_PREFIX_PATH=${prefix} RESULT_VARIABLE rc)
if(NOT rc)
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
endif()
if(NOT rc)
  set(ENV{LD_LIBRARY_PATH} "${prefix}/lib")
  execute_process(COMMAND "${WORK_DIR}/build/uses_package" RESULT_VARIABLE rc)
endif()
if(rc)
  message(FATAL_ERROR "find_package consumer failed: ${rc}")
endif()
# pkg-config
set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
execute_process(COMMAND pkg-config --cflags --libs shm_channel OUTPUT_VARIABLE flags
                RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(rc)
  message(FATAL_ERROR "pkg-config failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND cc "${SOURCE_DIR}/c/install_test/main.c" ${flags} -o "${WORK_DIR}/pc_main"
                RESULT_VARIABLE rc)
if(NOT rc)
  execute_process(COMMAND "${WORK_DIR}/pc_main" RESULT_VARIABLE rc)
endif()
if(rc)
  message(FATAL_ERROR "pkg-config consumer failed: ${rc}")
endif()
