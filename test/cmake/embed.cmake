# The embedding example: an application's own libuv loop (echo server, timer)
# running two uploads through the public API; driven by
# test/e2e/embed_upload.sh, which finds it in VHDUP_TOOLS_DIR.
add_executable(embed_upload ${CMAKE_CURRENT_SOURCE_DIR}/embed/embed_upload.c)
target_link_libraries(embed_upload PRIVATE vhdup_static PkgConfig::LIBUV)
set_target_properties(embed_upload PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
