//! Users, roles, functions and privileges: the caches `_user`, `_func` and `_priv` rows
//! build, access checks, and chap-sha1 password checks.
//!
//! Owned by the TX thread. Privileges are bits (R=1 read, W=2 write, X=4 execute) granted on
//! the universe, a space, a function or a role; a user holds its own grants plus those of
//! every role granted to it (with X), transitively.

use std::collections::HashSet;

use rustc_hash::FxHashMap;

use sha1::{Digest, Sha1};

use super::schema::{ADMIN, GUEST};
use crate::error::{BoxError, ErrCode};

pub const READ: u8 = 1;
pub const WRITE: u8 = 2;
pub const EXECUTE: u8 = 4;

/// Users and roles together are limited to this many (the 1.6 auth token count).
pub const USER_MAX: usize = 32;

/// What a privilege is granted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Universe,
    Space,
    Function,
    Role,
    User,
}

impl ObjectType {
    pub fn parse(name: &str) -> Option<ObjectType> {
        Some(match name {
            "universe" => ObjectType::Universe,
            "space" => ObjectType::Space,
            "function" => ObjectType::Function,
            "role" => ObjectType::Role,
            "user" => ObjectType::User,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Universe => "universe",
            ObjectType::Space => "space",
            ObjectType::Function => "function",
            ObjectType::Role => "role",
            ObjectType::User => "user",
        }
    }
}

/// A user or a role, as `_user` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct UserDef {
    pub id: u32,
    pub owner: u32,
    pub name: String,
    pub is_role: bool,
    /// sha1(sha1(password)); None when the user has no password.
    pub hash2: Option<[u8; 20]>,
}

/// A function, as `_func` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct FuncDef {
    pub id: u32,
    pub owner: u32,
    pub name: String,
    pub setuid: bool,
}

/// A grant's key in `_priv`'s primary index: (grantee, object type, object id).
pub type GrantKey = (u32, ObjectType, u32);

/// Users, roles, functions and grants.
#[derive(Default)]
pub struct Access {
    users: FxHashMap<u32, UserDef>,
    user_names: FxHashMap<String, u32>,
    funcs: FxHashMap<u32, FuncDef>,
    func_names: FxHashMap<String, u32>,
    grants: FxHashMap<GrantKey, u8>,
    /// Each user's roles, transitively, computed on first use: every access check of a
    /// user without universal rights needs them, and a scan of all grants per request
    /// would cost more than the request. Cleared by every grant change.
    roles_cache: std::cell::RefCell<FxHashMap<u32, std::rc::Rc<[u32]>>>,
    /// [`Access::effective`]'s answers, keyed by [`effective_key`]: a request's access
    /// check is then one lookup. Cleared with the roles.
    effective_cache: std::cell::RefCell<crate::fiber::IdMap<u8>>,
}

/// One u64 for (user, object type, object id): the id in the low 32 bits, the type above
/// it, the user in the top 24 bits (1.6 has at most 32 users); None past that.
fn effective_key(uid: u32, object: ObjectType, id: u32) -> Option<u64> {
    (uid < 1 << 24).then(|| (u64::from(uid) << 40) | ((object as u64) << 32) | u64::from(id))
}

/// The privilege names used in messages: "Read", "Write", "Execute".
pub fn privilege_name(bits: u8) -> &'static str {
    if bits & EXECUTE != 0 {
        "Execute"
    } else if bits & WRITE != 0 {
        "Write"
    } else {
        "Read"
    }
}

impl Access {
    pub fn user(&self, id: u32) -> Option<&UserDef> {
        self.users.get(&id)
    }

