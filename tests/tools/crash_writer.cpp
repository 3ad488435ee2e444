// A process that writes sessions to a file_tier until it is killed: the crash test's victim.
// Usage: crash_writer <dir>. Session s's n-th version holds n + 1 tokens whose ids and payload
// follow from (s, n), so a reader can tell a right file from a wrong or torn one.
#include <cachedattn/tier/file_tier.hpp>
#include <cstdio>

#include "crash_content.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: crash_writer <dir>\n");
        return 2;
    }
    using namespace cachedattn;
    tier::file_tier t({argv[1], std::size_t{1} << 30, io::io_mode::automatic, true}, {crash::G, crash::fingerprint});
    std::printf("ready\n");
    std::fflush(stdout);
    for (std::uint64_t n = 0;; ++n)
        for (std::uint64_t s = 1; s <= crash::sessions; ++s) {
            if (t.contains(session_id{s})) t.erase(session_id{s});
            t.put(crash::entry(s, n % 40));
        }
}
