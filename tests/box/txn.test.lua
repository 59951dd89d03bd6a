box.cfg{log = 'tarantula.log'}
s = box.schema.space.create('txn')
s:create_index('pk').id
s:create_index('sk', {unique = false, parts = {2, 'str'}}).id
s:insert{1, 'a'}
-- rollback restores every index
box.begin() s:insert{2, 'b'} s:replace{1, 'z'} s:delete{1} box.rollback()
s:select{}
s.index.sk:select{}
-- commit keeps everything
box.begin() s:insert{2, 'b'} s:update({1}, {{'=', 2, 'c'}}) box.commit()
s:select{}
s.index.sk:select{}
-- an error inside a transaction leaves it open; the console rolls it back with the error
box.begin() s:insert{3, 'd'} s:insert{1, 'dup'}
box.begin() s:insert{3, 'd'} box.commit()
s:get{3}
box.begin() box.begin()
box.rollback()
-- DDL is not allowed in a multi-statement transaction
box.begin() box.schema.space.create('nope')
box.space.nope
-- a fiber that ends with its transaction open rolls it back
fiber = require('fiber')
f = fiber.create(function() box.begin() s:insert{10, 'x'} end)
fiber.sleep(0)
s:get{10}
-- on_replace triggers see every change and can refuse one
seen = {}
trigger = s:on_replace(function(old, new) table.insert(seen, {old and old[1] or box.NULL, new and new[1] or box.NULL}) end)
s:insert{20, 'trig'}
s:delete{20}
seen
refuser = s:on_replace(function(old, new) if new and new[1] == 99 then error('no 99') end end)
s:insert{99, 'refused'}
s:get{99}
s:run_triggers(false)
s:insert{99, 'allowed'}
s:run_triggers(true)
#s:on_replace()
s:on_replace(nil, trigger)
#s:on_replace()
-- box.once runs once per key, recorded in _schema
box.once('init', function() return 'ran' end)
box.once('init', function() return 'ran again' end)
box.space._schema:get{'onceinit'}
box.once()
s:drop()
