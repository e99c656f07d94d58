# The pure Azure module: unit tests on strings, fuzz targets for the parsers
# of untrusted text (connection strings, service XML).
vhdup_unit_test(azure vhdup_azure vhdup_util)
vhdup_fuzz_target(connstr vhdup_azure vhdup_util)
vhdup_fuzz_target(azure_xml vhdup_azure vhdup_util)
