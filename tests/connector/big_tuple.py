"""A 1 MiB tuple goes in and comes back whole through insert, select, replace, update, call,
eval and delete; one past the tuple size limit (slab_alloc_maximal, 4 MiB in the setup)
is refused with ER_SLAB_ALLOC_MAX (110)."""

import random

from helpers import alice, database_error, equal, step

MIB = 1 << 20
generator = random.Random(7)
text = ''.join(generator.choice('abcdefghijklmnopqrstuvwxyzабвгд') for _ in range(MIB))
blob = generator.randbytes(MIB)
other = generator.randbytes(MIB)

conn = alice(call_16=True)

step('insert a tuple with a 1 MiB string and a 1 MiB binary field, read it back')
equal(conn.insert('blobs', ('big', text, blob)).data, [['big', text, blob]], 'insert')
equal(conn.select('blobs', 'big').data, [['big', text, blob]], 'select')

step('replace and update keep every byte')
equal(conn.replace('blobs', ('big', text, other)).data, [['big', text, other]], 'replace')
equal(conn.update('blobs', 'big', [('!', 1, 'small')]).data, [['big', 'small', text, other]],
      'update of a big tuple')
equal(conn.select('blobs', 'big').data, [['big', 'small', text, other]], 'select updated')

step('a 1 MiB argument and result through call and eval')
equal(conn.call('box.space.blobs:get', 'big').data, [['big', 'small', text, other]], 'call')
equal(conn.eval('return ...', [text]).data, [text], 'eval echo')
equal(conn.eval('return string.rep("ab", ...)', [MIB // 2]).data, ['ab' * (MIB // 2)],
      'eval returning 1 MiB')

step('a tuple past slab_alloc_maximal is refused, and the connection goes on')
exc = database_error(110, lambda: conn.insert('blobs', ('huge', 'x' * (5 * MIB))),
                     '5 MiB insert')
assert "slab_alloc_maximal" in exc.message, exc.message
equal(conn.select('blobs', 'huge').data, [], 'nothing inserted')

step('delete returns the big tuple')
equal(conn.delete('blobs', 'big').data, [['big', 'small', text, other]], 'delete')
equal(conn.select('blobs').data, [], 'space empty')
conn.close()
print('OK')
