-- Appended by benchmarks/run.py to every scenario's script (or used alone): the latency
-- percentiles of the whole run, the p95 that wrk's --latency table leaves out included, in
-- microseconds on one line the runner reads.
function done(summary, latency, requests)
  io.write(string.format(
    "percentiles-us p50=%d p95=%d p99=%d\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99)
  ))
end
