-- bench/wrk/post.lua — one wrk script for every HTTP system in the benchmark.
--
--   wrk -t2 -c64 -d8s -s bench/wrk/post.lua http://127.0.0.1:PORT -- MODE SIZE PREFIX
--
-- MODE coordinator: POST /api/requests {"data":"<SIZE bytes>","id":"<unique>"}
--                   (the id makes every request distinct: applied once, as a client would)
-- MODE etcd:        POST /v3/kv/put {"key":base64("<unique>"),"value":base64(<SIZE bytes>)}
--                   (etcd's v3 JSON gateway; a distinct key per request)
-- Every request carries a key unique to (PREFIX, thread, counter). wrk counts
-- any status >= 400 as an error; the last line printed is one JSON object.

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

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local mode, prefix, payload, payload64, path
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  mode = args[1] or "coordinator"
  local size = tonumber(args[2] or "16")
  prefix = (args[3] or "wrk") .. "-" .. tostring(tid)
  -- printable, JSON-safe payload of exactly SIZE bytes
  local base = "abcdefghijklmnopqrstuvwxyz0123456789"
  payload = string.rep(base, math.floor(size / #base) + 1):sub(1, size)
  if mode == "etcd" then
    path = "/v3/kv/put"
    payload64 = b64(payload)
  else
    path = "/api/requests"
  end
end

function request()
  counter = counter + 1
  local key = prefix .. "-" .. counter
  local body
  if mode == "etcd" then
    body = '{"key":"' .. b64("bench/" .. key) .. '","value":"' .. payload64 .. '"}'
  else
    body = '{"data":"' .. payload .. '","id":"' .. key .. '"}'
  end
  return wrk.format("POST", path, headers, body)
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
