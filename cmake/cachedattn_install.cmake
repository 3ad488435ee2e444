# Install headers, the io library and a package config so that
# find_package(cachedattn CONFIG) + target_link_libraries(app cachedattn::cachedattn) works.
include(CMakePackageConfigHelpers)
install(TARGETS cachedattn cachedattn_io EXPORT cachedattnTargets
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
