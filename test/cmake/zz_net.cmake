# The HTTP engine (src/net) against real servers on loopback. Named zz_ so it
# is included after server.cmake and can see the vhdup-testserver target.
add_executable(test_http ${CMAKE_CURRENT_SOURCE_DIR}/net/test_http.c)
target_include_directories(test_http PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(test_http PRIVATE vhdup_net vhdup_util PkgConfig::CMOCKA PkgConfig::LIBUV
                                        PkgConfig::LIBCURL)
set(VHDUP_NET_TEST_ENV "VHDUP_ECHO_SERVER=${CMAKE_CURRENT_SOURCE_DIR}/net/echo_server.py")
if(TARGET vhdup-testserver)
  add_dependencies(test_http vhdup-testserver)
  list(APPEND VHDUP_NET_TEST_ENV "VHDUP_TESTSERVER=$<TARGET_FILE:vhdup-testserver>")
endif()
add_test(NAME net.http COMMAND test_http)
set_tests_properties(net.http PROPERTIES LABELS net TIMEOUT 300 ENVIRONMENT "${VHDUP_NET_TEST_ENV}")
