# CACHEDATTN_ENABLE_CUDA = AUTO | ON | OFF. The CPU build never needs CUDA.
# AUTO enables CUDA when /usr/local/cuda/bin/nvcc (or CMAKE_CUDA_COMPILER) exists; ON fails
# without it. CMake is pointed at nvcc explicitly: PATH is not relied on.
set(CACHEDATTN_HAS_CUDA OFF)
string(TOUPPER "${CACHEDATTN_ENABLE_CUDA}" _cachedattn_cuda_mode)
if(NOT _cachedattn_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "cachedattn: CACHEDATTN_ENABLE_CUDA must be AUTO, ON or OFF, got '${CACHEDATTN_ENABLE_CUDA}'")
endif()
if(NOT _cachedattn_cuda_mode STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
  if(CMAKE_CUDA_COMPILER AND EXISTS "${CMAKE_CUDA_COMPILER}")
    set(CACHEDATTN_HAS_CUDA ON)
  elseif(_cachedattn_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "cachedattn: CACHEDATTN_ENABLE_CUDA=ON but no nvcc: set CMAKE_CUDA_COMPILER "
                        "(e.g. /usr/local/cuda/bin/nvcc) or use AUTO/OFF")
  endif()
endif()
if(CACHEDATTN_HAS_CUDA AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/kernels/CMakeLists.txt)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)  # never "native": build machines have no GPU
  endif()
  enable_language(CUDA)
  # CMake 3.25 knows nvcc's flags up to C++17; nvcc 12+ takes -std=c++20.
  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  add_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/kernels ${CMAKE_CURRENT_BINARY_DIR}/kernels)
  message(STATUS "cachedattn: CUDA backend ON (${CMAKE_CUDA_COMPILER})")
elseif(CACHEDATTN_HAS_CUDA)
  message(STATUS "cachedattn: nvcc found at ${CMAKE_CUDA_COMPILER}; this revision has no kernels/ yet, "
                 "so the CUDA backend is not built")
else()
  message(STATUS "cachedattn: CUDA backend OFF")
endif()