    pub fn user_by_name(&self, name: &str) -> Option<&UserDef> {
        self.user_names.get(name).and_then(|id| self.users.get(id))
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The name of user `id`, for messages.
    pub fn user_name(&self, id: u32) -> String {
        self.users
            .get(&id)
            .map_or_else(|| id.to_string(), |user| user.name.clone())
    }

    pub fn func(&self, id: u32) -> Option<&FuncDef> {
        self.funcs.get(&id)
    }

    pub fn func_by_name(&self, name: &str) -> Option<&FuncDef> {
        self.func_names.get(name).and_then(|id| self.funcs.get(id))
    }

    /// Replace (or with None, remove) user `id`; returns the previous definition.
    pub fn set_user(&mut self, id: u32, user: Option<UserDef>) -> Option<UserDef> {
        let previous = self.users.remove(&id);
        if let Some(previous) = &previous {
            self.user_names.remove(&previous.name);
        }
        if let Some(user) = user {
            self.user_names.insert(user.name.clone(), id);
            self.users.insert(id, user);
        }
        previous
    }

    /// Replace (or remove) function `id`; returns the previous definition.
    pub fn set_func(&mut self, id: u32, func: Option<FuncDef>) -> Option<FuncDef> {
        let previous = self.funcs.remove(&id);
        if let Some(previous) = &previous {
            self.func_names.remove(&previous.name);
        }
        if let Some(func) = func {
            self.func_names.insert(func.name.clone(), id);
            self.funcs.insert(id, func);
        }
        previous
    }

    /// Set (or with 0 remove) a grant; returns the previous bits.
    pub fn set_grant(&mut self, key: GrantKey, bits: u8) -> u8 {
        let previous = match bits {
            0 => self.grants.remove(&key),
            bits => self.grants.insert(key, bits),
        };
        self.roles_cache.borrow_mut().clear();
        self.effective_cache.borrow_mut().clear();
        previous.unwrap_or(0)
    }

    /// The bits `grantee` holds on an object by itself, without roles.
    pub fn own_grant(&self, grantee: u32, object: ObjectType, id: u32) -> u8 {
        self.grants
            .get(&(grantee, object, id))
            .copied()
            .unwrap_or(0)
    }

    /// Whether any grant names `grantee` or is on object (`kind`, `id`).
    pub fn has_grants(&self, grantee: u32) -> bool {
        self.grants.keys().any(|(who, _, _)| *who == grantee)
    }

    /// The roles granted to `uid` (X on the role), and theirs, transitively.
    fn roles_of(&self, uid: u32) -> HashSet<u32> {
        let mut roles = HashSet::new();
        let mut pending = vec![uid];
        while let Some(who) = pending.pop() {
            for ((grantee, kind, role), bits) in &self.grants {
                if *grantee == who
                    && *kind == ObjectType::Role
                    && bits & EXECUTE != 0
                    && roles.insert(*role)
                {
                    pending.push(*role);
                }
            }
        }
        roles
    }

    /// Whether granting role `role` to `grantee` would make a cycle.
    pub fn would_loop(&self, grantee: u32, role: u32) -> bool {
        role == grantee || self.roles_of(role).contains(&grantee)
    }

    /// Every bit `uid` holds on an object, through itself and its roles.
    pub fn effective(&self, uid: u32, object: ObjectType, id: u32) -> u8 {
        let key = effective_key(uid, object, id);
        if let Some(bits) = key.and_then(|key| self.effective_cache.borrow().get(&key).copied()) {
            return bits;
        }
        let mut bits = self.own_grant(uid, object, id);
        for role in self.cached_roles(uid).iter() {
            bits |= self.own_grant(*role, object, id);
        }
        if let Some(key) = key {
            let mut cache = self.effective_cache.borrow_mut();
            // Bounded: a client probing many ids must not grow it for good.
            if cache.len() >= crate::constants::ACCESS_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, bits);
        }
        bits
    }

    /// [`Self::roles_of`], remembered until the next grant change.
    fn cached_roles(&self, uid: u32) -> std::rc::Rc<[u32]> {
        if let Some(roles) = self.roles_cache.borrow().get(&uid) {
            return roles.clone();
        }
        let roles: std::rc::Rc<[u32]> = self.roles_of(uid).into_iter().collect();
        self.roles_cache.borrow_mut().insert(uid, roles.clone());
        roles
    }

    /// `uid`'s bits on the universe.
    pub fn universe(&self, uid: u32) -> u8 {
        if uid == ADMIN {
            return READ | WRITE | EXECUTE;
        }
        self.effective(uid, ObjectType::Universe, 0)
    }

    /// Access to space `id` owned by `owner`: the universe, the space, or ownership.
    pub fn check_space(
        &self,
        uid: u32,
        id: u32,
        owner: u32,
        name: &str,
        bits: u8,
    ) -> Result<(), BoxError> {
        if uid == owner || self.universe(uid) & bits == bits {
            return Ok(());
        }
        if self.effective(uid, ObjectType::Space, id) & bits == bits {
            return Ok(());
        }
        Err(BoxError::new(
            ErrCode::SPACE_ACCESS_DENIED,
            &[&privilege_name(bits), &self.user_name(uid), &name],
        ))
    }

    /// Execute access to the universe (EVAL, and CALL of a function not in `_func`).
    pub fn check_universe(&self, uid: u32, bits: u8) -> Result<(), BoxError> {
        if self.universe(uid) & bits == bits {
            return Ok(());
        }
        Err(BoxError::new(
            ErrCode::ACCESS_DENIED,
            &[&privilege_name(bits), &"universe", &self.user_name(uid)],
        ))
    }

    /// Execute access to a function named `name` (CALL); the user a setuid function runs
    /// as (its owner), if it is one.
    pub fn check_function(&self, uid: u32, name: &str) -> Result<Option<u32>, BoxError> {
        let func = self.func_by_name(name);
        let setuid = func.filter(|func| func.setuid).map(|func| func.owner);
        if self.universe(uid) & EXECUTE != 0 {
            return Ok(setuid);
        }
        if let Some(func) = func
            && (func.owner == uid
                || self.effective(uid, ObjectType::Function, func.id) & EXECUTE != 0)
        {
            return Ok(setuid);
        }
        Err(BoxError::new(
            ErrCode::FUNCTION_ACCESS_DENIED,
            &[&"Execute", &self.user_name(uid), &name],
        ))
    }

