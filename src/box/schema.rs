//! System spaces: their ids, the stubs the schema starts from, and the rows of a new
//! instance (Tarantool 1.6.8's `bootstrap.snap`, PROTOCOL.md §5.3).
//!
//! Pure data, used on the TX thread. Schema is data: a new instance gets its system spaces
//! by inserting these rows through the ordinary write path, whose triggers (alter.rs) turn
//! `_space` and `_index` rows into spaces and indexes, exactly as recovery and replication
//! will replay them.

use super::index::{IndexDef, IndexKind};
use super::key_def::{FieldType, KeyDef, KeyPart};
use super::mp::{Mp, s, u};
use super::space::SpaceDef;

pub const SCHEMA_ID: u32 = 272;
pub const SPACE_ID: u32 = 280;
pub const VSPACE_ID: u32 = 281;
pub const INDEX_ID: u32 = 288;
pub const VINDEX_ID: u32 = 289;
pub const FUNC_ID: u32 = 296;
pub const VFUNC_ID: u32 = 297;
pub const USER_ID: u32 = 304;
pub const VUSER_ID: u32 = 305;
pub const PRIV_ID: u32 = 312;
pub const VPRIV_ID: u32 = 313;
pub const CLUSTER_ID: u32 = 320;

/// System ids are 256..511 (BOX_SYSTEM_ID_MIN..MAX); user spaces start at 512.
pub const SYSTEM_ID_MIN: u32 = 256;
pub const SYSTEM_ID_MAX: u32 = 511;

/// The largest space id.
pub const SPACE_ID_MAX: u32 = i32::MAX as u32;

/// Index ids are below this.
pub const INDEX_ID_MAX: u32 = 128;

/// Names are at most this many bytes.
pub const NAME_LEN_MAX: usize = 32;

/// The admin user and the guest user.
pub const ADMIN: u32 = 1;
pub const GUEST: u32 = 0;
pub const PUBLIC_ROLE: u32 = 2;
pub const REPLICATION_ROLE: u32 = 3;

/// Whether `id` is a system space (its rows are schema, applied by triggers).
pub fn is_system(id: u32) -> bool {
    (SYSTEM_ID_MIN..=SYSTEM_ID_MAX).contains(&id)
}

/// The space a system view reads (`_vspace` reads `_space`).
pub fn view_source(id: u32) -> Option<u32> {
    match id {
        VSPACE_ID | VINDEX_ID | VFUNC_ID | VUSER_ID | VPRIV_ID => Some(id - 1),
        _ => None,
    }
}

