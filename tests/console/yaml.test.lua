-- every case of TARANTOOL-2.6-OBSERVED.md 1.1-1.3, with the replies Tarantool 2.6 gives
1 + 2
nil
1, "two", true
return
local x = 5
x
{1, 2, {a = 1}}
{}
-- (a map of several keys prints in Lua hash order, which LuaJIT seeds anew in each process)
{c = {true, false}}
{b = "s"}
[[it's]]
[[say "hi"]]
'a: b'
'multi\nline'
''
'123'
'yes'
'null'
'true'
' lead space'
'#hash'
'-dash'
'x'..'y'
"it's"
'back\\slash'
'tab\there'
'ünï'
'a,b'
'[x]'
'{x}'
'x: '
'~'
'1.5'
'0x10'
'@at'
'%pct'
'*star'
'&amp'
'!bang'
'|pipe'
'>gt'
'"dq'
'sq'"'"''
'no'
'on'
'Null'
'NULL'
' '
'trail '
'True'
'TRUE'
'false'
'off'
'y'
'n'
'Yes'
'it''s'
"it's" .. ':'
'-'
'- x'
'a #b'
'1e5'
'.5'
'inf'
'nan'
'a\0b'
'\1'
1.5
-7
1e100
2^53
2^63
0/0
1/0
-1/0
12345678901234567
100000000000000
1e15
1e16
0.1
1/3
tonumber64('18446744073709551615')
-9223372036854775807LL - 1
42ULL
true
false
box.NULL
{box.NULL, nil, 3}
type(box.NULL)
box.NULL == nil
