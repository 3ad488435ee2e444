#include <fstream>

#include "../support.hpp"

using namespace cachedattn;

namespace {
const model_geometry G{2, 4, 2, 8, dtype::f32, 4};

kv_entry make_entry(std::uint64_t s, std::size_t tokens) {
    kv_entry e;
    e.meta.session = session_id{s};
    e.meta.first_offset = 1;
    e.meta.rope_base = 3;
    for (std::size_t i = 0; i < tokens; ++i) e.meta.tokens.push_back(static_cast<token_id>(i * 7 + s));
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    for (std::size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<std::byte>((i * 31 + s) & 0xff);
    return e;
}

void flip_byte(const std::filesystem::path& p, std::size_t offset) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
}
}  // namespace

TEST_CASE("file_tier: round trip through each I/O engine, charged by exact file size") {
    std::vector<io::io_mode> modes{io::io_mode::thread_pool};
    if (io::io_uring_available()) modes.push_back(io::io_mode::io_uring);
    for (auto mode : modes) {
        test::temp_dir dir("file-rt");
        tier::file_tier t({dir.path(), 1 << 20, mode}, {G, 42});
        CAPTURE(t.io_backend());
        auto e = make_entry(9, 11);
        const auto copy = e;
        const std::size_t expect = io::kv_file_header_bytes + 11 * 4 + copy.meta.blocks(G) * G.block_bytes();
        CHECK(t.charge(copy.meta) == expect);
        t.put(std::move(e));
        CHECK(t.used_bytes() == expect);
        t.flush();
        CHECK(std::filesystem::file_size(t.path_of(session_id{9})) == expect);
        auto back = t.take(session_id{9});
        REQUIRE(back.has_value());
        CHECK(back->data == copy.data);
        CHECK(back->meta.tokens == copy.meta.tokens);
        CHECK(back->meta.first_offset == 1);
        CHECK(back->meta.rope_base == 3);
        CHECK(t.used_bytes() == 0);
        CHECK_FALSE(std::filesystem::exists(t.path_of(session_id{9})));
    }
}

TEST_CASE("file_tier: a corrupt, truncated, foreign or misplaced file is a miss, never data") {
    test::temp_dir dir("file-bad");
    tier::file_tier t({dir.path(), 1 << 20}, {G, 42});
    const session_id s{5};
    std::string expected_reason;

    SUBCASE("payload bit flip") {
        t.put(make_entry(5, 9));
        t.flush();
        flip_byte(t.path_of(s), io::kv_file_header_bytes + 100);
        expected_reason = "payload checksum";
    }
    SUBCASE("header bit flip") {
        t.put(make_entry(5, 9));
        t.flush();
        flip_byte(t.path_of(s), 20);
        expected_reason = "header checksum";
    }
    SUBCASE("truncated file") {
        t.put(make_entry(5, 9));
        t.flush();
        std::filesystem::resize_file(t.path_of(s), std::filesystem::file_size(t.path_of(s)) - 10);
        expected_reason = "size";
    }
    SUBCASE("file written for another model (stale fingerprint)") {
        test::temp_dir other_dir("file-other");
        tier::file_tier other({other_dir.path(), 1 << 20, io::io_mode::automatic, true}, {G, 43});
        other.put(make_entry(5, 9));
        other.flush();
        t.put(make_entry(5, 9));
        t.flush();
        std::filesystem::copy_file(other.path_of(s), t.path_of(s), std::filesystem::copy_options::overwrite_existing);
        expected_reason = "another model";
    }
    SUBCASE("another session's file under this session's name") {
        t.put(make_entry(5, 9));
        t.put(make_entry(6, 9));
        t.flush();
        std::filesystem::copy_file(t.path_of(session_id{6}), t.path_of(s), std::filesystem::copy_options::overwrite_existing);
        expected_reason = "another session";
    }
    SUBCASE("file deleted behind the tier's back") {
        t.put(make_entry(5, 9));
        t.flush();
        std::filesystem::remove(t.path_of(s));
        expected_reason = "open";
    }
    CHECK_FALSE(t.take(s).has_value());
    CHECK(t.damaged() == 1);
    CHECK(t.last_damage().find(expected_reason) != std::string::npos);
    CHECK_FALSE(t.contains(s));
}

