"""Connecting as guest (no user), as a user with a password and rights, as a user without
rights, and with bad credentials; switching users on an open connection."""

import tarantool
from tarantool.error import DatabaseError, NetworkError, SchemaError

from helpers import HOST, PORT, alice, connect, database_error, equal, raises, step

step('guest: connect without a user, ping, read the space granted to guest')
guest = connect()
assert isinstance(guest.ping(), float), 'ping returns the round trip time'
equal(guest.select('open').data, [[1, 'visible to guest']], 'guest select open')
names = {key for key in guest.schema.schema if isinstance(key, str)}
assert 'open' in names, f'guest sees open in _vspace: {sorted(names)}'
assert 'tester' not in names, f'guest must not see tester in _vspace: {sorted(names)}'
raises(SchemaError, lambda: guest.select('tester'), 'guest select tester by name')

step('alice: connect with a password, learn ids of spaces by name')
admin = alice()
assert isinstance(admin.ping(), float)
tester_id = admin.schema.get_space('tester').sid
assert tester_id >= 512, f'user space id {tester_id}'
equal(admin.select('tester').data, [], 'alice select tester')

step('guest: denied by id where the name is hidden')
database_error(55, lambda: guest.select(tester_id), 'guest select tester',
               "Read access is denied for user 'guest' to space 'tester'")
database_error(53, lambda: guest.call('hello', 'x'), 'guest call',
               "Execute access is denied for user 'guest' to function 'hello'")
database_error(42, lambda: guest.eval('return 1'), 'guest eval',
               "Execute access on universe is denied for user 'guest'")

step('guest connection authenticates as alice and sees everything')
guest.authenticate('alice', 'secret')
equal(guest.select('tester').data, [], 'after authenticate select tester by name')
equal(guest.eval('return box.session.user()').data, ['alice'], 'session user')

step('a failed authenticate keeps the session user')
database_error(47, lambda: guest.authenticate('alice', 'wrong'), 'authenticate wrong password',
               "Incorrect password supplied for user 'alice'")
equal(guest.eval('return box.session.user()').data, ['alice'], 'session user after failure')

step('bob: a user with a password and only the public role')
bob = connect(user='bob', password='bobpw')
assert isinstance(bob.ping(), float)
names = {key for key in bob.schema.schema if isinstance(key, str)}
assert names <= {'_vspace', '_vindex', '_vfunc', '_vuser', '_vpriv'}, \
    f'bob sees only the views: {sorted(names)}'
database_error(55, lambda: bob.select(tester_id), 'bob select',
               "Read access is denied for user 'bob' to space 'tester'")
database_error(55, lambda: bob.insert(tester_id, (1, 'x')), 'bob insert',
               "Write access is denied for user 'bob' to space 'tester'")
database_error(53, lambda: bob.call('hello', 'x'), 'bob call',
               "Execute access is denied for user 'bob' to function 'hello'")
database_error(42, lambda: bob.eval('return 1'), 'bob eval',
               "Execute access on universe is denied for user 'bob'")
assert isinstance(bob.ping(), float), 'denials keep the connection'

step('bad credentials fail connect() with the server error inside NetworkError')
for user, password, code, message in [
        ('alice', 'wrong', 47, "Incorrect password supplied for user 'alice'"),
        ('nobody', 'x', 45, "User 'nobody' is not found"),
]:
    exc = raises(NetworkError, lambda: connect(user=user, password=password), f'login {user}')
    cause = exc.__cause__
    assert isinstance(cause, DatabaseError), f'login {user}: cause {cause!r}'
    equal((cause.code, cause.message), (code, message), f'login {user}')

step('an empty password is a password; no password, a role or guest cannot log in')
admin.eval("box.schema.user.create('empty', {password = ''})"
           "box.schema.user.grant('empty', 'execute', 'universe')"
           "box.schema.user.create('nopw')")
empty = connect(user='empty', password='')
equal(empty.eval('return box.session.user()').data, ['empty'], 'empty password user')
for user, code, message in [
        ('nopw', 47, "Incorrect password supplied for user 'nopw'"),
        ('guest', 47, "Incorrect password supplied for user 'guest'"),
        ('admin', 47, "Incorrect password supplied for user 'admin'"),
        ('public', 45, "User 'public' is not found"),
]:
    exc = raises(NetworkError, lambda: connect(user=user, password=''), f'login {user}')
    equal((exc.__cause__.code, exc.__cause__.message), (code, message), f'login {user}')
empty.close()

step('tarantool.connect() and a closed connection')
other = tarantool.connect(HOST, PORT, user='alice', password='secret')
equal(other.eval('return 6 * 7').data, [42], 'eval over tarantool.connect')
other.close()
for connection in (guest, admin, bob):
    connection.close()
print('OK')
