"""Unicode and binary strings round trip under both encodings of the connector:
'utf-8' (the default: str goes as MP_STR, bytes as MP_BIN, MP_STR comes back as str) and
None (everything goes as MP_STR and comes back as bytes)."""

from helpers import alice, database_error, equal, step

TEXTS = [
    '',
    'plain ascii',
    'кириллица',
    '中文字符',
    'emoji \U0001F600\U0001F680',
    'e\u0301 combining',
    'nul \x00 inside',
    'mixed: ß ü ø ñ — “quotes” ✓',
    'long ' + 'юникод' * 5000,
]
BLOBS = [
    b'',
    bytes(range(256)),
    b'\xff\xfe\x00\x80 not utf-8',
    bytes(range(256)) * 200,
]

utf8 = alice(call_16=True)
raw = alice(call_16=True, encoding=None)

step('unicode in an indexed STR field, found again by its key through index name')
for key, text in enumerate(TEXTS, start=1):
    equal(utf8.insert('tester', (key, text)).data, [[key, text]], f'insert text {key}')
for key, text in enumerate(TEXTS, start=1):
    equal(utf8.select('tester', key).data, [[key, text]], f'select text {key}')
    found = utf8.select('tester', text, index='name').data
    assert [key, text] in found, f'text {key} by the name index: {found!r}'

step('unicode through call and eval')
equal(utf8.eval('return ...', TEXTS).data, TEXTS, 'eval echo')
equal(alice().call('echo', *TEXTS).data, TEXTS, 'call echo (CALL 10)')
equal(utf8.eval('return string.len(...)', [TEXTS[2]]).data, [len(TEXTS[2].encode())],
      'the server sees UTF-8 bytes')

step('bytes in a non-indexed field stay MP_BIN and come back as bytes')
for key, blob in enumerate(BLOBS, start=100):
    equal(utf8.insert('tester', (key, 'blob', blob)).data, [[key, 'blob', blob]],
          f'insert blob {key}')
for key, blob in enumerate(BLOBS, start=100):
    equal(utf8.select('tester', key).data, [[key, 'blob', blob]], f'select blob {key}')

step('bytes where 1.6 wants STR are refused: MP_BIN is not a string to 1.6')
database_error(23, lambda: utf8.insert('tester', (200, b'bin key')), 'bin in a STR field',
               'Tuple field 2 type does not match one required by operation: expected STR')

step('encoding=None: str and bytes both go as MP_STR and come back as bytes')
for key, blob in enumerate(BLOBS, start=300):
    blob += b'#raw'  # unlike any text above, so the key finds one tuple
    equal(raw.insert('tester', (key, blob)).data, [[key, blob]], f'raw insert {key}')
    equal(raw.select('tester', blob, index='name').data, [[key, blob]],
          f'raw select by a binary key {key}')
equal(raw.select('tester', 2).data, [[2, TEXTS[1].encode()]], 'text read as bytes')
equal(raw.eval('return ...', [b'\xff\x00', 'юникод']).data, [b'\xff\x00', 'юникод'.encode()],
      'raw eval echo')
equal(raw.call('echo', *BLOBS).data, [[blob] for blob in BLOBS], 'raw call echo (CALL 6)')

step('a Lua string is MP_STR: bytes sent through Lua come back as str under utf-8')
equal(utf8.eval('return ...', [b'valid utf-8']).data, ['valid utf-8'], 'bytes through eval')

step('every MessagePack type round trips in a tuple, through Lua and back')
VALUES = [7, None, True, False, 1.5, 0.1, float('inf'), -1, 255, 65536, -2**63, 2**64 - 1,
          'x' * 40, b'\x00bin', [], {}, [1, [2, [3]]], {'a': [1, {'b': None}]}, {1: 'int key'}]
equal(utf8.insert('open', VALUES).data, [VALUES], 'insert every type')
equal(utf8.select('open', 7).data, [VALUES], 'select every type')
equal(utf8.call('box.space.open:get', 7).data, [VALUES], 'a tuple from Lua (CALL 6)')
# Lua has no binary type: its strings encode as MP_STR.
through_lua = VALUES[:13] + [VALUES[13].decode()] + VALUES[14:]
equal(alice().call('echo', *VALUES).data, through_lua, 'values through Lua (CALL 10)')
equal(utf8.update('open', 7, [('+', 4, 1.0), ('-', 7, 1), ('+', 8, 2**64 - 256)]).data[0][4:9],
      [2.5, 0.1, float('inf'), -2, 2**64 - 1], 'arithmetic on floats and integers')

utf8.close()
raw.close()
print('OK')
