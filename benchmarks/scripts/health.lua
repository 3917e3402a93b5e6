-- GET /health: no token, no database; the HTTP stack alone.
dofile(os.getenv("BENCH_SCRIPTS") .. "/common.lua")

function init(args)
   setup_args(args)
   local req = wrk.format("GET", "/health")
   request = function() return req end
end
