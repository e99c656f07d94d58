add_library(vhdup_upload_pure OBJECT ${PROJECT_SOURCE_DIR}/src/upload/scan.c)
target_include_directories(vhdup_upload_pure PUBLIC ${PROJECT_SOURCE_DIR}/src
                                                    ${PROJECT_SOURCE_DIR}/include)
vhdup_unit_test(scan vhdup_upload_pure)
# --connections auto against models of a link (vhdup__budget_observe).
vhdup_unit_test(auto vhdup_static)
