-- a statement's values become one YAML document; errors are `- error: ...`
error('x')
error({code = 1})
foo bar
nosuchfunc()
1, 'a', nil, box.NULL
for
x = 1; y = 2
x, y
return x + y
local z = 5
z
type(box.NULL), box.NULL == nil
'x: y', 'a #b'
'multi\nline'
{t = {1, 2, {3}}}
setmetatable({1, 'a', {b = 2}}, {__serialize = 'seq'})
setmetatable({}, {__serialize = 'map'})
-- help and backslash commands
help
\help
\unknown
\set delimiter ;
function twice(x)
    return x * 2
end;
twice(21);
require('console').delimiter();
\set delimiter
twice(4)
require('console').delimiter('!')
1 + 1!
require('console').delimiter('')!
2 + 2
-- print writes to the server's stdout, not into the reply
print('to stdout')
-- runaway recursion is an error, and the server keeps serving
function deep(n) return 1 + deep(n + 1) end
deep(1)
'still here'
