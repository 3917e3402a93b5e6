-- POST /api/{user}/tasks with a JSON body: create.
dofile(os.getenv("BENCH_SCRIPTS") .. "/common.lua")

local body = '{"title": "Benchmark task", "description": "Created under load by wrk"}'

function init(args)
   setup_args(args)
   local headers = auth_headers({ ["Content-Type"] = "application/json" })
   local req = wrk.format("POST", "/api/" .. user .. "/tasks", headers, body)
   request = function() return req end
end
