box.cfg{log = 'tarantula.log', slab_alloc_arena = 0.01, slab_alloc_maximal = 4096}
s = box.schema.space.create('bad')
s:create_index('pk').id
s:insert{1, 'kept'}
-- wrong Lua argument types
s:insert(5)
s:insert('x')
s:get('x')
s:select({1}, {iterator = 'NOPE'})
s:select({1}, {iterator = 42})
s.insert({1})
box.schema.space.create(5)
box.schema.space.create('x', {nosuch = 1})
box.schema.space.create('x', {id = 'a'})
s:create_index('i2', {parts = {2, 'nosuchtype'}})
s:create_index('i3', {type = 'nosuchtype'})
-- keys of the wrong type or length
s:get{1, 2}
s:get{'1'}
s:delete{}
-- tuples over the size limit and past the memory quota
s:insert{2, string.rep('x', 5000)}
for i = 3, 100000 do s:insert{i, string.rep('y', 200)} end
s:len() < 100000
-- nothing of the failed requests is left behind
s:get{1}
s:get{2}
box.space._space:select{s.id}[1][3]
s:drop()
