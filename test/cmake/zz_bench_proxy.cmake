# The delaying TCP proxy of the connection-count sweep (bench/sweep.sh,
# bench/wan.sh): built with the tests but not a test.
if(EXISTS ${PROJECT_SOURCE_DIR}/bench/delay_proxy.c)
  add_executable(bench_delay_proxy ${PROJECT_SOURCE_DIR}/bench/delay_proxy.c)
  target_link_libraries(bench_delay_proxy PRIVATE PkgConfig::LIBUV)
endif()
