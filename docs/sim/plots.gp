set datafile separator ','
set terminal pngcairo size 900,560 noenhanced
set key outside
set grid
set ylabel 'hit rate'
set yrange [0:1]
set output 'docs/sim/hit_vs_dram.png'
set xlabel 'DRAM (GB), LLaMA-2-13B'
set logscale x
plot 'docs/sim/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'cachedattn' ? $5 : 1/0):10 with linespoints title 'cachedattn', 'docs/sim/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'lru' ? $5 : 1/0):10 with linespoints title 'lru', 'docs/sim/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'fifo' ? $5 : 1/0):10 with linespoints title 'fifo', 'docs/sim/runs.csv' using (strcol(1) eq 'dram' && strcol(3) eq 'arc' ? $5 : 1/0):10 with linespoints title 'arc'
set output 'docs/sim/hit_vs_ssd.png'
set xlabel 'SSD (TB), LLaMA-2-13B'
plot 'docs/sim/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'cachedattn' ? $6 : 1/0):10 with linespoints title 'cachedattn', 'docs/sim/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'lru' ? $6 : 1/0):10 with linespoints title 'lru', 'docs/sim/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'fifo' ? $6 : 1/0):10 with linespoints title 'fifo', 'docs/sim/runs.csv' using (strcol(1) eq 'ssd' && strcol(3) eq 'arc' ? $6 : 1/0):10 with linespoints title 'arc'
unset logscale x
set yrange [0:*]
set ylabel 'mean TTFT (s)'
set output 'docs/sim/buffer_sweep.png'
set xlabel 'pre-load buffer (layers), LLaMA-2-13B'
plot 'docs/sim/runs.csv' using (strcol(1) eq 'buffer' && $8 >= 0 ? $8 : 1/0):14 with linespoints title 'cachedattn'
set output 'docs/sim/rate_sweep.png'
set xlabel 'session arrivals per second, LLaMA-2-13B'
plot 'docs/sim/runs.csv' using (strcol(1) eq 'rate' && strcol(3) eq 'cachedattn' ? $7 : 1/0):14 with linespoints title 'cachedattn', 'docs/sim/runs.csv' using (strcol(1) eq 'rate' && strcol(3) eq 'recompute' ? $7 : 1/0):14 with linespoints title 'recompute (RE)'
