// Crash safety of the file tier: a writer process is SIGKILLed at random moments, over and over.
// After each kill every published session file is whole and right (atomic publishing: never a
// torn or mixed file), and a tier opened on the directory removes everything the dead process
// left, so no stale file survives recovery.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cachedattn/io/kv_file_format.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "../support.hpp"
#include "../tools/crash_content.hpp"

extern char** environ;

using namespace cachedattn;

#ifndef CACHEDATTN_CRASH_WRITER
#error "CACHEDATTN_CRASH_WRITER must name the crash_writer executable"
#endif

TEST_CASE("crash: a file_tier writer SIGKILLed at random moments never leaves a wrong file, and recovery leaves none") {
    test::temp_dir dir("crash");
    std::mt19937_64 rng(99);
    const int cycles = test::quick() ? 8 : 25;
    std::size_t checked = 0, torn_tmp = 0, wrong = 0;
    for (int cycle = 0; cycle < cycles; ++cycle) {
        pid_t pid = 0;
        const std::string writer = CACHEDATTN_CRASH_WRITER, d = dir.path().string();
        char* argv[] = {const_cast<char*>(writer.c_str()), const_cast<char*>(d.c_str()), nullptr};
        REQUIRE(::posix_spawn(&pid, writer.c_str(), nullptr, nullptr, argv, environ) == 0);
        // Let it open the tier and write for a random while, then kill it mid-whatever.
        std::this_thread::sleep_for(std::chrono::milliseconds(40 + rng() % 200));
        REQUIRE(::kill(pid, SIGKILL) == 0);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
        // Every published file is a whole, right version of its session.
        for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
            const std::string name = f.path().filename().string();
            if (name.rfind("session-", 0) != 0) continue;
            if (f.path().extension() == ".tmp") {
                ++torn_tmp;
                continue;
            }
            std::ifstream in(f.path(), std::ios::binary);
            const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            const std::uint64_t s = std::stoull(name.substr(8, 16), nullptr, 16);
            const auto r = io::decode_kv_file(std::span(reinterpret_cast<const std::byte*>(raw.data()), raw.size()), crash::G,
                                              crash::fingerprint, session_id{s});
            ++checked;
            if (r.status != io::decode_status::ok) {
                ++wrong;
                continue;
            }
            const auto n = static_cast<std::uint64_t>(r.entry->meta.tokens.size() - 1);
            const auto expect = crash::entry(s, n);
            if (!(r.entry->meta.tokens == expect.meta.tokens && r.entry->data == expect.data)) ++wrong;
        }
        // Recovery: a tier opening the directory (the dead writer's lock is gone) removes it all.
        tier::file_tier t({dir.path(), std::size_t{1} << 30}, {crash::G, crash::fingerprint});
        std::size_t left = 0;
        for (const auto& f : std::filesystem::directory_iterator(dir.path()))
            left += f.path().filename().string().rfind("session-", 0) == 0;
        CHECK(left == 0u);
        CHECK(t.used_bytes() == 0u);
    }
    MESSAGE(cycles << " kills: " << checked << " published files checked, " << wrong << " wrong, " << torn_tmp
                   << " unfinished .tmp files removed on recovery");
    CHECK(checked > 0u);
    CHECK(wrong == 0u);
}
