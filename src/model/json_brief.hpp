#pragma once
// A JSON value as an error message may quote it: scalars and short flat arrays as written,
// anything else by its type. dump() of attacker-nested JSON recurses once per level: a crafted
// header 100K arrays deep would overflow the stack while building the message.
#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

namespace cachedattn::model::detail {

template <class Json>
std::string brief(const Json& v) {
    if (v.is_primitive()) return v.dump();
    if (v.is_array() && v.size() <= 16 && std::all_of(v.begin(), v.end(), [](const Json& x) { return x.is_primitive(); }))
        return v.dump();
    return std::string("a JSON ") + v.type_name();
}

}  // namespace cachedattn::model::detail
