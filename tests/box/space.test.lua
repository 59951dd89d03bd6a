box.cfg{log = 'tarantula.log'}
-- a space, a HASH primary key, tuples
s = box.schema.space.create('tester')
s.id, s.name, s.engine, s.field_count, s.enabled
i = s:create_index('primary', {type = 'hash', parts = {1, 'unsigned'}})
i.id, i.name, i.type, i.unique, i.space_id
s.enabled, s.index.primary == i, s.index[0] == i
s:insert{1, 'Hello', {2, 'x', {3}}, {k = 'v'}}
s:insert{2, "it's", 1.5, true, box.NULL}
s:select{}
s:get{1}
s:get{99}
s:select{99}
s:insert{1, 'dup'}
s:insert{'a', 'wrong type'}
s:insert{}
s:insert{-1}
-- errors keep their codes
ok, e = pcall(s.insert, s, {1})
e.code, e.message
box.error.TUPLE_FOUND, box.error.NO_SUCH_SPACE, box.error.FIELD_TYPE, box.error.SPACE_EXISTS
box.schema.space.create('tester')
box.schema.space.create('tester', {if_not_exists = true}).id
s:create_index('primary', {if_not_exists = true}).id
s:create_index('primary')
-- replace, update, upsert, delete, len, count
s:replace{2, 'replaced'}
s:update({2}, {{'=', 2, 'upd'}})
s:update({99}, {{'=', 2, 'x'}})
s:upsert({3, 'up'}, {{'=', 2, 'y'}})
s:get{3}
s:upsert({3, 'up'}, {{'=', 2, 'y'}})
s:get{3}
s:delete{3}
s:delete{3}
s:len(), s:count()
-- keys of the wrong type or length
s:get{'x'}
s:get{1, 2}
s.index.primary:select({}, {iterator = 'GE'})
s:update({1}, {{'=', 1, 5}})
-- a TREE index: iterators, partial keys, min, max, count
t = box.schema.space.create('tree')
pk = t:create_index('pk', {parts = {1, 'unsigned', 2, 'string'}})
pk.parts[1].fieldno, pk.parts[1].type, pk.parts[2].fieldno, pk.parts[2].type
for i = 1, 3 do for _, c in ipairs({'a', 'b', 'c'}) do t:insert{i, c, i * 10} end end
t:select{2}
t:select({2}, {iterator = 'REQ'})
t:select({2, 'b'}, {iterator = 'GT'})
t:select({2, 'b'}, {iterator = 'LE', limit = 3})
t:select({2}, {iterator = 'LT'})
t:select({}, {iterator = 'ALL', offset = 7})
t:select({2}, {iterator = box.index.GE, limit = 2})
t.index.pk:min(), t.index.pk:max(), t.index.pk:min{2}, t.index.pk:max{2}
t:count{2}, t:count({2}, {iterator = 'GT'}), t:count()
t:select({'x'})
t:select({1, 'a', 3})
t:select({1}, {iterator = 'BITS_ALL_SET'})
t:select({1}, {iterator = 'NOPE'})
t:get{1}
-- a non-unique secondary index is built from the data
sk = t:create_index('sk', {unique = false, parts = {3, 'unsigned'}})
sk:select{20}
sk:select({20}, {iterator = 'GT', limit = 2})
t:create_index('uniq', {parts = {3, 'unsigned'}})
t.index.uniq == nil
sk:update({20}, {{'=', 3, 0}})
sk:delete{20}
t:select({2})
-- HASH only does EQ, ALL and GT, and needs full keys
h = box.schema.space.create('h')
h:create_index('pk', {type = 'hash', parts = {1, 'unsigned', 2, 'unsigned'}}).type
h:insert{1, 1}
h:select({1})
h:select({1, 1}, {iterator = 'GE'})
h:create_index('bad', {type = 'hash', unique = false})
h:create_index('bits', {type = 'bitset', parts = {2, 'unsigned'}})
-- no such space or index
box.space.nosuch
box.space[999]
h.index[5]
box.space._space:insert{600, 1, 'x', 'vinyl', 0, {}, {}}
-- rename, truncate, drop
t:rename('tree2')
box.space.tree2.id == t.id, box.space.tree
t:truncate()
t:len(), sk:len()
t:drop()
box.space.tree2
-- read_only refuses every change
box.cfg{read_only = true}
h:insert{2, 2}
box.schema.space.create('ro')
box.cfg{read_only = false}
h:insert{2, 2}
h:drop()
s:drop()
box.space.tester
