-- wrk script of tools/soak: one minute of mixed Auth API traffic against
-- authbridge in front of examples/soak_crm.rs, whose answer the token's
-- prefix picks. Arguments after `--`: TAG DELAY_MS. Per request, by weight:
--   55 hot-K       one of 50 hot tokens: cache hits (a miss after a reload)
--   15 miss-TAG-T-N a token never used before: CRM call, mapping, insert
--   10 nf-K        the CRM does not know it: 404 (cached for a while)
--    6 e500-N      the CRM answers 500
--    6 junk-N      the CRM answers 200 with a body that is not JSON
--    1 slow-N      the CRM answers after upstream.timeout_ms
--    7 bad token   a control character or a dot segment: 400
-- Each connection waits DELAY_MS between requests, so the rate is bounded
-- (about connections * 1000 / DELAY_MS req/s). done() prints one
-- `status CODE COUNT` line per HTTP status and `p99_us N`; tokens are never
-- printed.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

local tag, delay_ms
local n = 0
counts = {}

function init(args)
    tag, delay_ms = args[1], tonumber(args[2] or "0")
    if not tag then
        error("soak.lua needs: -- TAG DELAY_MS")
    end
    math.randomseed(os.time() + tid * 7919)
end

local base = "/rest/chat/client/id/"
local bad = { "bad%0Atoken", "..", "%2e", "tab%09", "del%7F" }

function request()
    n = n + 1
    local r = math.random(100)
    local token
    if r <= 55 then
        token = "hot-" .. math.random(50)
    elseif r <= 70 then
        token = "miss-" .. tag .. "-" .. tid .. "-" .. n
    elseif r <= 80 then
        token = "nf-" .. math.random(1000)
    elseif r <= 86 then
        token = "e500-" .. tag .. "-" .. n
    elseif r <= 92 then
        token = "junk-" .. tag .. "-" .. n
    elseif r <= 93 then
        token = "slow-" .. tag .. "-" .. n
    else
        token = bad[math.random(#bad)]
    end
    return wrk.format(nil, base .. token)
end

function delay()
    return delay_ms
end

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, c in pairs(thread:get("counts")) do
            total[status] = (total[status] or 0) + c
        end
    end
    for status, c in pairs(total) do
        io.write(string.format("status %d %d\n", status, c))
    end
    local e = summary.errors
    io.write(string.format("socket_errors %d %d %d %d\n", e.connect, e.read, e.write, e.timeout))
    io.write(string.format("p99_us %d\n", latency:percentile(99)))
    io.write(string.format("requests %d\n", summary.requests))
end
