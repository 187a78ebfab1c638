-- wrk script of harness/bench_api.py and harness/soak.py:
-- POST /api/recommendations/recipes, user ids rotating over USERS_FILE (one id a line).
-- MODE=uncached: every request excludes a recipe id never used before, so its cache key is new and
--   the model scores it (the exclusion itself changes nothing: no recipe has such an id). RUN (0-99)
--   tells the runs of one server apart: each wrk run starts counting afresh.
-- MODE=cached: the first WARM_USERS users only, bodies repeated (answered from the cache once warm).
-- EXCLUDE_TAGS (a JSON array, e.g. ["contains:peanut"]; unset or empty: none): every body carries it as
--   "exclude_tags", so the API resolves it against its catalogue on every request (bench_api's filtered API).
-- done() prints one line "RESULT key=value ..." that the harness parses.

local users = {}
for line in io.lines(os.getenv("USERS_FILE")) do users[#users + 1] = line end
local mode = os.getenv("MODE") or "uncached"
local warm = tonumber(os.getenv("WARM_USERS") or "20")
local run = tonumber(os.getenv("RUN") or "0")
local tags = os.getenv("EXCLUDE_TAGS") or ""
local filters = tags ~= "" and (', "exclude_tags": ' .. tags) or ""
local threads = {}
local counter = 0
local offset = 0

function setup(thread)
  thread:set("thread_number", #threads)  -- a global of that thread's script
  threads[#threads + 1] = thread
end

function init(args)
  offset = thread_number or 0
  counter = offset * 104729  -- threads start at different users
end

function request()
  counter = counter + 1
  local body
  if mode == "cached" then
    body = '{"user_id": ' .. users[(counter % math.min(warm, #users)) + 1] .. filters .. '}'
  else
    local unique = 1000000000000 + run * 10000000000 + offset * 1000000000 + counter
    body = '{"user_id": ' .. users[(counter % #users) + 1] .. ', "exclude_recipe_ids": [' .. unique .. ']'
      .. filters .. '}'
  end
  return wrk.format("POST", "/api/recommendations/recipes", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT p50_us=%d p99_us=%d requests=%d duration_us=%d socket_errors=%d non2xx=%d\n",
    latency:percentile(50), latency:percentile(99), summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
end
