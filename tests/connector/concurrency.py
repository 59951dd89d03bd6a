"""Fifty connections from fifty threads at once, each doing every kind of request on keys of
its own and checking each reply; then one more connection checks what they left behind."""

import threading

from tarantool.const import ITERATOR_GE

from helpers import alice, equal, step

THREADS = 50
KEYS = 20
JOIN_TIMEOUT_S = 90

barrier = threading.Barrier(THREADS, timeout=JOIN_TIMEOUT_S)
failures = []
session_ids = [None] * THREADS
done = []


def client(number):
    """Connect when all threads are ready, then insert, read, change and delete keys of
    number's own range, checking every reply."""
    first = 10000 + number * 100
    keys = list(range(first, first + KEYS))
    name = f'thread {number}'
    barrier.wait()
    conn = alice(call_16=number % 2 == 0)
    for key in keys:
        equal(conn.insert('tester', (key, name, 0)).data, [[key, name, 0]], f'{name} insert')
    equal([t[0] for t in conn.select('tester', name, index='name')], keys, f'{name} by name')
    equal(len(conn.select('tester', first, iterator=ITERATOR_GE, limit=KEYS)), KEYS,
          f'{name} range')
    for key in keys[::2]:
        equal(conn.update('tester', key, [('+', 2, key)]).data, [[key, name, key]],
              f'{name} update')
    for key in keys[1::2]:
        conn.upsert('tester', (key, name, 0), [('=', 2, -key)])
        equal(conn.replace('tester', (key, name, -key)).data, [[key, name, -key]],
              f'{name} replace')
    reply = conn.call('echo', number, name).data
    # CALL 6 (call_16) makes each value a tuple; CALL 10 returns them as they are.
    equal(reply, [[number], [name]] if conn.call_16 else [number, name], f'{name} call')
    user, session_id, echoed = conn.eval('return box.session.user(), box.session.id(), ...',
                                         [number]).data
    equal((user, echoed), ('alice', number), f'{name} eval')
    session_ids[number] = session_id
    for key in keys[KEYS // 2:]:
        equal(conn.delete('tester', key)[0][0], key, f'{name} delete')
    assert isinstance(conn.ping(), float)
    conn.close()


def guarded(number):
    try:
        client(number)
        done.append(number)
    except BaseException as exc:  # report every thread's failure, not just the first
        failures.append(f'thread {number}: {exc!r}')
        barrier.abort()


step(f'{THREADS} threads connect at once and work')
threads = [threading.Thread(target=guarded, args=(n,)) for n in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), f'{thread.name} still running after {JOIN_TIMEOUT_S} s'
assert not failures, '\n'.join(failures)
equal(sorted(done), list(range(THREADS)), 'threads finished')
equal(len(set(session_ids)), THREADS, 'one session per connection')

step('what the threads left behind')
conn = alice()
rows = conn.select('tester').data
expected = []
for number in range(THREADS):
    first = 10000 + number * 100
    for key in range(first, first + KEYS // 2):
        value = key if (key - first) % 2 == 0 else -key
        expected.append([key, f'thread {number}', value])
equal(rows, expected, 'final contents')
equal(conn.eval('return box.space.tester:count()').data, [THREADS * KEYS // 2], 'count')

step('a request waiting in the server does not hold up other connections')
waiter = alice()
conn.eval("gate = require('fiber').channel(1)")
waited = []
thread = threading.Thread(target=lambda: waited.append(waiter.eval('return gate:get(30)').data))
thread.start()
for _ in range(100):
    assert isinstance(conn.ping(), float)
equal(conn.select('tester', 10000).data, [[10000, 'thread 0', 10000]], 'select while waiting')
assert thread.is_alive(), 'the waiting eval returned before the gate opened'
conn.eval("gate:put('opened')")
thread.join(JOIN_TIMEOUT_S)
equal(waited, [['opened']], 'the waiting eval got the value')
waiter.close()
conn.close()
print('OK')
