# Allocation failures through the public API: expand, dry-run and upload
# jobs, each run once per allocation with that one failing
# (vhdup_replace_allocator). It needs the whole library (engine, job,
# sinks), so it links vhdup_static rather than the per-module object
# libraries vhdup_unit_test() takes. The upload part starts the
# vhdup-testserver built next to it (skipped when there is none).
add_executable(test_alloc_failure ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_alloc_failure.c)
target_include_directories(test_alloc_failure PRIVATE ${PROJECT_SOURCE_DIR}/src
                                                      ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(test_alloc_failure PRIVATE vhdup_static PkgConfig::CMOCKA)
add_test(NAME unit.alloc_failure COMMAND test_alloc_failure)
set_tests_properties(unit.alloc_failure PROPERTIES LABELS "alloc" TIMEOUT 300)
# server.cmake is included after this file: look for its target at the end.
function(vhdup_alloc_test_server)
  if(TARGET vhdup-testserver)
    add_dependencies(test_alloc_failure vhdup-testserver)
    set_property(TEST unit.alloc_failure APPEND PROPERTY ENVIRONMENT
                 "VHDUP_TESTSERVER=$<TARGET_FILE:vhdup-testserver>")
  endif()
endfunction()
cmake_language(DEFER CALL vhdup_alloc_test_server)
