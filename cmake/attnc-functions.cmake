# attnc-functions.cmake - attnc_add_model(), compiling an .attn model into a
# library target at build time (modelled on Halide's add_halide_library).
#
# Used in two places:
#   - an installed package: find_package(attnc) loads attncConfig.cmake,
#     which defines the imported executable attnc::attnc and includes this;
#   - attnc's own build tree: the top-level CMakeLists.txt includes this and
#     makes attnc::attnc an alias of the attnc target being built.
#
#   attnc_add_model(TARGET SOURCE
#                   [PARAMS NAME=VALUE ...]   # attnc -D NAME=VALUE, one per entry
#                   [MCPU cpu]                # attnc --mcpu=cpu; default ${ATTNC_MCPU}
#                                             # if set, else the build machine's CPU
#                   [BACKEND cpu|cuda|cpu,cuda] # attnc --target= (default cpu); cuda
#                                             # kernels need the GPU runtime's dlopen
#                                             # of libcuda.so.1 at run time only
#                   [FLAGS flag ...]          # any other attnc options, verbatim
#                   [SHARED])                 # a shared library instead of an object
#
# Runs `attnc SOURCE -c -o ${CMAKE_CURRENT_BINARY_DIR}/TARGET.o` (which also
# writes TARGET.h) whenever SOURCE, the attnc executable or the arguments
# change, and creates a library target TARGET:
#   - default: a STATIC library wrapping TARGET.o (model and runtime in one
#     object, only the model's API global), linking libm and Threads::Threads;
#   - SHARED: an imported shared library libTARGET.so (links its own
#     dependencies; it has no SONAME, so it is linked as -lTARGET from
#     ${CMAKE_CURRENT_BINARY_DIR}; ship it beside your program).
# Either way ${CMAKE_CURRENT_BINARY_DIR} is on TARGET's interface include
# path, so `target_link_libraries(app PRIVATE TARGET)` lets app
# `#include "TARGET.h"` (self-contained: it carries attnc.h).
#
# The header is named after TARGET but the functions in it are named after
# the model (`model NAME` in SOURCE): NAME_create, NAME_run, NAME_error, ...
# Use the model name as TARGET unless you have a reason not to, e.g.
#   attnc_add_model(encoder ${ATTNC_EXAMPLES}/encoder.attn PARAMS D=64 L=2)
# gives encoder.h declaring encoder_create() and friends.
#
# attnc needs `ld` and `objcopy` (and for SHARED a C compiler: $CC, else
# `cc`) on PATH at build time.
include_guard(GLOBAL)

