# Finds what the build needs, with a message that says which Debian package to install.
# Everything comes from Debian packages (scripts/install-deps.sh); nothing is downloaded.
find_package(Threads REQUIRED)

find_package(fmt CONFIG QUIET)
if(NOT fmt_FOUND)
  message(FATAL_ERROR "cachedattn: fmt not found; run scripts/install-deps.sh (Debian: libfmt-dev)")
endif()

find_package(Boost 1.81 CONFIG QUIET)
if(NOT Boost_FOUND)
  message(FATAL_ERROR "cachedattn: Boost >= 1.81 not found (Asio file I/O); run scripts/install-deps.sh "
                      "(Debian: libboost1.81-dev)")
endif()

find_path(CACHEDATTN_URING_INCLUDE liburing.h)
find_library(CACHEDATTN_URING_LIB uring)
if(NOT CACHEDATTN_URING_INCLUDE OR NOT CACHEDATTN_URING_LIB)
  message(FATAL_ERROR "cachedattn: liburing not found; run scripts/install-deps.sh (Debian: liburing-dev)")
endif()

find_path(CACHEDATTN_XXHASH_INCLUDE xxhash.h)
find_library(CACHEDATTN_XXHASH_LIB xxhash)
if(NOT CACHEDATTN_XXHASH_INCLUDE OR NOT CACHEDATTN_XXHASH_LIB)
  message(FATAL_ERROR "cachedattn: xxHash not found; run scripts/install-deps.sh (Debian: libxxhash-dev)")
endif()

set(CACHEDATTN_USE_OPENMP OFF)
if(CACHEDATTN_OPENMP)
  find_package(OpenMP COMPONENTS CXX)
  if(OpenMP_CXX_FOUND)
    set(CACHEDATTN_USE_OPENMP ON)
  else()
    message(STATUS "cachedattn: OpenMP not found; the CPU reference runs on one core")
  endif()
endif()

find_package(nlohmann_json 3.10 CONFIG QUIET)
if(NOT nlohmann_json_FOUND)
  message(FATAL_ERROR "cachedattn: nlohmann-json not found (trace readers, profiles); run scripts/install-deps.sh "
                      "(Debian: nlohmann-json3-dev)")
endif()

# hiredis for tier::redis_tier (cachedattn::redis). On by default when pkg-config finds it;
# asked for and missing is an error, so a build never silently lacks the tier it was told to have.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(CACHEDATTN_HIREDIS QUIET hiredis)
endif()
option(CACHEDATTN_WITH_REDIS "Build the Redis tier (cachedattn::redis, needs hiredis)" ${CACHEDATTN_HIREDIS_FOUND})
if(CACHEDATTN_WITH_REDIS)
  find_library(CACHEDATTN_HIREDIS_LIB hiredis HINTS ${CACHEDATTN_HIREDIS_LIBRARY_DIRS})
  if(NOT CACHEDATTN_HIREDIS_FOUND OR NOT CACHEDATTN_HIREDIS_LIB)
    message(FATAL_ERROR "cachedattn: CACHEDATTN_WITH_REDIS is ON but hiredis was not found (pkg-config hiredis); "
                        "run scripts/install-deps.sh (Debian: libhiredis-dev) or configure with -DCACHEDATTN_WITH_REDIS=OFF")
  endif()
endif()
