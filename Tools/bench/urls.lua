-- wrk script: cycles through the request paths listed (one per line) in the file named by
-- WRK_URLS, with the Accept header from WRK_ACCEPT and, when WRK_AUTH is set, that Authorization header.
local paths = {}
for line in io.lines(os.getenv("WRK_URLS")) do paths[#paths + 1] = line end
local accept = os.getenv("WRK_ACCEPT") or "*/*"
local headers = { ["Accept"] = accept }
if os.getenv("WRK_AUTH") and os.getenv("WRK_AUTH") ~= "" then headers["Authorization"] = os.getenv("WRK_AUTH") end
local counter = 0
function setup(thread)
    thread:set("offset", counter * 7919)
    counter = counter + 1
end
function init(args)
    n = offset or 0
end
function request()
    n = n + 1
    return wrk.format("GET", paths[(n % #paths) + 1], headers)
end
function done(summary, latency, requests)
    io.write(string.format("result requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f\n",
        summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency.mean / 1000))
end