TEST_CASE("file_tier: decode rejects every malformed header field") {
    auto e = make_entry(3, 5);
    auto bytes = io::encode_kv_file(e, G, 11);
    CHECK(io::decode_kv_file(bytes, G, 11, session_id{3}).status == io::decode_status::ok);
    CHECK(io::decode_kv_file(bytes, G, 12, session_id{3}).status == io::decode_status::foreign_fingerprint);
    CHECK(io::decode_kv_file(bytes, G, 11, session_id{4}).status == io::decode_status::wrong_session);
    auto other = G;
    other.block_tokens = 8;
    CHECK(io::decode_kv_file(bytes, other, 11, session_id{3}).status == io::decode_status::bad_layout);
    CHECK(io::decode_kv_file(std::span(bytes).first(40), G, 11, session_id{3}).status == io::decode_status::too_short);
    auto junk = bytes;
    junk[0] = std::byte{0};
    CHECK(io::decode_kv_file(junk, G, 11, session_id{3}).status == io::decode_status::bad_magic);
    CHECK(io::cache_fingerprint(G, 1, 1) != io::cache_fingerprint(G, 1, 2));  // posenc mode matters
    CHECK(io::cache_fingerprint(G, 1, 1) != io::cache_fingerprint(G, 2, 1));  // weights matter
}

TEST_CASE("file_tier: capacity is enforced and an unusable directory is a clear error") {
    test::temp_dir dir("file-cap");
    const auto e = make_entry(1, 9);
    const std::size_t one = io::kv_file_size(e.meta, G);
    tier::file_tier t({dir.path(), one + 10}, {G, 1});
    t.put(make_entry(1, 9));
    CHECK_THROWS_AS(t.put(make_entry(2, 9)), error);
    CHECK(t.used_bytes() == one);

    // A regular file where the directory should be: no privilege can write under it.
    const auto blocker = dir.path() / "not-a-dir";
    std::ofstream(blocker) << "x";
    CHECK_THROWS_WITH_AS(tier::file_tier({blocker / "cache", 1 << 20}, {G, 1}),
                         doctest::Contains("cannot create cache directory"), io_error);
    CHECK_THROWS_WITH_AS(tier::file_tier({dir.path(), 0}, {G, 1}), doctest::Contains("capacity_bytes must be > 0"),
                         config_error);
}

TEST_CASE("file_tier: a failed write (disk full) turns into a miss") {
    // /dev/full is a directory-less device, so emulate ENOSPC with a tmpfs when we are root.
    test::temp_dir dir("file-full");
    const auto mnt = dir.path() / "mnt";
    std::filesystem::create_directories(mnt);
    const std::string cmd = "mount -t tmpfs -o size=16k tmpfs " + mnt.string() + " 2>/dev/null";
    if (::geteuid() != 0 || std::system(cmd.c_str()) != 0) {
        MESSAGE("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    {
        tier::file_tier t({mnt, 1 << 20}, {G, 1});  // the tier believes it has 1 MiB
        t.put(make_entry(1, 200));                   // ~100 KiB: ENOSPC on the 16 KiB tmpfs
        CHECK_FALSE(t.take(session_id{1}).has_value());
        CHECK(t.damaged() == 1);
    }
    std::system(("umount " + mnt.string()).c_str());
}

TEST_CASE("file_tier: a file overwritten with other tokens of the same session is a miss") {
    test::temp_dir dir("file-overwrite");
    test::temp_dir other_dir("file-overwrite-other");
    tier::file_tier t({dir.path(), 1 << 20}, {G, 42});
    tier::file_tier other({other_dir.path(), 1 << 20, io::io_mode::automatic, true}, {G, 42});
    t.put(make_entry(5, 9));
    other.put(make_entry(5, 10));  // same model, same session, different history
    t.flush();
    other.flush();
    std::filesystem::copy_file(other.path_of(session_id{5}), t.path_of(session_id{5}),
                               std::filesystem::copy_options::overwrite_existing);
    CHECK_FALSE(t.take(session_id{5}).has_value());
    CHECK(t.last_damage().find("different tokens") != std::string::npos);
}

TEST_CASE("file_tier: two tiers cannot share a directory") {
    test::temp_dir dir("file-shared");
    tier::file_tier t({dir.path(), 1 << 20}, {G, 1});
    CHECK_THROWS_WITH_AS(tier::file_tier({dir.path(), 1 << 20}, {G, 1}), doctest::Contains("in use by another"),
                         io_error);
}

TEST_CASE("file_tier: opening after a crash removes a dead process's .tmp and .kv files and counts them") {
    test::temp_dir dir("file-recover");
    std::size_t left = 0;
    {
        tier::file_tier t({dir.path(), 1 << 20, io::io_mode::automatic, true}, {G, 42});  // keep_files: as a crash would
        t.put(make_entry(1, 9));
        t.put(make_entry(2, 30));
        t.flush();
        left = t.stored_bytes(session_id{1}) + t.stored_bytes(session_id{2});
    }
    std::ofstream(dir.path() / "session-0000000000000003.kv.tmp", std::ios::binary) << std::string(1000, 'x');
    std::ofstream(dir.path() / "unrelated.txt") << "not ours";
    tier::file_tier t({dir.path(), 1 << 20}, {G, 42});
    CHECK(t.stale_files_removed() == 3u);
    CHECK(t.stale_bytes_removed() == left + 1000);
    CHECK(t.used_bytes() == 0u);
    CHECK(t.sessions() == 0u);
    std::size_t ours = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir.path()))
        ours += f.path().filename().string().rfind("session-", 0) == 0;
    CHECK(ours == 0u);
    CHECK(std::filesystem::exists(dir.path() / "unrelated.txt"));  // only the tier's own names
}

