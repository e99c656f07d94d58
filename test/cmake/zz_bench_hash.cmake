# Single-core MD5 and CRC64 rates, the CPU ceiling of per-request checksums;
# built with the tests but not a test: bench/upload.sh runs it.
if(EXISTS ${PROJECT_SOURCE_DIR}/bench/hashrate.c)
  add_executable(bench_hashrate ${PROJECT_SOURCE_DIR}/bench/hashrate.c)
  target_include_directories(bench_hashrate PRIVATE ${PROJECT_SOURCE_DIR}/src
                                                    ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(bench_hashrate PRIVATE vhdup_azure vhdup_util)
endif()
