# The pure Azure module: unit tests on strings, fuzz targets for the parsers
# of untrusted text (connection strings, service XML).
vhdup_unit_test(azure vhdup_azure vhdup_util)
vhdup_fuzz_target(connstr vhdup_azure vhdup_util)
vhdup_fuzz_target(azure_xml vhdup_azure vhdup_util)

# libFuzzer only steers by the coverage of code built with
# -fsanitize=fuzzer-no-link; vhdup_fuzz_target() instruments just the fuzz
# file, so the fuzzers get their own instrumented copy of src/azure.
if(VHDUP_FUZZ)
  file(GLOB VHDUP_AZURE_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/azure/*.c)
  add_library(vhdup_azure_fuzzcov OBJECT ${VHDUP_AZURE_SOURCES})
  target_include_directories(vhdup_azure_fuzzcov PUBLIC ${PROJECT_SOURCE_DIR}/include
                                                        ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(vhdup_azure_fuzzcov PRIVATE -fsanitize=fuzzer-no-link)
  target_link_libraries(vhdup_azure_fuzzcov PUBLIC vhdup_mbedcrypto)
  foreach(t fuzz_connstr fuzz_azure_xml)
    set_property(TARGET ${t} PROPERTY LINK_LIBRARIES vhdup_azure_fuzzcov vhdup_util)
  endforeach()
endif()
