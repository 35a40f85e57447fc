# cmake --install: headers, static libraries, the gguf command, and a package config so that
# find_package(ggufkit) gives ggufkit::gguf, ggufkit::quant, ggufkit::kernels, ggufkit::requant, ggufkit::infer and ggufkit::convert
# (and ggufkit::kernels_cuda, ggufkit::infer_cuda in a build with CUDA).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(GGUFKIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ggufkit)
set(GGUFKIT_INSTALLED_LIBRARIES libgguf quant kernels requant infer convert)
set(GGUFKIT_INCLUDE_DIRS libgguf/include/ quant/include/ kernels/include/ requant/include/ infer/include/ convert/include/)
if(GGUFKIT_WITH_CUDA)
  list(APPEND GGUFKIT_INSTALLED_LIBRARIES kernels_cuda infer_cuda)
  list(APPEND GGUFKIT_INCLUDE_DIRS kernels/cuda/include/ infer/cuda/include/)
endif()
install(TARGETS ${GGUFKIT_INSTALLED_LIBRARIES} EXPORT ggufkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${GGUFKIT_INCLUDE_DIRS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET gguf)
  install(TARGETS gguf RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
if(TARGET gguf-view)
  install(TARGETS gguf-view RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(EXPORT ggufkitTargets NAMESPACE ggufkit:: DESTINATION ${GGUFKIT_CMAKE_DIR})
configure_package_config_file(cmake/ggufkitConfig.cmake.in ${PROJECT_BINARY_DIR}/ggufkitConfig.cmake
                              INSTALL_DESTINATION ${GGUFKIT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ggufkitConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ggufkitConfig.cmake ${PROJECT_BINARY_DIR}/ggufkitConfigVersion.cmake
        DESTINATION ${GGUFKIT_CMAKE_DIR})
