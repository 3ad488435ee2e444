#pragma once
/// @file
/// @brief The simulated GPU as a serving engine uses it: continuous batching with prefill
/// priority. Up to `slots` jobs are on the GPU at once. A job's prefill runs alone (the GPU is
/// the job's; prefills queue FCFS behind each other), then the job joins the decode batch at the
/// next step boundary; each decode step advances every sequence in the batch by one token and
/// takes the cost model's time for the batch's size and total context; the batch stands still
/// while a prefill runs. A job leaves the batch after its last step (a completion).
///
/// Time advances in events, not tokens: between two events (a join, a finish, a prefill
/// starting) the batch is fixed and a run of steps is summed in closed form
/// (`cost_model::batch_steps_s`), so a simulated job costs O(log steps), whatever its length.
#include <cstdint>
#include <deque>
#include <limits>
#include <queue>
#include <vector>

#include "cachedattn/core/session.hpp"
#include "cachedattn/sim/cost_model.hpp"

namespace cachedattn::sim {

/// A job that finished: when its first token came (its prefill ended), when its last decode
/// step ended, and when it was done (after any synchronous save behind the last step).
struct completion {
    session_id session{};
    double first_token_s = 0;
    double decode_end_s = 0;
    double finished_s = 0;
};

class gpu_server {
public:
    static constexpr double never = std::numeric_limits<double>::infinity();

    gpu_server(const cost_model& c, int slots) : cost_(&c), slots_(slots) {}

    /// Jobs on the GPU (in prefill, waiting to join, or decoding).
    std::size_t jobs() const noexcept { return jobs_; }
    bool has_free_slot() const noexcept { return jobs_ < static_cast<std::size_t>(slots_); }
    /// When the last prefill queued so far ends: a new prefill starts no earlier.
    double prefill_free() const noexcept { return prefill_free_; }
    /// GPU-busy seconds: prefills (alone on the GPU) plus decode steps.
    double busy_s() const noexcept { return busy_; }
    /// The part of busy_s() spent in prefills (the rest is decode steps).
    double prefill_busy_s() const noexcept { return prefill_busy_; }
    /// How far the server has been run.
    double time() const noexcept { return w_; }

    /// Queues a prefill occupying the GPU over [start, end] (start >= time(), >= prefill_free()).
    /// The decode batch stands still meanwhile.
    void add_prefill(double start, double end) {
        pauses_.push_back({start, end});
        prefill_free_ = end;
        busy_ += end - start;
        prefill_busy_ += end - start;
    }
    /// A job whose prefill ends at `first_token` (no earlier than the last prefill queued):
    /// it has `context` tokens, then decodes `steps` tokens; done `tail_s` after its last step.
    void add_job(session_id s, double first_token, std::int64_t context, std::int64_t steps, double tail_s) {
        joins_.push_back({s, first_token, context + 1, steps, tail_s});
        ++jobs_;
    }

    /// Runs the GPU forward to `limit`, or to the first instant at which a job completes when
    /// `stop_at_completion` (then time() is that instant). Completions go to `out`.
    /// Returns whether it stopped at a completion.
    bool run(double limit, bool stop_at_completion, std::vector<completion>& out) {
        for (;;) {
            while (!pauses_.empty() && pauses_.front().end <= w_) pauses_.pop_front();
            bool completed = false;
            // Due joins: a job of no decode steps is done at once; others enter at a step boundary.
            while (!joins_.empty() && joins_.front().at <= w_) {
                const join j = joins_.front();
                if (j.steps == 0) {
                    finish(j.session, j.at, j.at, j.tail, out);
                } else if (b_ == 0 || partial_ == 0) {
                    running_.push({g_ + j.steps, j.context, j.steps, j.at, j.tail, j.session});
                    ++b_;
                    s_ += j.context;
                } else {
                    break;
                }
                completed |= j.steps == 0;
                joins_.pop_front();
            }
            if (completed && stop_at_completion) return true;
            if (!pauses_.empty() && pauses_.front().start <= w_) {  // a prefill holds the GPU
                if (pauses_.front().end > limit) return idle_until(limit);
                w_ = pauses_.front().end;
                continue;
            }
            const double pause = pauses_.empty() ? never : pauses_.front().start;
            if (b_ == 0) {
                const double next = std::min(pause, joins_.empty() ? never : joins_.front().at);
                if (next > limit || next == never) return idle_until(limit);
                w_ = next;
                continue;
            }
            // Steps to the next event at a boundary: a finish, or one step if a join is waiting.
            const bool join_waiting = !joins_.empty() && joins_.front().at <= w_;
            const std::int64_t k = join_waiting ? 1 : running_.top().finish_step - g_;
            const double dt = cost_->batch_steps_s(b_, s_, k) - partial_;
            const double stop = std::min(limit, pause);
            if (w_ + dt <= stop) {
                w_ += dt;
                busy_ += dt;
                g_ += k;
                s_ += b_ * k;
                partial_ = 0;
                while (!running_.empty() && running_.top().finish_step == g_) {
                    const member m = running_.top();
                    running_.pop();
                    --b_;
                    s_ -= m.context + m.steps;
                    finish(m.session, m.first_token, w_, m.tail, out);
                    completed = true;
                }
                if (completed && stop_at_completion) return true;
                continue;
            }
            // Part of the way: whole steps that fit before `stop`, and time into the next one.
            const double budget = stop - w_ + partial_;
            std::int64_t lo = 0, hi = k - 1;  // the largest n in [0, k) with steps(n) <= budget
            while (lo < hi) {
                const std::int64_t mid = lo + (hi - lo + 1) / 2;
                if (cost_->batch_steps_s(b_, s_, mid) <= budget) lo = mid;
                else hi = mid - 1;
            }
            partial_ = std::max(0.0, budget - cost_->batch_steps_s(b_, s_, lo));
            g_ += lo;
            s_ += b_ * lo;
            busy_ += stop - w_;
            w_ = stop;
            if (stop >= limit) return false;
        }
    }

private:
    struct join {
        session_id session;
        double at;
        std::int64_t context;  ///< tokens its first decode step attends to
        std::int64_t steps;
        double tail;
    };
    struct member {
        std::int64_t finish_step;  ///< the batch's step count when it leaves
        std::int64_t context, steps;
        double first_token, tail;
        session_id session;
        bool operator>(const member& o) const { return finish_step > o.finish_step; }
    };
    struct interval {
        double start, end;
    };

    bool idle_until(double limit) {
        if (limit != never) w_ = std::max(w_, limit);
        return false;
    }
    void finish(session_id s, double first_token, double decode_end, double tail, std::vector<completion>& out) {
        out.push_back({s, first_token, decode_end, decode_end + tail});
        --jobs_;
    }

    const cost_model* cost_;
    int slots_;
    std::size_t jobs_ = 0;
    double w_ = 0;              ///< the server's own time: everything before it has happened
    double prefill_free_ = 0;
    double busy_ = 0;
    double prefill_busy_ = 0;
    std::deque<interval> pauses_;  ///< prefills queued, in time order (they do not overlap)
    std::deque<join> joins_;       ///< jobs whose prefill is queued or running, in time order
    std::priority_queue<member, std::vector<member>, std::greater<>> running_;
    std::int64_t b_ = 0;   ///< sequences in the batch
    std::int64_t s_ = 0;   ///< their total context in the next step
    std::int64_t g_ = 0;   ///< steps the batch has taken
    double partial_ = 0;   ///< seconds already spent in the step under way
};

}  // namespace cachedattn::sim
