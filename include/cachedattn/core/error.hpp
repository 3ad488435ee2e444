#pragma once
/// @file
/// @brief The library's exception types: every rejected input or configuration throws one of
/// these with a message that names the offending value and how to fix it.
#include <stdexcept>
#include <string>

namespace cachedattn {

/// @brief Base class of every exception the library throws on purpose.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// @brief An impossible configuration: zero capacities, bad model geometry, a tier too small
/// for one session.
class config_error : public error {
public:
    using error::error;
};

/// @brief Bad run-time input: token ids outside the vocabulary, a turn longer than the context.
class input_error : public error {
public:
    using error::error;
};

/// @brief The file system refused something the library cannot work without (e.g. an
/// unwritable cache directory). Damaged cache files are not errors: they are misses.
class io_error : public error {
public:
    using error::error;
};

}  // namespace cachedattn
