-- The raw fast paths of insert/replace/update/delete/get/pairs and their fall-backs.
box.cfg{log = 'tarantula.log'}
s = box.schema.space.create('fast')
_ = s:create_index('pk')
h = s:create_index('h', {type = 'hash', parts = {2, 'string'}})
s:insert{1, 'a', 1.5, true, false, -7, 2^40, 'x'}
t = s:get{1}
t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[0], t[-1], t[1.5]
#t, t.nothing, type(t.unpack)
s:insert{2, 'b', {1, {2}}, {k = 'v'}, box.NULL, 18446744073709551615ULL, -9223372036854775807LL}
t = s:get(2)
t[3], t[4], t[5], t[6], t[7]
s:insert(box.tuple.new{3, 'c'})
s:replace(s:get{3}:update{{'=', 2, 'cc'}})
s:get{3}
s:insert{1, 'dup'}
s:insert{'x', 'y'}
s:insert{4}
s:insert(5)
s:insert{4, 'a'}
s:get{'x'}
s:get{1, 2}
h:get{'a'}
h:get('b')[1]
h:get{}
s:update(1, {{'+', 3, 1}})
s:update({9}, {{'+', 3, 1}})
s:update({1}, {{'+', 2, 1}})
s:update({1}, {{'=', 2, 'b'}})
s:update({1}, 'bad ops')
s:delete{9}
s:delete(3)
s:delete{'x'}
h:delete{'b'}
h:update('a', {{'=', 8, 'y'}})
s.index.pk:update({1}, {{'=', 3, 0}})
s:replace{1, 'a', 2^64}
s:get{1}
n = 0 for _, t in s:pairs() do n = n + t[1] end return n
for _, t in s:pairs() do s:delete{t[1]} end return s:len()
for i = 1, 100 do s:insert{i, tostring(i)} end return s:len()
seen = {} for _, t in h:pairs() do seen[#seen + 1] = t[1]; s:delete{t[1]} end return #seen, s:len()
s:truncate()
for i = 1, 10 do s:insert{i, tostring(i)} end return s:len()
r = {} for _, t in s:pairs({5}, {iterator = 'LE'}) do r[#r + 1] = t[1]; if t[1] == 4 then s:delete{3} end end return r
r = {} for _, t in s:pairs({5}, {iterator = 'GT'}) do r[#r + 1] = t[1]; if t[1] < 100 then s:insert{t[1] * 10, 'x' .. t[1]} end end return r
s:pairs({'a'})
s:pairs({1, 2})
h:pairs({'a'}, {iterator = 'LT'})
h:pairs({}, {iterator = 'EQ'})
s:pairs({1}, {iterator = 99})
calls = 0
_ = s:on_replace(function() calls = calls + 1 end)
s:insert{1000, 'trig'}
s:delete{1000}
calls
box.space._schema:insert{'fast_key'}
box.space._schema:get{'fast_key'}
box.space._schema:delete{'fast_key'}
box.begin() s:truncate() s:insert{1, 'in txn'} box.rollback()
box.begin() s:insert{5000, 'in txn'} box.rollback() return s:get{5000}
box.begin() s:insert{5000, 'in txn'} box.commit() return s:get{5000}
ok, err = pcall(s.insert, s, {5000, 'again'})
ok, err.code, err.message
ok, err = pcall(s.insert, s, {{}})
ok, err.code
s:insert{7777, "z", box.tuple.new{1, 2}, {box.tuple.new{3}}}
s:get(box.tuple.new{7777})
s:delete(box.tuple.new{7777})
s:drop()
