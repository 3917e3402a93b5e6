-- Shared by every scenario: the Bearer header, a random task id, and the
-- `done` hook that prints one machine-readable line for the harness.
-- Arguments (after `--`): token, user id, comma-separated task ids.

token, user, ids = nil, nil, {}

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("seed", threads * 7919)
end

function setup_args(args)
   token, user = args[1], args[2]
   for id in string.gmatch(args[3] or "", "%d+") do
      ids[#ids + 1] = id
   end
end

function auth_headers(extra)
   local headers = { ["Authorization"] = "Bearer " .. token }
   for name, value in pairs(extra or {}) do
      headers[name] = value
   end
   return headers
end

function random_id()
   return ids[math.random(#ids)]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
      '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
