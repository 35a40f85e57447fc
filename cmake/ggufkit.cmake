# Compile flags for ggufkit's own C++ targets only: never global, never for nvcc or a parent
# project that adds ggufkit with add_subdirectory().
set(GGUFKIT_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
set(GGUFKIT_FLAGS)
set(GGUFKIT_LINK_FLAGS)
if(GGUFKIT_SANITIZE)
  # GCC's flow analysis reports spurious maybe-uninitialized warnings inside libstdc++'s
  # <regex> once sanitizers instrument it; the release build keeps that warning on.
  list(APPEND GGUFKIT_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
       -Wno-maybe-uninitialized)
  list(APPEND GGUFKIT_LINK_FLAGS -fsanitize=address,undefined)
endif()
if(GGUFKIT_FUZZ)
  # -Wno-pass-failed: at -O1 clang declines some "omp simd" loops, which is fine here.
  list(APPEND GGUFKIT_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
       -fno-sanitize-recover=all -Wno-pass-failed)
  list(APPEND GGUFKIT_LINK_FLAGS -fsanitize=address,undefined)
endif()

# Attaches the flags above to every library and executable defined in `dir` and below.
function(ggufkit_apply_flags dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(kind ${t} TYPE)
    if(kind MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$")
      target_compile_options(${t} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:${GGUFKIT_WARNINGS};${GGUFKIT_FLAGS}>")
      # Standard C++ whoever adds us: a parent project's default (gnu++20) would change every
      # compile command, and with it every ccache key the top-level build has filled.
      set_target_properties(${t} PROPERTIES CXX_EXTENSIONS OFF)
      # Position-independent static libraries: the Python module (a shared object) links
      # them, and a parent project may link them into one of its own. Always, so that every
      # build compiles them alike (and ccache shares them).
      if(kind STREQUAL "STATIC_LIBRARY")
        set_target_properties(${t} PROPERTIES POSITION_INDEPENDENT_CODE ON)
      endif()
      if(GGUFKIT_LINK_FLAGS)
        target_link_options(${t} PRIVATE ${GGUFKIT_LINK_FLAGS})
      endif()
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(d IN LISTS subdirs)
    ggufkit_apply_flags(${d})
  endforeach()
endfunction()
