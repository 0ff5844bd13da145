-- POST /api/deliveryrequests with bodies drawn from the file named after `--` (one JSON a line).
-- An optional second argument stops each thread after that many answers (a fixed number of
-- deliveries rather than a fixed time).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local report = require("report")
local bodies = {}
local limit = nil
local answered = 0

setup = report.setup

function init(args)
  bodies = report.lines(args[1])
  limit = tonumber(args[2])
  report.seed(number or 0)
end

function request()
  local headers = { ["Content-Type"] = "application/json" }
  return wrk.format("POST", "/api/deliveryrequests", headers, bodies[math.random(#bodies)])
end

function response(status, headers, body)
  answered = answered + 1
  if limit ~= nil and answered >= limit then
    wrk.thread:stop()
  end
end

done = report.done
