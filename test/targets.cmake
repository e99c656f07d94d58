# Which tests exist and which modules each links. Each area keeps its own
# file under test/cmake/ so they can grow independently.
vhdup_unit_test(util vhdup_util)
file(GLOB VHDUP_TEST_PARTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cmake/*.cmake)
list(SORT VHDUP_TEST_PARTS)
foreach(part ${VHDUP_TEST_PARTS})
  include(${part})
endforeach()
