-- Appended by benchmarks/run.py to the scripts of the scenarios whose hit rate is measured:
-- the responses the client saw marked X-Cache HIT and MISS, every thread's, on one line the
-- runner reads. The runner checks the cache's own statistics against them (a response wrk
-- never read, cut off at the end of the run, is the only difference allowed). Only these
-- scenarios count: a response() function makes wrk hand every response to Lua.
local outcome_threads = {}
local scenario_setup = setup

function setup(thread)
  table.insert(outcome_threads, thread)
  if scenario_setup then scenario_setup(thread) end
end

cache_hits, cache_misses = 0, 0

function response(status, headers, body)
  local outcome = headers["X-Cache"]
  if outcome == "HIT" then
    cache_hits = cache_hits + 1
  elseif outcome == "MISS" then
    cache_misses = cache_misses + 1
  end
end

local scenario_done = done

function done(summary, latency, requests)
  local hits, misses = 0, 0
  for _, thread in ipairs(outcome_threads) do
    hits = hits + thread:get("cache_hits")
    misses = misses + thread:get("cache_misses")
  end
  io.write(string.format("x-cache hits=%d misses=%d\n", hits, misses))
  if scenario_done then scenario_done(summary, latency, requests) end
end
