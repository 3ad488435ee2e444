#pragma once
// What the examples share at their command line: number checks that reject NaN, infinities and
// values a later cast or allocation cannot take (CLI::Range lets NaN through, and a count of
// 1e300 cast to an integer is undefined behaviour), and one error line for anything thrown.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace examples {

/// A finite number in [lo, hi].
inline CLI::Validator finite_in(double lo, double hi) {
    return CLI::Validator(
        [lo, hi](std::string& s) -> std::string {
            char* end = nullptr;
            errno = 0;
            const double v = std::strtod(s.c_str(), &end);
            if (end == s.c_str() || *end != '\0') return "'" + s + "' is not a number";
            if (!std::isfinite(v) || errno == ERANGE) return "'" + s + "' is not a finite number";
            if (v < lo || v > hi) return "'" + s + "' is outside [" + CLI::detail::to_string(lo) + ", " +
                                         CLI::detail::to_string(hi) + "]";
            return {};
        },
        "in [" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]", "finite_in");
}

/// A finite number that is 0 (off) or in [lo, hi].
inline CLI::Validator zero_or_in(double lo, double hi) {
    const CLI::Validator range = finite_in(lo, hi);
    return CLI::Validator(
        [range](std::string& s) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            if (end != s.c_str() && *end == '\0' && v == 0) return {};
            std::string copy = s;
            return range(copy);
        },
        "0 or in [" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]", "zero_or_in");
}

/// A whole number in [lo, hi] (no sign tricks: "-1" is not 2^64 - 1).
inline CLI::Validator count_in(unsigned long long lo, unsigned long long hi) {
    return CLI::Validator(
        [lo, hi](std::string& s) -> std::string {
            if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
                return "'" + s + "' is not a whole number";
            errno = 0;
            const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
            if (errno == ERANGE || v < lo || v > hi)
                return "'" + s + "' is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
            return {};
        },
        "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", "count_in");
}

}  // namespace examples
