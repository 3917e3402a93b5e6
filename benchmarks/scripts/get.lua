-- GET /api/{user}/tasks/{id}: one of the seeded tasks, picked at random.
dofile(os.getenv("BENCH_SCRIPTS") .. "/common.lua")

function init(args)
   setup_args(args)
   math.randomseed(seed or 1)
   headers = auth_headers()
end

function request()
   return wrk.format("GET", "/api/" .. user .. "/tasks/" .. random_id(), headers)
end
