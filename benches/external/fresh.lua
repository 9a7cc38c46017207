-- wrk script of tools/load-bench: a token never used before on every request,
-- so every request is a cache miss (authbridge) or a CRM call (njs, CRM).
-- Arguments after `--`: PATH_PREFIX PATH_SUFFIX TAG; request n of wrk thread
-- t asks for PATH_PREFIX .. TAG-t-n .. PATH_SUFFIX. The script passes a TAG
-- that is random per run and differs per row, so tokens never repeat across
-- rows or runs. Building the path in Lua costs wrk some CPU per request;
-- every fresh-token row pays it alike.

local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

local prefix, suffix, tag
local n = 0

function init(args)
    prefix, suffix, tag = args[1], args[2] or "", args[3]
    if not prefix or not tag then
        error("fresh.lua needs: -- PATH_PREFIX PATH_SUFFIX TAG")
    end
end

function request()
    n = n + 1
    return wrk.format(nil, prefix .. tag .. "-" .. tid .. "-" .. n .. suffix)
end
