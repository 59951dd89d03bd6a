t = box.tuple.new{1, 'two', {3, 4}, {k = 'v'}, nil, true}
t
#t, t[1], t[2], t[3][2], t[5], t[6], t[7]
t:unpack()
t:unpack(2, 3)
t:totable()
t:totable(-2)
t:bsize()
box.tuple.new(1, 'a', 2)
box.tuple.new{}
t:find('two'), t:find(1), t:find('nope')
box.tuple.new{1, 2, 1, 2}:findall(2)
box.tuple.new{1, 2, 1, 2}:find(2, 2)
t:transform(2, 2)
t:transform(-1, 1, 'end', 'more')
t:transform(1, 0, 'first')
t:update{{'=', 2, 'TWO'}, {'!', 1, 0}}
t:update{{'#', 1, 10}}
t:update{{'+', 2, 1}}
box.tuple.new{5}:upsert{{'+', 1, 1}, {'+', 2, 1}}
n = 0 for i, v in t:pairs() do n = n + 1 end return n
tostring(box.tuple.new{1, 'a'})
box.tuple.new(nil)
box.cfg{log = 'tarantula.log'}
s = box.schema.space.create('s')
s:create_index('pk').id
s:insert(t)
s:get{1} == nil, s:get{1}[2]
s:insert{2, 'x'}:update{{'=', 2, 'y'}}
s:get{2}
s:drop()
