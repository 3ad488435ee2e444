set datafile separator ','
set terminal pngcairo size 900,560 noenhanced
set key outside
set grid y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xlabel 'model (paper setup)'
set yrange [0:*]
set output 'docs/sim-calibrated/hit_by_tiers.png'
set ylabel 'hit rate'
plot 'docs/sim-calibrated/models.csv' using 2:xtic(1) title 'HBM only', '' using 3 title 'HBM+DRAM', '' using 4 title 'HBM+DRAM+SSD'
set output 'docs/sim-calibrated/ttft_vs_re.png'
set ylabel 'mean TTFT (s)'
plot 'docs/sim-calibrated/models.csv' using 5:xtic(1) title 'recompute (RE)', '' using 6 title 'cachedattn'
set output 'docs/sim-calibrated/prefill_throughput.png'
set ylabel 'prefill throughput (prompt tokens/s)'
plot 'docs/sim-calibrated/models.csv' using 7:xtic(1) title 'recompute (RE)', '' using 8 title 'cachedattn'
set output 'docs/sim-calibrated/gpu_hours.png'
set ylabel 'GPU hours'
plot 'docs/sim-calibrated/models.csv' using 9:xtic(1) title 'recompute (RE)', '' using 10 title 'cachedattn'
set output 'docs/sim-calibrated/cost.png'
set ylabel 'dollars (GPU + DRAM + SSD, paper prices)'
plot 'docs/sim-calibrated/models.csv' using 11:xtic(1) title 'recompute (RE)', '' using 12 title 'cachedattn'
set style data lines
unset xlabel
set grid
set datafile separator ','
set terminal pngcairo size 900,560 noenhanced
set key outside
set grid
set ylabel 'hit rate'
set yrange [0:1]
set output 'docs/sim-calibrated/hit_vs_dram.png'
set xlabel 'DRAM (GB), LLaMA-2-13B'
set logscale x
plot 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'cachedattn' ? $5 : 1/0):10 with linespoints title 'cachedattn', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'lru' ? $5 : 1/0):10 with linespoints title 'lru', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'fifo' ? $5 : 1/0):10 with linespoints title 'fifo', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'arc' ? $5 : 1/0):10 with linespoints title 'arc', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'gdsf' ? $5 : 1/0):10 with linespoints title 'gdsf', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'belady' ? $5 : 1/0):10 with linespoints title 'belady', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'belady_size' ? $5 : 1/0):10 with linespoints title 'belady_size'
set output 'docs/sim-calibrated/hit_vs_ssd.png'
set xlabel 'SSD (TB), LLaMA-2-13B'
plot 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'cachedattn' ? $6 : 1/0):10 with linespoints title 'cachedattn', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'lru' ? $6 : 1/0):10 with linespoints title 'lru', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'fifo' ? $6 : 1/0):10 with linespoints title 'fifo', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'arc' ? $6 : 1/0):10 with linespoints title 'arc', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'gdsf' ? $6 : 1/0):10 with linespoints title 'gdsf', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'belady' ? $6 : 1/0):10 with linespoints title 'belady', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'belady_size' ? $6 : 1/0):10 with linespoints title 'belady_size'
unset logscale x
set yrange [0:*]
set ylabel 'mean TTFT (s)'
set output 'docs/sim-calibrated/buffer_sweep.png'
set xlabel 'pre-load buffer (layers), LLaMA-2-13B'
plot 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'buffer' && $8 >= 0 && $24 == 0 ? $8 : 1/0):14 with linespoints title 'cachedattn, fixed buffer'
set output 'docs/sim-calibrated/rate_sweep.png'
set xlabel 'session arrivals per second, LLaMA-2-13B'
plot 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'rate' && strcol(3) eq 'cachedattn' ? $7 : 1/0):14 with linespoints title 'cachedattn', 'docs/sim-calibrated/runs.csv' using (strcol(1) eq 'rate' && strcol(3) eq 'recompute' ? $7 : 1/0):14 with linespoints title 'recompute (RE)'
