# vhdup-testserver: the strict, fault-injecting page-blob server (test/server).
# Built into ${CMAKE_BINARY_DIR}/test, where the e2e tests find it through
# VHDUP_TOOLS_DIR.
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
file(GLOB VHDUP_TESTSERVER_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/server/*.c)
add_executable(vhdup-testserver ${VHDUP_TESTSERVER_SOURCES})
target_include_directories(vhdup-testserver PRIVATE ${PROJECT_SOURCE_DIR}/src
                                                    ${PROJECT_SOURCE_DIR}/include
                                                    ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(vhdup-testserver PRIVATE vhdup_util PkgConfig::LIBUV
                                               ${HTTP_PARSER_LIBRARY})
set_target_properties(vhdup-testserver PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                                  ${CMAKE_CURRENT_BINARY_DIR})
