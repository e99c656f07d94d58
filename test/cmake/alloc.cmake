# Allocation failures through the public API: an expand job run once per
# allocation, failing that one (vhdup_replace_allocator). It needs the whole
# library (engine, job, sinks), so it links vhdup_static rather than the
# per-module object libraries vhdup_unit_test() takes.
add_executable(test_alloc_failure ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_alloc_failure.c)
target_include_directories(test_alloc_failure PRIVATE ${PROJECT_SOURCE_DIR}/src
                                                      ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(test_alloc_failure PRIVATE vhdup_static PkgConfig::CMOCKA)
add_test(NAME unit.alloc_failure COMMAND test_alloc_failure)
set_tests_properties(unit.alloc_failure PROPERTIES LABELS "alloc" TIMEOUT 300)
