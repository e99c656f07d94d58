add_library(vhdup_upload_pure OBJECT ${PROJECT_SOURCE_DIR}/src/upload/scan.c)
target_include_directories(vhdup_upload_pure PUBLIC ${PROJECT_SOURCE_DIR}/src
                                                    ${PROJECT_SOURCE_DIR}/include)
vhdup_unit_test(scan vhdup_upload_pure)
# --connections auto against models of a link: the controller alone
# (src/upload/autotune.c is pure: no libuv, no budget).
add_library(vhdup_autotune_pure OBJECT ${PROJECT_SOURCE_DIR}/src/upload/autotune.c)
target_include_directories(vhdup_autotune_pure PUBLIC ${PROJECT_SOURCE_DIR}/src
                                                      ${PROJECT_SOURCE_DIR}/include)
vhdup_unit_test(auto vhdup_autotune_pure)
