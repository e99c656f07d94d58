# Benchmarks are built with the tests but are not tests: bench/engine.sh runs
# them. The top level does not include bench/ itself yet.
if(EXISTS ${PROJECT_SOURCE_DIR}/bench/engine.c)
  add_executable(bench_engine ${PROJECT_SOURCE_DIR}/bench/engine.c)
  target_include_directories(bench_engine PRIVATE ${PROJECT_SOURCE_DIR}/src
                                                  ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(bench_engine PRIVATE vhdup_net vhdup_util PkgConfig::LIBUV
                                             PkgConfig::LIBCURL)
endif()
