-- bench/wrk/read.lua — the read side of the benchmark for both HTTP systems.
--
--   wrk -t2 -c64 -d8s -s bench/wrk/read.lua http://127.0.0.1:PORT -- MODE LEVEL LIMIT ARG
--
-- LEVEL is linearizable or serializable; every request reads the same small
-- page of LIMIT entries (nothing is written meanwhile).
-- MODE coordinator: GET /api/requests?after=ARG&limit=LIMIT&consistency=LEVEL
--                   (ARG: the commit index minus LIMIT, the most recent page)
-- MODE etcd:        POST /v3/kv/range {"key":base64(ARG),"range_end":base64(ARG's
--                   prefix end),"limit":LIMIT[,"serializable":true]} (etcd's v3
--                   JSON gateway; ARG: a key prefix holding LIMIT keys; without
--                   "serializable" etcd's range is linearizable)
-- wrk counts any status >= 400 as an error; the last line printed is one JSON
-- object (the same fields as post.lua's).

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(data)
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

local req

function init(args)
  local mode = args[1] or "coordinator"
  local level = args[2] or "linearizable"
  local limit = args[3] or "10"
  local arg = args[4] or "0"
  if level ~= "linearizable" and level ~= "serializable" then
    error("LEVEL must be linearizable or serializable, not " .. level)
  end
  if mode == "etcd" then
    -- the range [ARG, ARG with its last byte incremented): every key with prefix ARG
    local last = arg:byte(#arg)
    local range_end = arg:sub(1, #arg - 1) .. string.char(last + 1)
    local body = '{"key":"' .. b64(arg) .. '","range_end":"' .. b64(range_end) .. '","limit":'
                 .. limit .. (level == "serializable" and ',"serializable":true' or "") .. '}'
    req = wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" }, body)
  else
    req = wrk.format("GET", "/api/requests?after=" .. arg .. "&limit=" .. limit
                     .. "&consistency=" .. level)
  end
end

function request()
  return req
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
               + summary.errors.write + summary.errors.timeout
  local ok = summary.requests - summary.errors.status
  io.write(string.format(
    'JSON {"tool":"wrk","requests":%d,"ops":%d,"errors":%d,"status_errors":%d,"timeouts":%d,'
    .. '"seconds":%.3f,"ops_per_s":%.1f,"mean_ms":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,'
    .. '"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, ok, errors, summary.errors.status, summary.errors.timeout, secs,
    ok / secs, latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
