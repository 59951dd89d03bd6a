"""Every request kind the connector sends, with spaces and indexes named (resolved through
_vspace and _vindex) and numbered: ping, select, insert, replace, update, upsert, delete,
call in both 1.6 (CALL 6, call_16=True) and default (CALL 10) modes, and eval."""

from tarantool.const import ITERATOR_GE, ITERATOR_LE, ITERATOR_LT, ITERATOR_REQ

from helpers import alice, equal, step

conn = alice(call_16=True)
tester = conn.space('tester')
tester_id = conn.schema.get_space('tester').sid

step('ping')
assert isinstance(conn.ping(), float)
assert conn.ping(notime=True) == 'Success'

step('insert by space name, id and space object')
response = conn.insert('tester', (1, 'one', 10))
equal((response.return_code, response.rowcount, response.data), (0, 1, [[1, 'one', 10]]),
      'insert reply')
equal(conn.insert(tester_id, (2, 'two', 20)).data, [[2, 'two', 20]], 'insert by id')
equal(tester.insert((3, 'three', 30)).data, [[3, 'three', 30]], 'insert via space object')
for key in range(4, 10):
    conn.insert('tester', (key, 'many', key * 10))

# Iterators go as numbers: the connector sends a string as it is, which a 1.6 server
# rejects (errors.py).
step('select: by key, all, limit and offset, iterators, secondary index by name and id')
equal(conn.select('tester', 1).data, [[1, 'one', 10]], 'select key')
equal(conn.select('tester', [2]).data, [[2, 'two', 20]], 'select key list')
equal(conn.select('tester', 100).data, [], 'select missing key')
equal([t[0] for t in conn.select('tester')], list(range(1, 10)), 'select all')
equal([t[0] for t in conn.select('tester', limit=3, offset=2)], [3, 4, 5], 'limit offset')
equal([t[0] for t in conn.select('tester', 7, iterator=ITERATOR_GE)], [7, 8, 9], 'GE')
equal([t[0] for t in conn.select('tester', 3, iterator=ITERATOR_LT)], [2, 1], 'LT')
equal([t[0] for t in conn.select('tester', 3, iterator=ITERATOR_LE)], [3, 2, 1], 'LE')
equal([t[0] for t in conn.select('tester', 'many', index='name', iterator=ITERATOR_REQ)],
      list(range(9, 3, -1)), 'REQ on a non-unique index')
equal([t[0] for t in conn.select('tester', 'many', index='name')], list(range(4, 10)),
      'secondary index by name')
equal([t[0] for t in conn.select(tester_id, 'two', index=1)], [2], 'secondary index by id')
equal([t[0] for t in tester.select('t', index='name', iterator=ITERATOR_GE)], [3, 2],
      'space object, index by name, GE on strings')
equal(conn.select('tester', 1, index='primary').data, [[1, 'one', 10]], 'primary by name')

step('replace: an existing key and a new one')
equal(conn.replace('tester', (1, 'uno', 11)).data, [[1, 'uno', 11]], 'replace existing')
equal(conn.replace('tester', (10, 'ten', 100)).data, [[10, 'ten', 100]], 'replace new')
equal(conn.select('tester', 1).data, [[1, 'uno', 11]], 'replaced tuple')

step('update: = + - ! # : by name and by id, missing key')
equal(conn.update('tester', 1, [('=', 1, 'one'), ('+', 2, 5)]).data, [[1, 'one', 16]],
      'update = +')
equal(conn.update(tester_id, 2, [('-', 2, 1), ('!', 3, 'tail')]).data,
      [[2, 'two', 19, 'tail']], 'update - !')
equal(tester.update(2, [('#', 3, 1), (':', 1, 1, 1, 'W')]).data, [[2, 'tWo', 19]],
      'update # :')
equal(conn.update('tester', 100, [('=', 1, 'x')]).data, [], 'update missing key')

step('upsert: inserts when missing, applies ops when present, returns no tuple')
response = conn.upsert('tester', (20, 'upserted', 1), [('+', 2, 1)])
equal((response.return_code, response.data), (0, []), 'upsert reply')
equal(conn.select('tester', 20).data, [[20, 'upserted', 1]], 'upsert inserted')
conn.upsert(tester_id, (20, 'ignored', 1), [('+', 2, 41)])
equal(conn.select('tester', 20).data, [[20, 'upserted', 42]], 'upsert updated')

step('delete: by name and id, missing key')
equal(conn.delete('tester', 20).data, [[20, 'upserted', 42]], 'delete')
equal(conn.delete(tester_id, 10).data, [[10, 'ten', 100]], 'delete by id')
equal(conn.delete('tester', 20).data, [], 'delete missing')
equal(conn.select('tester', 20).data, [], 'deleted')

step('call with call_16=True (CALL 6): each value becomes a tuple')
equal(conn.call('hello', 'x').data, [['hi x'], [2]], 'call hello')
equal(conn.call('hello', ['y']).data, [['hi y'], [2]], 'call hello, args as a list')
equal(conn.call('multi').data, [[1], ['two'], [3]], 'call multi')
equal(conn.call('echo').data, [], 'call returning nothing')
equal(conn.call('box.space.tester:get', 1).data, [[1, 'one', 16]], 'call a method')

step('call by default (CALL 10): values as they are')
conn10 = alice()
equal(conn10.call('hello', 'x').data, ['hi x', 2], 'call hello')
equal(conn10.call('multi').data, [1, 'two', [3]], 'call multi')
equal(conn10.call('echo', 1, [2, {'k': 'v'}]).data, [1, [2, {'k': 'v'}]], 'call echo')

step('eval')
equal(conn.eval('return 1 + 1').data, [2], 'eval')
equal(conn.eval('return ...', [1, 'a', [2]]).data, [1, 'a', [2]], 'eval with args')
equal(conn.eval('local a, b = ... return a * b', (6, 7)).data, [42], 'eval args tuple')
equal(conn.eval('x = 1').data, [], 'eval returning nothing')
equal(conn10.eval('return box.space.tester:count()').data, [9], 'eval reads a space')

step('a space and an index created after connecting are found by name')
conn.eval("local s = box.schema.space.create('late') s:create_index('pk')")
equal(conn.insert('late', (1, 'late')).data, [[1, 'late']], 'insert into a new space')
conn.eval("box.space.late:create_index('by_name', {parts = {2, 'STR'}})")
equal(conn.select('late', 'late', index='by_name').data, [[1, 'late']], 'new index by name')

step('a stale schema version makes the connector reload the schema and retry')
conn.schema_version = 1
equal(conn.select('late', 1).data, [[1, 'late']], 'select after reload')
assert conn.schema_version > 1, f'schema version learnt: {conn.schema_version}'
conn.eval("box.space.late:drop()")
conn.flush_schema()
assert conn.schema.schema.get('late') is None, 'dropped space gone after flush_schema'

for connection in (conn, conn10):
    connection.close()
print('OK')