/// An index of a system space: iid, name, unique, parts as (field, type).
type IndexSpec = (u32, &'static str, bool, &'static [(u32, &'static str)]);

/// One system space: id, name, engine, format (field name, type) and indexes
/// (iid, name, unique, parts as (field, type)).
struct SystemSpace {
    id: u32,
    name: &'static str,
    engine: &'static str,
    format: &'static [(&'static str, &'static str)],
    indexes: &'static [IndexSpec],
}

const SCHEMA_FORMAT: &[(&str, &str)] = &[("key", "str")];
const SPACE_FORMAT: &[(&str, &str)] = &[
    ("id", "num"),
    ("owner", "num"),
    ("name", "str"),
    ("engine", "str"),
    ("field_count", "num"),
    ("flags", "str"),
    ("format", "*"),
];
const INDEX_FORMAT: &[(&str, &str)] = &[
    ("id", "num"),
    ("iid", "num"),
    ("name", "str"),
    ("type", "str"),
    ("opts", "array"),
    ("parts", "array"),
];
const FUNC_FORMAT: &[(&str, &str)] = &[
    ("id", "num"),
    ("owner", "num"),
    ("name", "str"),
    ("setuid", "num"),
    ("language", "str"),
];
const USER_FORMAT: &[(&str, &str)] = &[
    ("id", "num"),
    ("owner", "num"),
    ("name", "str"),
    ("type", "str"),
    ("auth", "*"),
];
const PRIV_FORMAT: &[(&str, &str)] = &[
    ("grantor", "num"),
    ("grantee", "num"),
    ("object_type", "str"),
    ("object_id", "num"),
    ("privilege", "num"),
];
const CLUSTER_FORMAT: &[(&str, &str)] = &[("id", "num"), ("uuid", "str")];

const BY_ID_OWNER_NAME: &[IndexSpec] = &[
    (0, "primary", true, &[(0, "num")]),
    (1, "owner", false, &[(1, "num")]),
    (2, "name", true, &[(2, "str")]),
];
const INDEX_INDEXES: &[IndexSpec] = &[
    (0, "primary", true, &[(0, "num"), (1, "num")]),
    (2, "name", true, &[(0, "num"), (2, "str")]),
];
const PRIV_INDEXES: &[IndexSpec] = &[
    (0, "primary", true, &[(1, "num"), (2, "str"), (3, "num")]),
    (1, "owner", false, &[(0, "num")]),
    (2, "object", false, &[(2, "str"), (3, "num")]),
];

/// Every system space of a 1.6.8 instance, in id order.
const SYSTEM_SPACES: &[SystemSpace] = &[
    SystemSpace {
        id: SCHEMA_ID,
        name: "_schema",
        engine: "memtx",
        format: SCHEMA_FORMAT,
        indexes: &[(0, "primary", true, &[(0, "str")])],
    },
    SystemSpace {
        id: SPACE_ID,
        name: "_space",
        engine: "memtx",
        format: SPACE_FORMAT,
        indexes: BY_ID_OWNER_NAME,
    },
    SystemSpace {
        id: VSPACE_ID,
        name: "_vspace",
        engine: "sysview",
        format: SPACE_FORMAT,
        indexes: BY_ID_OWNER_NAME,
    },
    SystemSpace {
        id: INDEX_ID,
        name: "_index",
        engine: "memtx",
        format: INDEX_FORMAT,
        indexes: INDEX_INDEXES,
    },
    SystemSpace {
        id: VINDEX_ID,
        name: "_vindex",
        engine: "sysview",
        format: INDEX_FORMAT,
        indexes: INDEX_INDEXES,
    },
    SystemSpace {
        id: FUNC_ID,
        name: "_func",
        engine: "memtx",
        format: FUNC_FORMAT,
        indexes: BY_ID_OWNER_NAME,
    },
    SystemSpace {
        id: VFUNC_ID,
        name: "_vfunc",
        engine: "sysview",
        format: FUNC_FORMAT,
        indexes: BY_ID_OWNER_NAME,
    },
    SystemSpace {
        id: USER_ID,
        name: "_user",
        engine: "memtx",
        format: USER_FORMAT,
        indexes: BY_ID_OWNER_NAME,
    },
    SystemSpace {
        id: VUSER_ID,
        name: "_vuser",
        engine: "sysview",
        format: USER_FORMAT,
        indexes: BY_ID_OWNER_NAME,
    },
    SystemSpace {
        id: PRIV_ID,
        name: "_priv",
        engine: "memtx",
        format: PRIV_FORMAT,
        indexes: PRIV_INDEXES,
    },
    SystemSpace {
        id: VPRIV_ID,
        name: "_vpriv",
        engine: "sysview",
        format: PRIV_FORMAT,
        indexes: PRIV_INDEXES,
    },
    SystemSpace {
        id: CLUSTER_ID,
        name: "_cluster",
        engine: "memtx",
        format: CLUSTER_FORMAT,
        indexes: &[
            (0, "primary", true, &[(0, "num")]),
            (1, "uuid", true, &[(1, "str")]),
        ],
    },
];

/// The in-memory stubs the schema starts from (Tarantool's `schema_init`): the stored
/// system spaces with their primary keys only, so that their own `_space` and `_index`
/// rows can be inserted; those rows then complete the definitions.
pub fn stubs() -> Vec<(SpaceDef, IndexDef)> {
    SYSTEM_SPACES
        .iter()
        .filter(|space| space.engine == "memtx")
        .map(|space| {
            let def = SpaceDef {
                id: space.id,
                owner: ADMIN,
                name: space.name.to_string(),
                engine: space.engine.to_string(),
                field_count: 0,
                temporary: false,
                format: Vec::new(),
            };
            let (iid, name, unique, parts) = space.indexes[0];
            let index = IndexDef {
                space_id: space.id,
                id: iid,
                name: name.to_string(),
                kind: IndexKind::Tree,
                unique,
                key_def: key_def_of(parts),
            };
            (def, index)
        })
        .collect()
}

fn key_def_of(parts: &[(u32, &str)]) -> KeyDef {
    KeyDef {
        parts: parts
            .iter()
            .map(|(fieldno, name)| KeyPart {
                fieldno: *fieldno,
                field_type: FieldType::parse(name).unwrap_or(FieldType::Any),
            })
            .collect(),
    }
}

fn format_of(fields: &[(&str, &str)]) -> Mp {
    Mp::Array(
        fields
            .iter()
            .map(|(name, kind)| Mp::Map(vec![(s("name"), s(name)), (s("type"), s(kind))]))
            .collect(),
    )
}

/// One bootstrap row: the space it goes to and the tuple.
pub struct BootstrapRow {
    pub space_id: u32,
    pub tuple: Vec<u8>,
}

fn row(space_id: u32, tuple: Mp) -> BootstrapRow {
    BootstrapRow {
        space_id,
        tuple: tuple.to_vec(),
    }
}

/// The rows of a new 1.6.8 instance, in the order of `bootstrap.snap`: `_schema`, `_space`,
/// `_index`, `_func`, `_user`, `_priv`, `_cluster`. `bootstrap_uuid` fills the cluster row
/// and `_cluster[1]`; the first `box.cfg{}` then replaces both with real UUIDs.
pub fn bootstrap_rows(bootstrap_uuid: &str) -> Vec<BootstrapRow> {
    let mut rows = vec![
        row(SCHEMA_ID, Mp::Array(vec![s("cluster"), s(bootstrap_uuid)])),
        row(
            SCHEMA_ID,
            Mp::Array(vec![s("max_id"), u(SYSTEM_ID_MAX as u64)]),
        ),
        row(SCHEMA_ID, Mp::Array(vec![s("version"), u(1), u(6), u(8)])),
    ];
    for space in SYSTEM_SPACES {
        rows.push(row(
            SPACE_ID,
            Mp::Array(vec![
                u(space.id as u64),
                u(ADMIN as u64),
                s(space.name),
                s(space.engine),
                u(0),
                Mp::Map(Vec::new()),
                format_of(space.format),
            ]),
        ));
    }
    for space in SYSTEM_SPACES {
        for (iid, name, unique, parts) in space.indexes {
            let parts = Mp::Array(
                parts
                    .iter()
                    .map(|(field, kind)| Mp::Array(vec![u(*field as u64), s(kind)]))
                    .collect(),
            );
            rows.push(row(
                INDEX_ID,
                Mp::Array(vec![
                    u(space.id as u64),
                    u(*iid as u64),
                    s(name),
                    s("tree"),
                    Mp::Map(vec![(s("unique"), Mp::Bool(*unique))]),
                    parts,
                ]),
            ));
        }
    }
    rows.push(row(
        FUNC_ID,
        Mp::Array(vec![
            u(1),
            u(ADMIN as u64),
            s("box.schema.user.info"),
            u(1),
            s("LUA"),
        ]),
    ));
    for (id, name, kind) in [
        (GUEST, "guest", "user"),
        (ADMIN, "admin", "user"),
        (PUBLIC_ROLE, "public", "role"),
        (REPLICATION_ROLE, "replication", "role"),
    ] {
        rows.push(row(
            USER_ID,
            Mp::Array(vec![u(id as u64), u(ADMIN as u64), s(name), s(kind)]),
        ));
    }
    let privileges: &[(u32, &str, u32, u64)] = &[
        (GUEST, "role", PUBLIC_ROLE, 4),
        (ADMIN, "universe", 0, 7),
        (PUBLIC_ROLE, "function", 1, 4),
        (PUBLIC_ROLE, "space", VSPACE_ID, 1),
        (PUBLIC_ROLE, "space", VINDEX_ID, 1),
        (PUBLIC_ROLE, "space", VFUNC_ID, 1),
        (PUBLIC_ROLE, "space", VUSER_ID, 1),
        (PUBLIC_ROLE, "space", VPRIV_ID, 1),
        (REPLICATION_ROLE, "space", CLUSTER_ID, 2),
        (REPLICATION_ROLE, "universe", 0, 1),
    ];
    for (grantee, object_type, object_id, privilege) in privileges {
        rows.push(row(
            PRIV_ID,
            Mp::Array(vec![
                u(ADMIN as u64),
                u(*grantee as u64),
                s(object_type),
                u(*object_id as u64),
                u(*privilege),
            ]),
        ));
    }
    rows.push(row(CLUSTER_ID, Mp::Array(vec![u(1), s(bootstrap_uuid)])));
    rows
}

/// The UUID the bootstrap rows give `_cluster` before the instance takes its own (1.6's
/// bootstrap snapshot holds all ones).
pub fn bootstrap_uuid() -> String {
    uuid::Uuid::nil().to_string().replace('0', "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_has_the_62_rows_of_1_6_8() {
        let rows = bootstrap_rows("00000000-0000-0000-0000-000000000000");
        assert_eq!(rows.len(), 62);
        let count = |id| rows.iter().filter(|row| row.space_id == id).count();
        assert_eq!(count(SCHEMA_ID), 3);
        assert_eq!(count(SPACE_ID), 12);
        assert_eq!(count(INDEX_ID), 31);
        assert_eq!(count(USER_ID), 4);
        assert_eq!(count(PRIV_ID), 10);
        assert_eq!(count(CLUSTER_ID), 1);
        assert_eq!(stubs().len(), 7);
    }
}
