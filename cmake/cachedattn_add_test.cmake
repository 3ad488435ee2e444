# cachedattn_compile_fail_test(NAME name SOURCE file.cpp EXPECT regex)
# A test that passes when `file.cpp` fails to compile with a diagnostic matching `regex`
# (a non-model of a concept must be rejected with a readable message).
function(cachedattn_compile_fail_test)
  cmake_parse_arguments(ARG "" "NAME;SOURCE;EXPECT" "" ${ARGN})
  add_executable(${ARG_NAME} EXCLUDE_FROM_ALL ${ARG_SOURCE})
  target_link_libraries(${ARG_NAME} PRIVATE cachedattn::cachedattn)
  add_test(NAME build.${ARG_NAME}
           COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${ARG_NAME})
  set_tests_properties(build.${ARG_NAME} PROPERTIES PASS_REGULAR_EXPRESSION "${ARG_EXPECT}")
endfunction()
