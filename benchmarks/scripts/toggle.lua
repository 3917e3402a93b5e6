-- PATCH /api/{user}/tasks/{id}/complete with no body: toggle a seeded task at random.
dofile(os.getenv("BENCH_SCRIPTS") .. "/common.lua")

function init(args)
   setup_args(args)
   math.randomseed(seed or 1)
   headers = auth_headers()
end

function request()
   return wrk.format("PATCH", "/api/" .. user .. "/tasks/" .. random_id() .. "/complete", headers)
end
