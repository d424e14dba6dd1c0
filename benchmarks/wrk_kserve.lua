-- wrk script: POST one prepared KServe v2 request body to every request.
--
-- Usage: wrk -s benchmarks/wrk_kserve.lua URL -- BODY_FILE [HEADER_LENGTH]
--   BODY_FILE      the request body, prepared once by benchmarks/bench_server.py
--   HEADER_LENGTH  the JSON header length of a binary-extension body
--                  (sent as Inference-Header-Content-Length); omit for a JSON body.
-- The request is built once per thread (static), so wrk spends no Lua per request.

function init(args)
   local f = assert(io.open(args[1], "rb"))
   local body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.body = body
   if args[2] ~= nil then
      wrk.headers["Content-Type"] = "application/octet-stream"
      wrk.headers["Inference-Header-Content-Length"] = args[2]
   else
      wrk.headers["Content-Type"] = "application/json"
   end
end
