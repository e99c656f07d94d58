vhdup_unit_test(vhd vhdup_vhd vhdup_util)
vhdup_fuzz_target(vhd vhdup_vhd vhdup_util)
vhdup_unit_test(vhdx vhdup_vhd vhdup_util)
vhdup_fuzz_target(vhdx vhdup_vhd vhdup_util)
