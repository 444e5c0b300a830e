-- 95 % reads across several filters and details, 5 % writes (PATCH of a note).
local reads = {
  "/api/workstations/?page_size=50",
  "/api/workstations/?page_size=50&status=deployed",
  "/api/workstations/?page_size=50&status=in_stock",
  "/api/workstations/?page_size=50&department=Finance",
  "/api/workstations/?page_size=50&form_factor=laptop",
  "/api/workstations/?page_size=50&ordering=-purchase_date",
  "/api/workstations/summary/",
  "/api/locations/",
}
local counter = 0

function init(args)
  max_id = tonumber(args[1]) or 1000
  math.randomseed(os.time() + (tonumber(args[2]) or 0))
end

request = function()
  counter = counter + 1
  local roll = math.random(100)
  if roll <= 5 then
    local id = math.random(max_id)
    local body = '{"notes": "benchmark write ' .. counter .. '"}'
    -- A headers table replaces wrk's own (-H) headers: copy them, then add the body's type.
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["Content-Type"] = "application/json"
    return wrk.format("PATCH", "/api/workstations/" .. id .. "/", headers, body)
  elseif roll <= 30 then
    return wrk.format("GET", "/api/workstations/" .. math.random(math.min(max_id, 200)) .. "/")
  end
  return wrk.format("GET", reads[math.random(#reads)])
end