function(attnc_add_model TARGET SOURCE)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "SHARED" "MCPU;BACKEND" "PARAMS;FLAGS")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "attnc_add_model(${TARGET}): unexpected arguments: ${ARG_UNPARSED_ARGUMENTS}\n"
      "usage: attnc_add_model(TARGET SOURCE [PARAMS NAME=VALUE ...] [MCPU cpu] [BACKEND cpu|cuda|cpu,cuda] "
      "[FLAGS flag ...] [SHARED])")
  endif()
  if(ARG_KEYWORDS_MISSING_VALUES)
    message(FATAL_ERROR "attnc_add_model(${TARGET}): ${ARG_KEYWORDS_MISSING_VALUES} needs a value")
  endif()
  if(TARGET ${TARGET})
    message(FATAL_ERROR "attnc_add_model(${TARGET}): a target named '${TARGET}' already exists")
  endif()
  if(NOT TARGET attnc::attnc)
    message(FATAL_ERROR "attnc_add_model(${TARGET}): there is no attnc::attnc target; "
      "call find_package(attnc REQUIRED) first")
  endif()

  get_filename_component(src "${SOURCE}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${src}")
    get_source_file_property(generated "${src}" GENERATED)
    if(NOT generated)
      message(FATAL_ERROR "attnc_add_model(${TARGET}): model source '${src}' does not exist")
    endif()
  endif()

  set(args "${src}")
  foreach(p IN LISTS ARG_PARAMS)
    if(NOT p MATCHES "^[A-Za-z_][A-Za-z0-9_]*=.+$")
      message(FATAL_ERROR "attnc_add_model(${TARGET}): PARAMS entry '${p}' is not NAME=VALUE")
    endif()
    list(APPEND args -D "${p}")
  endforeach()
  if(NOT DEFINED ARG_MCPU AND DEFINED ATTNC_MCPU AND NOT ATTNC_MCPU STREQUAL "")
    set(ARG_MCPU "${ATTNC_MCPU}")
  endif()
  if(DEFINED ARG_MCPU)
    list(APPEND args "--mcpu=${ARG_MCPU}")
  endif()
  if(DEFINED ARG_BACKEND)
    if(NOT ARG_BACKEND MATCHES "^(cpu|cuda|cpu,cuda|cuda,cpu)$")
      message(FATAL_ERROR "attnc_add_model(${TARGET}): BACKEND is cpu, cuda or cpu,cuda, not '${ARG_BACKEND}'")
    endif()
    list(APPEND args "--target=${ARG_BACKEND}")
  endif()
  list(APPEND args ${ARG_FLAGS})

  # The attnc executable: a file dependency when imported (installed), a
  # target dependency (which also rebuilds it first) inside attnc's tree.
  get_target_property(exe_imported attnc::attnc IMPORTED)
  if(exe_imported)
    set(exe_dep "$<TARGET_FILE:attnc::attnc>")
  else()
    get_target_property(exe_dep attnc::attnc ALIASED_TARGET)
    if(NOT exe_dep)
      set(exe_dep attnc::attnc)
    endif()
  endif()

  set(dir "${CMAKE_CURRENT_BINARY_DIR}")
  set(hdr "${dir}/${TARGET}.h")
  if(ARG_SHARED)
    set(out "${dir}/lib${TARGET}.so")
    set(cmd COMMAND "$<TARGET_FILE:attnc::attnc>" ${args} -o "${out}"
            COMMAND "${CMAKE_COMMAND}" -E rename "${dir}/lib${TARGET}.h" "${hdr}")
  else()
    set(out "${dir}/${TARGET}.o")
    set(cmd COMMAND "$<TARGET_FILE:attnc::attnc>" ${args} -c -o "${out}")
  endif()

  # Makefile generators do not rerun a custom command whose command line
  # changed; a file holding the arguments (rewritten only when they change)
  # makes new PARAMS, MCPU or FLAGS rebuild the model with every generator.
  set(stamp "${dir}/${TARGET}.attnc-args")
  file(CONFIGURE OUTPUT "${stamp}" CONTENT "${args};SHARED=${ARG_SHARED}\n" @ONLY)

  add_custom_command(OUTPUT "${out}" "${hdr}"
    ${cmd}
    DEPENDS "${src}" ${exe_dep} "${stamp}"
    WORKING_DIRECTORY "${dir}"
    COMMENT "attnc: compiling model ${SOURCE} -> ${TARGET}"
    VERBATIM)

  if(NOT TARGET Threads::Threads)
    find_package(Threads REQUIRED)
  endif()

  if(ARG_SHARED)
    add_custom_target(${TARGET}.attnc DEPENDS "${out}" "${hdr}")
    add_library(${TARGET} SHARED IMPORTED GLOBAL)
    set_target_properties(${TARGET} PROPERTIES
      IMPORTED_LOCATION "${out}"
      IMPORTED_NO_SONAME TRUE
      INTERFACE_INCLUDE_DIRECTORIES "${dir}")
    add_dependencies(${TARGET} ${TARGET}.attnc)
  else()
    get_property(langs GLOBAL PROPERTY ENABLED_LANGUAGES)
    if("C" IN_LIST langs)
      set(lang C)
    elseif("CXX" IN_LIST langs)
      set(lang CXX)
    else()
      message(FATAL_ERROR "attnc_add_model(${TARGET}): enable C or CXX in project() first")
    endif()
    set_source_files_properties("${out}" PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
    set_source_files_properties("${hdr}" PROPERTIES HEADER_FILE_ONLY TRUE GENERATED TRUE)
    add_library(${TARGET} STATIC "${out}" "${hdr}")
    set_target_properties(${TARGET} PROPERTIES LINKER_LANGUAGE ${lang})
    target_include_directories(${TARGET} INTERFACE "${dir}")
    target_link_libraries(${TARGET} INTERFACE m Threads::Threads ${CMAKE_DL_LIBS})
  endif()
endfunction()
