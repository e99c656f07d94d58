# vhdup blob: the pure segment/stitch logic behind Get Page Ranges listings.
add_library(vhdup_page_walk_pure OBJECT ${PROJECT_SOURCE_DIR}/src/upload/page_walk.c)
target_include_directories(vhdup_page_walk_pure PUBLIC ${PROJECT_SOURCE_DIR}/src
                                                       ${PROJECT_SOURCE_DIR}/include)
vhdup_unit_test(page_walk vhdup_page_walk_pure)

# The public blob operations' contract (callbacks, cancel, engine close),
# against a refused loopback port: no server needed.
vhdup_unit_test(blob_ops vhdup_static)
