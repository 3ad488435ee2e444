// Storage faults through the whole engine: the file tier's writes fail with ENOSPC and its
// reads with EIO at chosen rates. Every turn is still served, from recomputation where the
// stored copy was lost, its logits equal recomputing the history, and every lost copy is counted.
#include "../support.hpp"

using namespace cachedattn;

namespace {

/// Wraps the real I/O engine and fails every `write_every`-th write (ENOSPC, before touching
/// the disk) and every `read_every`-th read (EIO, after reading), as a full or failing SSD would.
class faulty_io final : public io::file_io {
public:
    faulty_io(std::size_t write_every, std::size_t read_every, std::shared_ptr<std::size_t> faults)
        : real_(io::make_file_io()), write_every_(write_every), read_every_(read_every), faults_(std::move(faults)) {}
    std::string_view backend() const noexcept override { return "faulty"; }
    std::future<io::io_status> write_atomic(std::filesystem::path path, std::vector<std::byte> data) override {
        if (write_every_ && ++writes_ % write_every_ == 0) {
            ++*faults_;
            std::promise<io::io_status> p;
            p.set_value({false, "write " + path.string() + ": No space left on device (injected)"});
            return p.get_future();
        }
        return real_->write_atomic(std::move(path), std::move(data));
    }
    std::future<io::read_result> read_all(std::filesystem::path path) override {
        auto r = real_->read_all(std::move(path)).get();
        if (read_every_ && ++reads_ % read_every_ == 0) {
            ++*faults_;
            r.status = {false, "read: Input/output error (injected)"};
            r.data.clear();
        }
        std::promise<io::read_result> p;
        p.set_value(std::move(r));
        return p.get_future();
    }

private:
    std::unique_ptr<io::file_io> real_;
    std::size_t write_every_, read_every_, writes_ = 0, reads_ = 0;
    std::shared_ptr<std::size_t> faults_;
};

struct outcome {
    std::size_t turns = 0, ssd_hits = 0, misses_after_first = 0, faults = 0, damaged = 0;
};

outcome run(std::size_t write_every, std::size_t read_every) {
    using H = test::stack3<eviction::lru>;
    backend::cpu_backend b(model::model_config::tiny(), 21);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("faults");
    auto cfg = test::capacities<H>(200 * pt, 200 * pt, 4000 * pt, dir.path());
    auto faults = std::make_shared<std::size_t>(0);
    std::get<2>(cfg.tiers).make_io = [=] { return std::make_unique<faulty_io>(write_every, read_every, faults); };
    H h(cfg, b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(3);
    outcome o;
    std::map<std::uint64_t, int> turns_of;
    // 60 turns; 30 in the sanitizer presets (the longest test under TSan at 60: 75 s).
    const int turns = test::quick() ? 30 : 60;
    for (int i = 0; i < turns; ++i) {
        const session_id s{1 + rng() % 6};
        const auto input = test::random_tokens(rng, 6 + rng() % 10, b.vocab());
        auto full = eng.history(s);
        full.insert(full.end(), input.begin(), input.end());
        if (full.size() + 4 > 120) {  // keep sessions short: the device holds one with room to spare
            eng.end_session(s);
            turns_of.erase(s.value);
            continue;
        }
        const auto r = eng.run_turn(s, input, 4);  // never throws: a lost copy is a miss
        ++o.turns;
        CHECK(test::rel_error(r.first_logits, test::reference_logits(b, full)) < 1e-4);
        if (r.metrics.hit_tier == 2u) ++o.ssd_hits;
        if (turns_of[s.value]++ > 0 && !r.metrics.hit_tier) ++o.misses_after_first;
        h.check_invariants();
    }
    eng.synchronize();
    o.faults = *faults;
    o.damaged = h.stats().damaged;
    return o;
}

}  // namespace

TEST_CASE("fault injection: ENOSPC on writes and EIO on reads of the SSD tier, every turn served and counted") {
    const auto clean = run(0, 0);
    const auto faulty = run(3, 4);
    MESSAGE("clean: " << clean.ssd_hits << " SSD hits, " << clean.misses_after_first << " later-turn misses; faulty: "
                      << faulty.ssd_hits << " SSD hits, " << faulty.misses_after_first << " later-turn misses, "
                      << faulty.faults << " faults injected, " << faulty.damaged << " copies lost");
    CHECK(clean.turns == faulty.turns);
    CHECK(clean.faults == 0u);
    CHECK(clean.damaged == 0u);
    REQUIRE(clean.ssd_hits >= (test::quick() ? 3u : 5u));  // 3 of 30 turns, 7 of 60 (fixed seed)
    CHECK(faulty.faults > 0u);
    // Each injected fault loses the copy it touched: counted as damaged, and its turn recomputes.
    CHECK(faulty.damaged > 0u);
    CHECK(faulty.damaged <= faulty.faults);
    CHECK(faulty.ssd_hits < clean.ssd_hits);
    CHECK(faulty.misses_after_first > clean.misses_after_first);
}
