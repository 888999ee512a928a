-- The wrk script of `idnode bench --capacity` (loadtest/capacity.py runs it).
--
-- Without arguments every request asks for the URL given to wrk (wrk's static fast
-- path: no Lua runs per request).
--
-- With arguments PATH FIRST COUNT THREADS (after wrk's `--`) the requests walk through
-- COUNT distinct identifiers PATH..FIRST, PATH..FIRST+1, ... (suffix numbers zero-padded
-- to 8 digits): thread k of THREADS takes numbers FIRST+k, FIRST+k+THREADS, ..., so no
-- identifier is asked twice while the COUNT last. The tool seeds more identifiers than
-- the run can ask for; should they run out, the walk starts again, and what the top node
-- has cached by then shows as hits in the miss ratio the tool reports (it is not hidden:
-- wrk's duration is fixed, so stopping early would understate the rate instead).
--
-- done() prints one line, "CAPACITY {json}", with wrk's totals: the tool parses that
-- instead of wrk's rounded text.

local threads = {}

function setup(thread)
   thread:set("thread_number", #threads)
   table.insert(threads, thread)
end

function init(args)
   if #args < 4 then
      return
   end
   local path, first, count, step = args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
   local i = thread_number
   request = function()
      local number = first + i % count
      i = i + step
      return wrk.format(nil, path .. string.format("%08d", number))
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'CAPACITY {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "connect_errors": %.0f, '
         .. '"read_errors": %.0f, "write_errors": %.0f, "status_errors": %.0f, "timeouts": %.0f, '
         .. '"p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "max_us": %.1f, "mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
      e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
