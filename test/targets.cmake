# Which tests exist and which modules each links. Included by CMakeLists.txt.
vhdup_unit_test(util vhdup_util)
