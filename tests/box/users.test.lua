box.cfg{log = 'tarantula.log'}
-- users and roles live in _user; the bootstrap has guest, admin, public and replication
box.space._user:select{}
box.session.user(), box.session.uid(), box.session.id() > 0
box.schema.user.create('alice', {password = 'secret'})
box.schema.user.exists('alice'), box.schema.user.exists('nobody')
u = box.space._user.index.name:get{'alice'}
u[1], u[3], u[4], u[5]['chap-sha1']
box.schema.user.create('alice')
box.schema.user.create('alice', {if_not_exists = true})
box.schema.user.info('alice')
-- grants
s = box.schema.space.create('secret')
s:create_index('pk').id
s:insert{1, 'classified'}
box.schema.user.grant('alice', 'read', 'space', 'secret')
box.schema.user.grant('alice', 'read', 'space', 'secret')
box.schema.user.grant('alice', 'read', 'space', 'nosuch')
box.schema.user.grant('nobody', 'read', 'space', 'secret')
box.schema.user.info('alice')
-- access checks run as the session's user
box.session.su('alice')
box.session.user()
box.space.secret:select{}
box.space.secret:insert{2}
ids = {} for _, t in box.space._vspace:pairs() do table.insert(ids, t[1]) end return ids
#box.space._vspace:select{}, #box.space._vuser:select{}, box.space._vuser:select{}[1][3]
box.space._space:select{512}
box.session.su('admin')
box.schema.user.revoke('alice', 'read', 'space', 'secret')
box.schema.user.revoke('alice', 'read', 'space', 'secret')
box.session.su('alice', function() return pcall(box.space.secret.select, box.space.secret) end)
box.session.user()
-- roles
box.schema.role.create('readers')
box.schema.role.create('readers')
box.schema.role.grant('readers', 'read,write', 'space', 'secret')
box.schema.user.grant('alice', 'readers')
box.schema.user.grant('alice', 'readers')
box.session.su('alice', function() return box.space.secret:insert{3, 'via role'} end)
box.schema.role.grant('readers', 'execute', 'role', 'readers')
box.schema.user.revoke('alice', 'readers')
box.schema.role.info('readers')
box.schema.role.drop('readers')
box.schema.role.exists('readers')
-- passwords
box.schema.user.passwd('alice', 'other')
box.space._user.index.name:get{'alice'}[5]['chap-sha1'] == box.schema.user.password('other')
box.schema.user.passwd('guest', 'x')
-- system users can't go; a user with objects can't either
box.schema.user.drop('guest')
box.schema.user.drop('alice')
box.schema.user.exists('alice')
box.schema.user.drop('alice')
box.schema.user.drop('alice', {if_exists = true})
-- functions
box.schema.func.create('f1')
box.schema.func.create('f1')
box.schema.func.exists('f1')
box.schema.func.drop('f1')
box.schema.func.exists('f1')
s:drop()
