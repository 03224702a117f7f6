-- wrk script of the HTTP load benchmark (benches/http/run.sh).
--
--   wrk … -s load.lua URL -- authorize MAX
--       POST /device_authorization with client_id=tv-app.
--   wrk … -s load.lua URL -- poll MAX FILE
--       POST /token with the device code grant, rotating through the device
--       codes in FILE (one a line): each code is polled once every #FILE
--       requests.
--   wrk … -s load.lua URL -- pool MAX FILE
--       POST /device_authorization and append each device_code answered to
--       FILE: how the pools are made.
--
-- Each thread stops after MAX responses (wrk's -d bounds the time). Requests
-- are formatted once, in init. Every response is counted by status and OAuth
-- error code, and done() prints one line:
--   RESULT rps=… p50_us=… p99_us=… requests=… socket_errors=… counts=400:slow_down=…,…

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local requests = {}
local next_request = 1
local max = 0
local seen = 0
local pool_file = nil
thread_index = 0
counts = {}

function init(args)
  local mode = args[1]
  max = tonumber(args[2]) or error("MAX missing")
  if mode == "authorize" or mode == "pool" then
    requests[1] = wrk.format("POST", "/device_authorization", form, "client_id=tv-app")
    if mode == "pool" then
      pool_file = assert(io.open(args[3], "a"))
    end
  elseif mode == "poll" then
    local prefix = "grant_type=urn:ietf:params:oauth:grant-type:device_code"
      .. "&client_id=tv-app&device_code="
    -- With several wrk threads (LOAD_THREADS, set by run.sh), thread i polls
    -- only the codes on lines i, i + n, i + 2n…: no two threads poll one code,
    -- so each code is still polled once per rotation. A file with fewer codes
    -- than threads (the ceiling's one code) is shared whole.
    local codes = {}
    for code in io.lines(args[3]) do
      codes[#codes + 1] = code
    end
    local n = tonumber(os.getenv("LOAD_THREADS") or "1") or 1
    for i, code in ipairs(codes) do
      if #codes < n or (i - 1) % n == thread_index then
        requests[#requests + 1] = wrk.format("POST", "/token", form, prefix .. code)
      end
    end
    if #requests == 0 then
      error("no device codes in " .. args[3])
    end
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  local r = requests[next_request]
  next_request = next_request + 1
  if next_request > #requests then
    next_request = 1
  end
  return r
end

function response(status, headers, body)
  local key = tostring(status)
  local code = string.match(body, '"error":"([%w_]+)"')
  if code then
    key = key .. ":" .. code
  end
  counts[key] = (counts[key] or 0) + 1
  if pool_file then
    local device_code = string.match(body, '"device_code":"([^"]+)"')
    if device_code then
      pool_file:write(device_code, "\n")
    end
  end
  seen = seen + 1
  if seen >= max then
    if pool_file then
      pool_file:close()
      pool_file = nil
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, _)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("counts")) do
      total[key] = (total[key] or 0) + n
    end
  end
  local parts = {}
  for key, n in pairs(total) do
    parts[#parts + 1] = key .. "=" .. n
  end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d socket_errors=%d counts=%s\n",
    summary.requests / summary.duration * 1e6,
    latency:percentile(50), latency:percentile(99), summary.requests,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
