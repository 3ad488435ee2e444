#pragma once
/// @file
/// @brief What the simulator knows about a server: one GPU's peak rates and the efficiency a
/// serving engine reaches on them, the host link, the SSD, prices, and how many GPUs share the
/// model (tensor parallelism: compute and per-GPU bytes split evenly, plus two all-reduces of
/// the activations per layer over the GPUs' interconnect).
#include <filesystem>
#include <string>

namespace cachedattn::sim {

struct gpu_profile {
    std::string name;
    double peak_flops = 0;          ///< dense FP16/BF16 tensor-core FLOP/s of one GPU
    double hbm_bytes_per_s = 0;     ///< HBM bandwidth of one GPU
    double hbm_bytes = 0;           ///< HBM capacity of one GPU
    double compute_efficiency = 0;  ///< share of peak_flops a serving engine's GEMMs reach
    double memory_efficiency = 0;   ///< share of hbm_bytes_per_s reached when streaming
    double link_bytes_per_s = 0;    ///< effective host<->device bandwidth per GPU (each direction)
    double ssd_read_bytes_per_s = 0;   ///< one SSD's sequential read rate
    double ssd_write_bytes_per_s = 0;  ///< one SSD's sustained write rate
    int ssds = 1;                   ///< SSDs striped together: reads and writes share their rates
    /// All-reduce bus bandwidth per GPU (NCCL's "busbw") and the fixed cost of one all-reduce,
    /// for tensor parallelism: PCIe peer-to-peer on the paper's server, NVLink on SXM boards.
    double allreduce_bytes_per_s = 0;
    double allreduce_latency_s = 0;
    int gpus = 1;                   ///< tensor-parallel degree
    double gpu_dollars_per_hour = 0;         ///< per GPU
    double dram_dollars_per_gb_hour = 0;
    double ssd_dollars_per_gb_hour = 0;

    /// a100_paper_calibrated's compute efficiency (see there; docs/sim/tables.md shows the fit).
    static constexpr double calibrated_compute_efficiency = 0.099;

    /// Throws config_error naming the first impossible field.
    void validate() const;

    /// The paper's server (§ setup): A100 80 GB (312 TFLOP/s FP16, 2.04 TB/s), PCIe Gen4 at about
    /// 26 GB/s effective, NVMe SSDs; AWS prices from the paper ($5/h per A100, DRAM
    /// $0.0088/GB/h, SSD $0.000082/GB/h). `gpus` as the paper uses per model (2 for 13B, 4 else).
    static gpu_profile a100_pcie4(int gpus);
    /// An H100 SXM (989 TFLOP/s dense BF16, 3.35 TB/s) on PCIe Gen5 (about 50 GB/s effective),
    /// Gen5 NVMe; GPU price an assumption ($8/h), host prices as the paper's.
    static gpu_profile h100_sxm_pcie5(int gpus);
    /// The A100 profile with its achieved compute rate calibrated so that recomputing the
    /// history (RE) on LLaMA-2-13B at the paper's setup has the mean TTFT the paper's numbers
    /// imply (about 0.87 s: its cached TTFT over 1 - its 85% reduction). A calibration to the
    /// paper, not a roofline: it stands in for whatever made the paper's prefills that slow.
    static gpu_profile a100_paper_calibrated(int gpus);
    /// A named built-in profile ("a100", "h100", "a100-calibrated") with `gpus` GPUs.
    static gpu_profile builtin(const std::string& name, int gpus);
    /// Loads a profile from a JSON object with the fields above (all numbers; "name" a string).
    /// Fields left out keep `base`'s values, so a file can adjust one number of a built-in.
    /// Errors name the file and the field.
    static gpu_profile load(const std::filesystem::path& file, const gpu_profile& base);
};

}  // namespace cachedattn::sim
