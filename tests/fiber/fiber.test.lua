fiber = require('fiber')
-- sleepers wake in deadline order
order = {}
\set delimiter ;
for i = 3, 1, -1 do
    fiber.create(function() fiber.sleep(i * 0.01) table.insert(order, i) end)
end;
\set delimiter
fiber.sleep(0.1)
order
-- fiber.create runs the new fiber at once, up to its first yield
trace = {}
\set delimiter ;
f = fiber.create(function() table.insert(trace, 'child') fiber.yield() table.insert(trace, 'child again') end)
table.insert(trace, 'parent')
fiber.yield()
return trace, f:status();
\set delimiter
-- a channel hands values over in order, and get() times out when empty
ch = fiber.channel(1)
producer = fiber.create(function() for i = 1, 3 do ch:put(i) end ch:put('last') end)
ch:get(), ch:get(), ch:get(), ch:get(), ch:get(0.01)
ch:count(), ch:is_empty(), ch:is_full(), ch:size(), ch:is_closed()
ch:put('x'), ch:is_full(), ch:put('y', 0.01)
ch:close()
ch:is_closed(), ch:get(), ch:put('z')
-- an unbuffered channel: put blocks until a reader takes the value
rendezvous = fiber.channel()
taken = nil
reader = fiber.create(function() taken = rendezvous:get() end)
rendezvous:put('hello', 1)
taken
rendezvous:put('nobody', 0.01)
-- a fiber killed while it waits dies at once, without an error in the log
sleeper = fiber.create(function() fiber.sleep(1000) end)
sleeper:status()
sleeper:cancel()
fiber.sleep(0)
sleeper:status()
waiter_result = nil
waiter = fiber.create(function() waiter_result = pcall(ch.get, fiber.channel(1)) end)
fiber.kill(waiter:id())
fiber.sleep(0)
waiter:status(), waiter_result
-- pcall catches the cancellation error
caught = nil
catcher = fiber.create(function() local ok, e = pcall(fiber.sleep, 100) caught = tostring(e) end)
catcher:cancel()
fiber.sleep(0)
caught
-- wakeup ends a sleep early; cond signal and broadcast; timeouts
woke = false
napper = fiber.create(function() fiber.sleep(100) woke = true end)
napper:wakeup()
fiber.sleep(0)
woke
cond = fiber.cond()
signalled = {}
for i = 1, 3 do fiber.create(function() cond:wait() table.insert(signalled, i) end) end
cond:signal()
fiber.sleep(0)
signalled
cond:broadcast()
fiber.sleep(0)
signalled
cond:wait(0.01)
-- names, storage, self, find, info
fiber.self():name('renamed')
fiber.self():name()
fiber.find(fiber.id()) == fiber.self()
fiber.self().storage.key = 'value'
fiber.self().storage.key
type(fiber.info()[fiber.id()]), fiber.info()[fiber.id()].name
fiber.find(1) == nil
fiber.status()
type(fiber.time()), type(fiber.time64()), fiber.time() > 1.7e9
-- 10,000 fibers alive at once
alive, done, gate = 0, 0, fiber.cond()
\set delimiter ;
for i = 1, 10000 do
    fiber.create(function() alive = alive + 1 gate:wait() alive = alive - 1 done = done + 1 end)
end;
\set delimiter
alive, done
gate:broadcast()
\set delimiter ;
for i = 1, 100 do
    if done == 10000 then break end
    fiber.sleep(0.01)
end;
\set delimiter
alive, done
-- coroutines inside a fiber can wait for the scheduler
co = coroutine.wrap(function() fiber.sleep(0.01) coroutine.yield('a') fiber.sleep(0.01) return 'b' end)
co(), co()
-- bad arguments
fiber.sleep('x')
fiber.create(1)
fiber.channel(-1)
