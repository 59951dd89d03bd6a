-- Fiber benchmark, run the same way by tarantula and tarantool:
--   tarantula tools/bench/fiber.lua [N]      tarantool tools/bench/fiber.lua [N]
-- Prints fiber create+finish and yield+resume rates, one line each.
local fiber = require('fiber')
local clock = require('clock')
local N = tonumber(arg[1]) or 1000000

local function empty() end

local started = clock.monotonic()
for _ = 1, N do
    fiber.create(empty)
end
local elapsed = clock.monotonic() - started
print(string.format('fiber create+finish: %d in %.3f s: %.0f per second', N, elapsed, N / elapsed))

-- Two fibers take turns: every fiber.yield() is one switch out and one resume.
local finished = 0
local function yielder()
    for _ = 1, N do
        fiber.yield()
    end
    finished = finished + 1
end
started = clock.monotonic()
fiber.create(yielder)
fiber.create(yielder)
while finished < 2 do
    fiber.sleep(0)
end
elapsed = clock.monotonic() - started
print(string.format('fiber yield+resume: %d in %.3f s: %.0f per second', 2 * N, elapsed, 2 * N / elapsed))
os.exit(0)
