-- One request shape for every figure. Arguments (after --): body file, token file, method,
-- requests per thread (0 = until the time is up), thread count, content type (default JSON).
-- A token line starting with "Basic " is sent as it is (client credentials), others as Bearer.
-- Each request takes the next line of the body file and the next token, so single-use codes are
-- never sent twice while the limit holds. Threads interleave (thread t sends numbers t, t+T, …),
-- and request number n carries Idempotency-Key "k-n": a bench can replay any key afterwards
-- knowing its body (line n mod the number of lines).
local bodies, tokens, counter, step, method, limit, sent = {}, {}, 0, 1, "POST", 0, 0
local content_type = "application/json"
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  if args[1] and args[1] ~= "" then for line in io.lines(args[1]) do bodies[#bodies + 1] = line end end
  if args[2] and args[2] ~= "" then for line in io.lines(args[2]) do tokens[#tokens + 1] = line end end
  method = args[3] or "POST"
  limit = tonumber(args[4] or "0")
  step = tonumber(args[5] or "1")
  if args[6] and args[6] ~= "" then content_type = args[6] end
  counter = offset
end

function request()
  local headers = {["Idempotency-Key"] = "k-" .. counter}
  if method == "POST" then headers["Content-Type"] = content_type end
  if #tokens > 0 then
    local token = tokens[counter % #tokens + 1]
    if string.sub(token, 1, 6) == "Basic " then
      headers["Authorization"] = token
    else
      headers["Authorization"] = "Bearer " .. token
    end
  end
  local body = nil
  if #bodies > 0 then body = bodies[counter % #bodies + 1] end
  counter = counter + step
  return wrk.format(method, nil, headers, body)
end

function response(status, headers, body)
  sent = sent + 1
  if limit > 0 and sent >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %.3f %.3f\n", summary.requests, failed,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
