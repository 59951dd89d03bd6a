box.cfg{log = 'tarantula.log'}
s = box.schema.space.create('u')
s:create_index('pk').id
s:insert{1, 10, 'abcdef', 4294967295, 1.5, 'x', 'y'}
-- every operation
s:update({1}, {{'+', 2, 5}})
s:update({1}, {{'-', 2, 20}})
s:update({1}, {{'&', 4, 255}, {'|', 2, 0}})
s:update({1}, {{'^', 4, 1}})
s:update({1}, {{'+', 5, 1}})
s:update({1}, {{':', 3, 2, 3, 'XY'}})
s:update({1}, {{'!', 2, 'inserted'}})
s:update({1}, {{'#', 2, 1}})
s:update({1}, {{'=', -1, 'last'}})
s:update({1}, {{'!', -1, 'appended'}})
s:update({1}, {{'#', -2, 2}})
-- errors, and the tuple is unchanged after each
s:update({1}, {{'=', 1, 2}})
s:update({1}, {{'+', 3, 1}})
s:update({1}, {{'&', 2, -1}})
s:update({1}, {{'?', 2, 1}})
s:update({1}, {{'=', 20, 1}})
s:update({1}, {{'=', 0, 1}})
s:update({1}, {{'+', 2}})
s:update({1}, {{'+', 2, 1}, {'+', 2, 1}})
s:update({1}, {})
s:update({1}, 'x')
s:update({1}, {{':', 3, 100, 1, 'z'}})
s:update({1}, {{'+', 4, 18446744073709551615}})
s:update({1}, {{'#', 2, 0}})
s:get{1}
-- upsert: insert when missing, else apply (a failing op is skipped)
s:upsert({2, 1}, {{'+', 2, 1}})
s:get{2}
s:upsert({2, 1}, {{'+', 2, 1}})
s:get{2}
s:upsert({2, 1}, {{'+', 2, 'x'}, {'=', 3, 'ok'}})
s:get{2}
s:upsert({2, 1}, {{'=', 1, 5}})
s:get{2}, s:get{5}
s:upsert({3}, 'x')
s:drop()
