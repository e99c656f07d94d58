# The manifest module (libyaml → structs, file:line:col diagnostics), which
# belongs to the vhdup tool, not to libvhdup. The unit tests link the
# library too: one table of destinations goes through both the manifest and
# `vhdup upload`'s target resolution (src/upload/target.c). The fuzz target
# keeps to the pure modules.
vhdup_unit_test(manifest vhdup_manifest vhdup_static)
vhdup_fuzz_target(manifest vhdup_manifest vhdup_azure vhdup_util)
# The manifest and libyaml stay out of the library (the tool links them).
add_test(NAME manifest.not_in_library
         COMMAND sh -c "! nm \"$1\" | grep -q vhdup__manifest && ! ldd \"$1\" | grep -q libyaml"
                 sh $<TARGET_FILE:vhdup_shared>)
set_tests_properties(manifest.not_in_library PROPERTIES LABELS unit)
