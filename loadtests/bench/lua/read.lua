-- GET /api/deliveries/{id} with ids drawn from the file named after `--` (one id a line).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local report = require("report")
local ids = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

function init(args)
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  report.seed(number or 0)
end

function request()
  return wrk.format("GET", "/api/deliveries/" .. ids[math.random(#ids)])
end

done = report.done
