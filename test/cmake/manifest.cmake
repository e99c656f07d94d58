# The pure manifest module (libyaml → structs, file:line:col diagnostics):
# unit tests on strings, and a fuzz target for hostile manifests.
vhdup_unit_test(manifest vhdup_manifest vhdup_util)
vhdup_fuzz_target(manifest vhdup_manifest vhdup_util)
