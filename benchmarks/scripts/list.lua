-- GET /api/{user}/tasks?limit=20 with the Bearer token: the authenticated list.
dofile(os.getenv("BENCH_SCRIPTS") .. "/common.lua")

function init(args)
   setup_args(args)
   local req = wrk.format("GET", "/api/" .. user .. "/tasks?limit=20", auth_headers())
   request = function() return req end
end
