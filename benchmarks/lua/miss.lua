-- Every request a cold key: a counter in the query string makes each URL new.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = args[1]
end

request = function()
  counter = counter + 1
  local path = base .. "&nonce=" .. id .. "-" .. counter
  return wrk.format("GET", path)
end
