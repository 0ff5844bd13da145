-- Shared by the benchmark's scripts: thread numbering, reading the argument file, and the summary
-- as one JSON line that the benchmark parses.
local report = {}
local threads = 0

-- wrk's setup(thread), run once per thread in the main Lua state: number the threads.
function report.setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

-- The lines of a file, e.g. the ids or bodies named after `--`.
function report.lines(path)
  local lines = {}
  for line in io.lines(path) do
    lines[#lines + 1] = line
  end
  return lines
end

function report.done(summary, latency)
  io.write(string.format(
    'WRK_SUMMARY {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

-- A different sequence in every thread (wrk gives each thread its own Lua state).
function report.seed(thread_number)
  math.randomseed(os.time() * 1000 + thread_number)
end

return report
