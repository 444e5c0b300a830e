-- Realistic load: a plan made by benchmarks/run.py (realistic_plan), one request a line,
-- "METHOD PATH CLIENT", walked in a loop. Each thread starts at its own place in the plan, and
-- each request carries the token of the client the line names (args: the plan's file, then the
-- clients' tokens, comma-separated). A write is a PATCH of the machine's notes, each one new
-- (a PATCH that changes nothing writes nothing, and invalidates nothing).
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for token in string.gmatch(args[2], "[^,]+") do table.insert(tokens, token) end
  plan = {}
  for line in io.lines(args[1]) do
    local method, path, client = string.match(line, "^(%u+) (%S+) (%d+)$")
    table.insert(plan, { method, path, "Token " .. tokens[tonumber(client) + 1] })
  end
  -- Threads far apart in the plan: 7919 is prime, so no two threads of a run start together.
  position = (id * 7919) % #plan + 1
  stamp = os.time()
  counter = 0
  -- A headers table replaces wrk's own (-H) headers: copy them, one table per kind of request.
  reads, writes = {}, {}
  for name, value in pairs(wrk.headers) do
    reads[name] = value
    writes[name] = value
  end
  writes["Content-Type"] = "application/json"
end

request = function()
  local step = plan[position]
  position = position % #plan + 1
  if step[1] == "PATCH" then
    counter = counter + 1
    writes["Authorization"] = step[3]
    local body = string.format('{"notes": "benchmark write %d-%d-%d"}', id, stamp, counter)
    return wrk.format("PATCH", step[2], writes, body)
  end
  reads["Authorization"] = step[3]
  return wrk.format(step[1], step[2], reads)
end
