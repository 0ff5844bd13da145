-- GET /api/deliveries/{id} with ids drawn from the file named after `--` (one id a line).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local report = require("report")
local ids = {}

setup = report.setup

function init(args)
  ids = report.lines(args[1])
  report.seed(number or 0)
end

function request()
  return wrk.format("GET", "/api/deliveries/" .. ids[math.random(#ids)])
end

done = report.done
