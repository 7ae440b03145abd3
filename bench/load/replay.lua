-- wrk script: replays pre-built raw HTTP requests, each once and in order.
--
--   wrk -t T -c C -d 30s -s bench/load/replay.lua http://127.0.0.1:PORT -- DIR HOST [CYCLE [PACE]]
--
-- Thread i (0-based) sends the requests of DIR/requests.<i>, a file of records
-- "<length in bytes>\n<the raw request>" written by bench/load/wrk.py. Signed borrower requests
-- carry single-use nonces, so by default each is sent once: a thread that has sent all of its
-- requests sends "GET /healthz" (counted as overflow) and stops. With CYCLE = "cycle" the
-- requests are sent round and round instead (the public pages: no nonce, no limit on reuse).
-- With PACE (milliseconds, > 0) each connection waits that long before each request (wrk's
-- delay()): about C × 1000 / (PACE + latency) requests a second are offered, whatever the server
-- could take, so latency is measured at a given load rather than at saturation.
--
-- At the end one line is printed: "REPLAY_JSON {...}" with per-thread counts of requests sent,
-- responses by status, overflow, a few error bodies, and wrk's latency percentiles (µs).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   table.insert(threads, thread)
   next_id = next_id + 1
end

local function load_requests(path)
   local file = assert(io.open(path, "rb"))
   local data = file:read("*a")
   file:close()
   local list = {}
   local pos = 1
   while pos <= #data do
      local newline = data:find("\n", pos, true)
      local length = tonumber(data:sub(pos, newline - 1))
      list[#list + 1] = data:sub(newline + 1, newline + length)
      pos = newline + 1 + length
   end
   return list
end

function init(args)
   reqs = load_requests(args[1] .. "/requests." .. id)
   count = #reqs
   cycle = args[3] == "cycle"
   pace = tonumber(args[4] or "0") or 0
   spare = "GET /healthz HTTP/1.1\r\nHost: " .. args[2] .. "\r\n\r\n"
   sent = 0
   overflow = 0
   responses = 0
   statuses = {}
   samples = {}
end

function request()
   if cycle then
      sent = sent + 1
      return reqs[(sent - 1) % count + 1]
   end
   if sent >= count then
      overflow = overflow + 1
      wrk.thread:stop()
      return spare
   end
   sent = sent + 1
   return reqs[sent]
end

function delay()
   return pace
end

function response(status, headers, body)
   responses = responses + 1
   statuses[status] = (statuses[status] or 0) + 1
   if status >= 400 and #samples < 5 then
      samples[#samples + 1] = status .. " " .. body:sub(1, 300)
   end
end

local function quote(text)
   text = text:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      return string.format("\\u%04x", c:byte())
   end)
   return '"' .. text .. '"'
end

function done(summary, latency, requests)
   local parts = {}
   for _, thread in ipairs(threads) do
      local by_status = {}
      for status, n in pairs(thread:get("statuses")) do
         by_status[#by_status + 1] = string.format('"%d": %d', status, n)
      end
      local bodies = {}
      for _, text in ipairs(thread:get("samples")) do
         bodies[#bodies + 1] = quote(text)
      end
      parts[#parts + 1] = string.format(
         '{"id": %d, "requests": %d, "sent": %d, "responses": %d, "overflow": %d, '
            .. '"statuses": {%s}, "error_samples": [%s]}',
         thread:get("id"), thread:get("count"), thread:get("sent"), thread:get("responses"),
         thread:get("overflow"), table.concat(by_status, ", "), table.concat(bodies, ", "))
   end
   local e = summary.errors
   local pct = {}
   for _, q in ipairs({ 50, 90, 99, 99.9 }) do
      pct[#pct + 1] = string.format('"%s": %d', tostring(q), latency:percentile(q))
   end
   io.write(string.format(
      'REPLAY_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {%s, "max": %d, "mean": %.1f, "stdev": %.1f}, "threads": [%s]}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
      e.timeout, table.concat(pct, ", "), latency.max, latency.mean, latency.stdev,
      table.concat(parts, ", ")))
end