TEST_CASE("file_tier: both I/O engines publish files with the same mode, and a failed removal is counted") {
    std::vector<io::io_mode> modes{io::io_mode::thread_pool};
    if (io::io_uring_available()) modes.push_back(io::io_mode::io_uring);
    for (auto mode : modes) {
        test::temp_dir dir("file-mode");
        tier::file_tier t({dir.path(), 1 << 20, mode}, {G, 42});
        CAPTURE(t.io_backend());
        t.put(make_entry(4, 9));
        t.flush();
        const auto perms = std::filesystem::status(t.path_of(session_id{4})).permissions();
        CHECK((perms & std::filesystem::perms::all) ==
              (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
               std::filesystem::perms::group_read | std::filesystem::perms::others_read));
    }
    // A directory that turns read-only after the tier opened. Root writes anywhere, and a
    // tmpfs with the tier's files open cannot be remounted read-only: as root this part skips.
    if (::geteuid() == 0) {
        MESSAGE("the read-only directory case skips as root");
        return;
    }
    test::temp_dir dir("file-ro");
    {
        tier::file_tier t({dir.path(), 1 << 20}, {G, 42});
        t.put(make_entry(6, 9));
        t.flush();
        std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_write, std::filesystem::perm_options::remove);
        const auto got = t.take(session_id{6});
        std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
        CHECK(got.has_value());  // the data is right
        CHECK(t.files_not_removed() == 1u);
        CHECK(t.used_bytes() == 0u);
    }
    tier::file_tier again({dir.path(), 1 << 20}, {G, 42});  // the next open deletes what was left
    CHECK(again.stale_files_removed() == 1u);
}

TEST_CASE("file_tier: a full disk at open says so") {
    test::temp_dir dir("file-full");
    const auto mnt = dir.path() / "mnt";
    std::filesystem::create_directories(mnt);
    const std::string cmd = "mount -t tmpfs -o size=4k tmpfs " + mnt.string() + " 2>/dev/null";
    if (::geteuid() != 0 || std::system(cmd.c_str()) != 0) {
        MESSAGE("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    std::system(("dd if=/dev/zero of=" + (mnt / "fill").string() + " bs=1k count=64 2>/dev/null").c_str());
    CHECK_THROWS_WITH_AS(tier::file_tier({mnt, 1 << 20}, {G, 1}), doctest::Contains("No space left"), io_error);
    std::system(("umount " + mnt.string()).c_str());
}

TEST_CASE("file I/O: a write whose final rename fails leaves no .tmp behind, on both engines") {
    std::vector<io::io_mode> modes{io::io_mode::thread_pool};
    if (io::io_uring_available()) modes.push_back(io::io_mode::io_uring);
    for (auto mode : modes) {
        test::temp_dir dir("rename-fails");
        const auto target = dir.path() / "session.kv";
        std::filesystem::create_directories(target / "occupied");  // rename(tmp, target) fails: a non-empty directory
        auto io = io::make_file_io(mode);
        CAPTURE(io->backend());
        const auto st = io->write_atomic(target, std::vector<std::byte>(100, std::byte{1})).get();
        CHECK_FALSE(st.ok);
        CHECK(st.error.find("rename") != std::string::npos);
        auto tmp = target;
        tmp += ".tmp";
        CHECK_FALSE(std::filesystem::exists(tmp));
    }
}
