-- One wrk script for every workload; the harness picks the workload with environment variables.
--   BENCH_MODE   get | write | accept | refresh
--   BENCH_AUTH   the Authorization header for get and write (a bearer token), and refresh
--                (the client's Basic credentials)
--   BENCH_PATH   the request path
--   BENCH_RUN    a tag that keeps write emails unique across runs
--   BENCH_FIRST  the first pair of this run (accept, refresh)
--   BENCH_THREADS  wrk's -t
local mode = os.getenv("BENCH_MODE")
local auth = os.getenv("BENCH_AUTH")
local path = os.getenv("BENCH_PATH")
local run = os.getenv("BENCH_RUN") or "0"
local first = tonumber(os.getenv("BENCH_FIRST") or "1")
-- Known up front, not counted in setup(): wrk starts each thread as soon as it is set up, so
-- the first thread would send requests while it still believed it was alone, and reuse pairs.
local nthreads = tonumber(os.getenv("BENCH_THREADS"))

local threads = {}
counter = 0  -- global: done() reads it from each thread

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  if mode == "write" then
    local body = string.format('{"email":"w%s-%d-%d@bench.example","role":"member"}', run, id, counter)
    return wrk.format("POST", path, {["Authorization"] = auth,
                                     ["Content-Type"] = "application/json"}, body)
  elseif mode == "accept" or mode == "refresh" then
    -- thread t of T takes pairs first + t, first + t + T, ... (every pair used once)
    local i = first + id + (counter - 1) * nthreads
    if mode == "accept" then
      return wrk.format("POST", "/api/invites/bench-acc-inv-" .. i .. "/accept",
                        {["Authorization"] = "Bearer bench-acc-api-" .. i})
    end
    -- a refresh token works once (rotation): pair i's
    return wrk.format("POST", "/oauth/token",
                      {["Authorization"] = auth,
                       ["Content-Type"] = "application/x-www-form-urlencoded"},
                      "grant_type=refresh_token&refresh_token=bench-acc-ref-" .. i)
  end
  return wrk.format("GET", path, {["Authorization"] = auth})
end

function done(summary, latency, requests)
  local e = summary.errors
  -- Threads run unevenly, so the pairs used reach past first + requests: report the
  -- span (the busiest thread's count times the thread count) for the next run to skip.
  local most = 0
  for _, t in ipairs(threads) do
    most = math.max(most, t:get("counter"))
  end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "span": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, most * #threads))
end
