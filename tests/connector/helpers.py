"""Shared by the connector scripts: the server address from argv, connections, and checks
that name what they expected. Every check raises AssertionError, so a failing script exits
non-zero with a traceback."""

import sys

import tarantool
from tarantool.error import DatabaseError

HOST = sys.argv[1]
PORT = int(sys.argv[2])


def connect(**options):
    """A connection to the server under test; options go to tarantool.Connection."""
    return tarantool.Connection(HOST, PORT, **options)


def alice(**options):
    """A connection as the user that may do anything."""
    return connect(user='alice', password='secret', **options)


def equal(actual, expected, what):
    assert actual == expected, f'{what}: expected {expected!r}, got {actual!r}'


def raises(kind, call, what):
    """Run call(), which must raise kind; return the exception."""
    try:
        result = call()
    except kind as exc:
        return exc
    raise AssertionError(f'{what}: expected {kind.__name__}, got result {result!r}')


def database_error(code, call, what, message=None):
    """Run call(), which must fail on the server with error code (and message)."""
    exc = raises(DatabaseError, call, what)
    equal(exc.code, code, f'{what}: error code ({exc.message!r})')
    if message is not None:
        equal(exc.message, message, f'{what}: error message')
    return exc


def step(name):
    print('###', name, flush=True)
