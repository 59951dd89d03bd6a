-- Changes where a fiber cannot yield (triggers, callbacks of C functions) commit without
-- waiting for the WAL; the statement around them waits.
box.cfg{log = 'tarantula.log'}
a = box.schema.space.create('a')
_ = a:create_index('pk')
b = box.schema.space.create('b')
_ = b:create_index('pk')
_ = a:on_replace(function(old, new) box.space.b:replace{new[1], 'from trigger'} end)
a:insert{1, 'x'}
b:get{1}
table.sort({3, 2, 1}, function(x, y) box.space.b:replace{x} return x < y end)
b:len()
fiber = require('fiber')
woke = false
f = fiber.create(function() table.sort({2, 1}, function(x, y) box.space.b:replace{x + 10} return x < y end) fiber.sleep(0.3) woke = true end)
fiber.sleep(0.05)
woke
