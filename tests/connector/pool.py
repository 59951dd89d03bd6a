"""The connector's ConnectionPool (which polls box.info for ro and status) and
MeshConnection, over the one server."""

import tarantool
from tarantool import Mode

from helpers import HOST, PORT, equal, step

step('ConnectionPool: box.info tells it the instance is a running master')
pool = tarantool.ConnectionPool([{'host': HOST, 'port': PORT}], user='alice',
                                password='secret')
assert isinstance(pool.ping(mode=Mode.ANY), float)
equal(pool.insert('open', (50, 'pool'), mode=Mode.RW).data, [[50, 'pool']], 'pool insert')
equal(pool.select('open', 50, mode=Mode.ANY).data, [[50, 'pool']], 'pool select')
equal(pool.call('hello', 'pool', mode=Mode.RW).data, ['hi pool', 2], 'pool call')
equal(pool.eval('return box.info.ro', mode=Mode.PREFER_RW).data, [False], 'pool eval')
pool.close()

step('MeshConnection')
mesh = tarantool.MeshConnection(addrs=[{'host': HOST, 'port': PORT}], user='alice',
                                password='secret')
equal(mesh.select('open', 50).data, [[50, 'pool']], 'mesh select')
equal(mesh.delete('open', 50).data, [[50, 'pool']], 'mesh delete')
mesh.close()
print('OK')
