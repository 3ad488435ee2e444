# Install headers (the conformance suite in cachedattn/testing/ included), the io library, the
# CUDA and Redis libraries when built, and a package config so that find_package(cachedattn CONFIG) +
# target_link_libraries(app cachedattn::cachedattn [cachedattn::cuda] [cachedattn::redis]) works.
include(CMakePackageConfigHelpers)
# The CUDA library too when it is built. Exported targets name no absolute path: system
# libraries by name, the prefix relative to the config file (tests/package moves the prefix).
set(_cachedattn_install_targets cachedattn cachedattn_stacks cachedattn_io)
if(TARGET cachedattn_cuda)
  list(APPEND _cachedattn_install_targets cachedattn_cuda)
  set(CACHEDATTN_WITH_CUDA ON)
else()
  set(CACHEDATTN_WITH_CUDA OFF)
endif()
if(TARGET cachedattn_redis)
  list(APPEND _cachedattn_install_targets cachedattn_redis)
endif()
install(TARGETS ${_cachedattn_install_targets} EXPORT cachedattnTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(CACHEDATTN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cachedattn)
install(EXPORT cachedattnTargets NAMESPACE cachedattn:: DESTINATION ${CACHEDATTN_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/cachedattnConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/cachedattnConfig.cmake
                              INSTALL_DESTINATION ${CACHEDATTN_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/cachedattnConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cachedattnConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/cachedattnConfigVersion.cmake
        DESTINATION ${CACHEDATTN_CMAKE_DIR})
