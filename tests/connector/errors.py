"""Server errors reach Python as tarantool.error.DatabaseError with Tarantool 1.6's codes and
messages, and the connection goes on serving after each."""

from tarantool.error import DatabaseError, SchemaError

from helpers import alice, database_error, equal, raises, step

conn = alice(call_16=True)
conn.insert('tester', (1, 'one'))

step('ER_TUPLE_FOUND (3): duplicate key')
exc = database_error(3, lambda: conn.insert('tester', (1, 'again')), 'duplicate insert',
                     "Duplicate key exists in unique index 'primary' in space 'tester'")
assert isinstance(exc, DatabaseError) and exc.args[0] == 3, f'exception args {exc.args!r}'

step('ER_NO_SUCH_SPACE (36) and ER_NO_SUCH_INDEX (35) by number')
database_error(36, lambda: conn.insert(999, (1,)), 'insert into space 999',
               "Space '999' does not exist")
database_error(36, lambda: conn.select(999), 'select from space 999',
               "Space '999' does not exist")
database_error(35, lambda: conn.select('tester', 1, index=9), 'select index 9',
               "No index #9 is defined in space 'tester'")

step('unknown names fail in the connector before reaching the server')
raises(SchemaError, lambda: conn.select('nosuch'), 'select from an unknown space name')
raises(SchemaError, lambda: conn.select('tester', 1, index='nosuch'), 'unknown index name')

step('ER_NO_SUCH_PROC (33) over CALL 6 and CALL 10')
database_error(33, lambda: conn.call('nosuch'), 'call undefined (CALL 6)',
               "Procedure 'nosuch' is not defined")
database_error(33, lambda: alice().call('nosuch.deeper'), 'call undefined (CALL 10)',
               "Procedure 'nosuch.deeper' is not defined")

step('ER_PROC_LUA (32): Lua errors in call and eval; box.error keeps its code')
exc = database_error(32, lambda: conn.call('fail'), 'call a function that raises')
assert 'raised on purpose' in exc.message, exc.message
database_error(32, lambda: conn.eval("error('boom')"), 'eval error', 'eval:1: boom')
database_error(123, lambda: conn.eval("box.error{code = 123, reason = 'custom'}"),
               'box.error with a custom code', 'custom')
database_error(3, lambda: conn.eval("box.space.tester:insert{1, 'x'}"), 'duplicate in eval',
               "Duplicate key exists in unique index 'primary' in space 'tester'")

step('ER_FIELD_TYPE (23), ER_KEY_PART_TYPE (18), ER_CANT_UPDATE_PRIMARY_KEY (94)')
database_error(23, lambda: conn.insert('tester', ('x', 'one')), 'string in a NUM field',
               'Tuple field 1 type does not match one required by operation: expected NUM')
database_error(18, lambda: conn.select('tester', 'x'), 'string key for a NUM index',
               'Supplied key type of part 0 does not match index part type: expected NUM')
database_error(94, lambda: conn.update('tester', 1, [('=', 0, 5)]), 'update primary key',
               "Attempt to modify a tuple field which is part of index 'primary' "
               "in space 'tester'")

step('ER_INVALID_MSGPACK (20): the connector sends a string iterator as it is')
database_error(20, lambda: conn.select('tester', 1, iterator='GE'), 'iterator as a string',
               'Invalid MsgPack - packet body')

step('ER_UNKNOWN_REQUEST_TYPE (48): 1.6 has no SQL')
database_error(48, lambda: conn.execute('select 1'), 'execute', 'Unknown request type 11')

step('the connection still serves after every error')
equal(conn.select('tester').data, [[1, 'one']], 'space unchanged')
assert isinstance(conn.ping(), float)
conn.close()
print('OK')
