-- Every request a cold key: a counter in a parameter of the Accept header makes each request
-- new to the cache (the negotiated media type is part of the key) while the query, and so the
-- SQL and the body, stay those of the warm scenarios. (The query string cannot carry it: the
-- API refuses parameters it does not read.)
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = args[1]
  -- A headers table replaces wrk's own (-H) headers: copy them, then add the Accept header.
  headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
end

request = function()
  counter = counter + 1
  headers["Accept"] = "application/json; nonce=" .. id .. "-" .. counter
  return wrk.format("GET", base, headers)
end
