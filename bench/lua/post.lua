-- POST a body to the URL's path. Optional args: body file, then a file of bearer tokens.
-- Lines of the body file are used one per request in turn ({id} is replaced by a unique id), so
-- single-use codes are never sent twice; tokens rotate the same way.
local bodies, tokens, counter, step = {}, {}, 0, 1
local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  if args[1] and args[1] ~= "" then for line in io.lines(args[1]) do bodies[#bodies + 1] = line end end
  if args[2] and args[2] ~= "" then for line in io.lines(args[2]) do tokens[#tokens + 1] = line end end
  step = tonumber(args[3] or "1")
  counter = offset
end

function request()
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then headers["Authorization"] = "Bearer " .. tokens[counter % #tokens + 1] end
  headers["Idempotency-Key"] = "k-" .. offset .. "-" .. counter .. "-" .. math.random(1, 1e9)
  local body = ""
  if #bodies > 0 then body = string.gsub(bodies[counter % #bodies + 1], "{id}", tostring(counter)) end
  counter = counter + step
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.3f %.3f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
