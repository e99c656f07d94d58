# What `cmake --install` puts in place for programs that embed vhdup: the CLI,
# both libraries, the public headers, vhdup.pc for pkg-config and a CMake
# package, so that find_package(vhdup) gives vhdup::vhdup (shared) and
# vhdup::vhdup_static. Included from the top CMakeLists.txt.
include(CMakePackageConfigHelpers)

set(VHDUP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vhdup)
set_target_properties(vhdup_shared PROPERTIES EXPORT_NAME vhdup)
set_target_properties(vhdup_mbedcrypto PROPERTIES EXPORT_NAME mbedcrypto)
# Installed, mbedcrypto is a plain -lmbedcrypto: no path of this machine, and
# no include directory (vhdup.h does not include mbedtls).
set_target_properties(
  vhdup_mbedcrypto
  PROPERTIES INTERFACE_INCLUDE_DIRECTORIES $<BUILD_INTERFACE:${MBEDTLS_INCLUDE_DIR}>
             INTERFACE_LINK_LIBRARIES "$<BUILD_INTERFACE:${MBEDCRYPTO_LIBRARY}>;$<INSTALL_INTERFACE:mbedcrypto>")
# vhdup.h includes uv.h, so users of the shared library need libuv too.
target_link_libraries(vhdup_shared INTERFACE PkgConfig::LIBUV)

install(TARGETS vhdup RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS vhdup_static vhdup_shared vhdup_mbedcrypto EXPORT vhdupTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/vhdup.h ${PROJECT_SOURCE_DIR}/include/vhdup_enums.h
              ${PROJECT_SOURCE_DIR}/include/vhdup_errno.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT vhdupTargets NAMESPACE vhdup:: DESTINATION ${VHDUP_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/vhdupConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/vhdupConfig.cmake
                              INSTALL_DESTINATION ${VHDUP_CMAKE_DIR})
# Before 1.0 a new minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vhdupConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vhdupConfig.cmake ${PROJECT_BINARY_DIR}/vhdupConfigVersion.cmake
        DESTINATION ${VHDUP_CMAKE_DIR})

# The .pc file finds its prefix relative to itself (${pcfiledir}), so the
# tree still works when installed with `cmake --install --prefix ELSEWHERE`.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "vhdup.pc needs CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR relative")
endif()
file(RELATIVE_PATH VHDUP_PC_RELATIVE_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" VHDUP_PC_RELATIVE_PREFIX "${VHDUP_PC_RELATIVE_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/vhdup.pc.in ${PROJECT_BINARY_DIR}/vhdup.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/vhdup.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