    /// chap-sha1: check `scramble` (20 bytes) made with `salt` against `name`'s password.
    /// Returns the user id. The guest logs in with an empty scramble while it has no
    /// password.
    pub fn authenticate(&self, name: &str, salt: &[u8], scramble: &[u8]) -> Result<u32, BoxError> {
        let user = self
            .user_by_name(name)
            .filter(|user| !user.is_role)
            .ok_or_else(|| BoxError::new(ErrCode::NO_SUCH_USER, &[&name]))?;
        if user.id == GUEST && user.hash2.is_none() && scramble.is_empty() {
            return Ok(GUEST);
        }
        let mismatch = || BoxError::new(ErrCode::PASSWORD_MISMATCH, &[&name]);
        let hash2 = user.hash2.ok_or_else(mismatch)?;
        if !scramble_matches(&hash2, &salt[..salt.len().min(20)], scramble) {
            return Err(mismatch());
        }
        Ok(user.id)
    }
}

/// sha1(sha1(password)), as `_user` keeps it.
pub fn password_hash2(password: &str) -> [u8; 20] {
    let hash1 = Sha1::digest(password.as_bytes());
    Sha1::digest(hash1).into()
}

/// The client side of chap-sha1: `sha1(password) ^ sha1(salt ++ sha1(sha1(password)))`.
pub fn scramble(password: &str, salt: &[u8]) -> [u8; 20] {
    let hash1: [u8; 20] = Sha1::digest(password.as_bytes()).into();
    let hash2: [u8; 20] = Sha1::digest(hash1).into();
    let mut hasher = Sha1::new();
    hasher.update(&salt[..salt.len().min(20)]);
    hasher.update(hash2);
    let mask: [u8; 20] = hasher.finalize().into();
    let mut out = [0u8; 20];
    for n in 0..20 {
        out[n] = hash1[n] ^ mask[n];
    }
    out
}

/// The server side: `sha1(sha1(salt ++ hash2) ^ scramble) == hash2`.
fn scramble_matches(hash2: &[u8; 20], salt: &[u8], scramble: &[u8]) -> bool {
    if scramble.len() != 20 {
        return false;
    }
    let mut hasher = Sha1::new();
    hasher.update(salt);
    hasher.update(hash2);
    let mask: [u8; 20] = hasher.finalize().into();
    let mut hash1 = [0u8; 20];
    for n in 0..20 {
        hash1[n] = mask[n] ^ scramble[n];
    }
    let candidate: [u8; 20] = Sha1::digest(hash1).into();
    &candidate == hash2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u32, name: &str, role: bool) -> UserDef {
        UserDef {
            id,
            owner: ADMIN,
            name: name.into(),
            is_role: role,
            hash2: None,
        }
    }

    #[test]
    fn chap_sha1_round_trip() {
        let mut access = Access::default();
        let mut alice = user(5, "alice", false);
        alice.hash2 = Some(password_hash2("secret"));
        access.set_user(5, Some(alice));
        let salt = [7u8; 32];
        assert_eq!(
            access.authenticate("alice", &salt, &scramble("secret", &salt)),
            Ok(5)
        );
        let wrong = access
            .authenticate("alice", &salt, &scramble("nope", &salt))
            .unwrap_err();
        assert_eq!(
            wrong.message,
            "Incorrect password supplied for user 'alice'"
        );
        let missing = access.authenticate("bob", &salt, &[]).unwrap_err();
        assert_eq!(missing.message, "User 'bob' is not found");
        access.set_user(GUEST, Some(user(GUEST, "guest", false)));
        assert_eq!(access.authenticate("guest", &salt, &[]), Ok(GUEST));
    }

    #[test]
    fn roles_grant_transitively_and_loops_are_seen() {
        let mut access = Access::default();
        access.set_user(5, Some(user(5, "u", false)));
        access.set_user(10, Some(user(10, "r1", true)));
        access.set_user(11, Some(user(11, "r2", true)));
        access.set_grant((5, ObjectType::Role, 10), EXECUTE);
        access.set_grant((10, ObjectType::Role, 11), EXECUTE);
        access.set_grant((11, ObjectType::Space, 512), READ);
        assert_eq!(access.effective(5, ObjectType::Space, 512), READ);
        assert!(access.check_space(5, 512, ADMIN, "s", READ).is_ok());
        let denied = access.check_space(5, 512, ADMIN, "s", WRITE).unwrap_err();
        assert_eq!(
            denied.message,
            "Write access is denied for user 'u' to space 's'"
        );
        assert!(access.would_loop(11, 10));
        assert!(!access.would_loop(5, 11));
        assert!(access.check_space(5, 513, 5, "own", WRITE).is_ok());
        let eval = access.check_universe(5, EXECUTE).unwrap_err();
        assert_eq!(
            eval.message,
            "Execute access on universe is denied for user 'u'"
        );
    }
}
