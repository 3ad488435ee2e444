# Fails when a doctest case name cannot be run by ctest: doctest_discover_tests passes each name
# to `-tc=` through a CMake list, so a ';' splits it and the case silently runs nothing (17 cases
# did, one of them failing). Usage: cmake -DEXE=<test binary> -P check_test_names.cmake
execute_process(COMMAND "${EXE}" --list-test-cases --no-version=true OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} --list-test-cases failed (${rc})")
endif()
string(FIND "${out}" ";" at)
if(NOT at EQUAL -1)
  string(SUBSTRING "${out}" ${at} 120 near)
  message(FATAL_ERROR "a test case name contains ';' (ctest would run nothing for it): ...${near}")
endif()
string(REGEX MATCHALL "\n" lines "${out}")
list(LENGTH lines n)
message(STATUS "every test case name is discoverable (${n} lines listed)")
